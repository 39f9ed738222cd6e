//! Sealed `memfd` shared memory mapped into both the ICD and the server.
//!
//! The peer is untrusted: if it could shrink the file after we mapped it, any
//! access past the new end would raise `SIGBUS` in our process. The creator
//! therefore seals the size, and the receiver refuses any fd without
//! `F_SEAL_SHRINK` or smaller than expected.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::{self, NonNull};

use rustix::fs::{self, MemfdFlags, SealFlags};
use rustix::mm::{self, MapFlags, ProtFlags};

/// A read-write `MAP_SHARED` mapping of a sealed memfd. Unmapped on drop.
#[derive(Debug)]
pub struct SharedMemory {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value until drop; all
// concurrent access goes through raw pointers/atomics whose users uphold
// their own synchronisation (see `ring`).
unsafe impl Send for SharedMemory {}
// SAFETY: as above; `&SharedMemory` only hands out the raw pointer.
unsafe impl Sync for SharedMemory {}

impl SharedMemory {
    /// Creates a new memfd of `len` bytes, seals its size, and maps it.
    pub fn create(name: &str, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(invalid("shared memory length must be non-zero"));
        }
        let fd = fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        fs::ftruncate(&fd, len as u64)?;
        // SEAL_SEAL too, so the peer cannot later add e.g. F_SEAL_WRITE games.
        fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        Self::map(fd, len)
    }

    /// Maps a memfd received from an untrusted peer.
    ///
    /// Fails (instead of risking a later `SIGBUS`) unless the file is at
    /// least `len` bytes and sealed against shrinking.
    pub fn from_fd(fd: OwnedFd, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(invalid("shared memory length must be non-zero"));
        }
        // Fails with EINVAL for anything that is not a sealable shmem file.
        let seals = fs::fcntl_get_seals(&fd)?;
        if !seals.contains(SealFlags::SHRINK) {
            return Err(invalid("shared memory fd is not sealed against shrinking"));
        }
        let stat = fs::fstat(&fd)?;
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        if size < len as u64 {
            return Err(invalid(
                "shared memory fd is smaller than the expected layout",
            ));
        }
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh mapping chosen by the kernel; it aliases nothing in
        // this process.
        let raw = unsafe {
            mm::mmap(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )?
        };
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or_else(|| invalid("mmap returned null"))?;
        Ok(Self { fd, ptr, len })
    }

    /// Base address of the mapping (page aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping in bytes (never zero).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false; present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memfd, e.g. to pass it to the peer over the control socket.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping created in `map`,
        // and no borrow of it can outlive `self`.
        if let Err(e) = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) } {
            tracing::warn!(error = %e, "munmap of shared memory failed");
        }
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}
