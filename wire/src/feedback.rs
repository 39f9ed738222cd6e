//! The feedback region: status words the server writes and the client only reads, so that
//! polling a fence, an event or a timeline semaphore costs what it costs natively, and waits
//! sleep on a futex instead of occupying a server thread.
//!
//! One region per device, made by the server on the client's request
//! ([`crate::private::FEEDBACK`]) and sealed with `F_SEAL_FUTURE_WRITE` before it is handed
//! over: the client can map it read-only and nothing else (a writable mapping, `mprotect`,
//! `write(2)` and `ftruncate` all fail), while the server keeps writing through the mapping it
//! made first. The server never reads what it wrote back to decide anything: its own copy of
//! every value lives in private memory.
//!
//! Layout (little-endian, 64-byte lines):
//!
//! | offset | field |
//! | --- | --- |
//! | 0 | magic `u64`, version `u32`, slot count `u32` |
//! | 64 | `changes: u32`: incremented after every status change, the futex waiters sleep on |
//! | 72 | `failed: i32`: 0, or the `VkResult` posted work of the device failed with |
//! | 128 + 16·n | slot n: `state: u64` (epoch « 32 \| status), `value: u64` (a timeline's counter) |
//!
//! The client binds an object to a slot it picks ([`crate::private::WATCH`]); both sides count
//! the same events per slot (the bind, every reset or submission of a fence), and the server
//! stamps each state with its count, the *epoch*. A state whose epoch is not the client's count
//! is one the server has not caught up with (a reset the client posted and the server has not
//! read yet): the client waits for it or asks the server, never believes it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rustix::fs::{self, MemfdFlags, SealFlags};
use rustix::mm::{self, MapFlags, ProtFlags};
use rustix::thread::futex;

pub const MAGIC: u64 = u64::from_le_bytes(*b"AIRLFDBK");
pub const VERSION: u32 = 1;
pub const HEADER: usize = 128;
pub const CHANGES_OFFSET: usize = 64;
pub const FAILED_OFFSET: usize = 72;
pub const SLOT_SIZE: usize = 16;
/// The whole region: 1 MiB.
pub const SIZE: usize = 1 << 20;
/// Slots in the region.
pub const SLOTS: u32 = ((SIZE - HEADER) / SLOT_SIZE) as u32;

/// What a slot is bound to; sent with [`crate::private::WATCH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    Fence = 2,
    /// A timeline semaphore: its value is the counter.
    Timeline = 3,
    Event = 4,
}

impl Kind {
    pub fn from_u32(v: u32) -> Option<Kind> {
        Some(match v {
            2 => Kind::Fence,
            3 => Kind::Timeline,
            4 => Kind::Event,
            _ => return None,
        })
    }
}

/// Statuses of fences and events.
pub const UNSIGNALED: u32 = 1;
pub const SIGNALED: u32 = 2;
/// The host reported the device lost while waiting for it.
pub const LOST: u32 = 3;
/// A timeline semaphore's state (its value is what matters).
pub const COUNTER: u32 = 4;

pub fn pack(epoch: u32, status: u32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(status)
}

pub fn unpack(state: u64) -> (u32, u32) {
    ((state >> 32) as u32, state as u32)
}

/// Whether a `VkSemaphoreCreateInfo` chain makes a timeline semaphore (both sides ask: the
/// client to give it a slot, the server to let it reach the timeline calls).
///
/// # Safety
/// `p` is a valid `pNext` chain (the application's, or one the server decoded).
pub unsafe fn is_timeline(mut p: *const std::ffi::c_void) -> bool {
    use ash::vk;
    while !p.is_null() {
        let b = &*(p as *const vk::BaseInStructure);
        if b.s_type == vk::StructureType::SEMAPHORE_TYPE_CREATE_INFO {
            let t = &*(p as *const vk::SemaphoreTypeCreateInfo);
            return t.semaphore_type == vk::SemaphoreType::TIMELINE;
        }
        p = b.p_next as *const std::ffi::c_void;
    }
    false
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A mapping of the region: the server's writable one or the client's read-only one.
pub struct Region {
    fd: OwnedFd,
    ptr: NonNull<u8>,
}

// SAFETY: plain shared memory accessed only through atomics.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// The server's region: a new memfd, mapped writable, then sealed so that nobody can map
    /// it writable again, resize it or unseal it.
    pub fn create() -> io::Result<Region> {
        let fd = fs::memfd_create(
            "airlock-feedback",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        fs::ftruncate(&fd, SIZE as u64)?;
        let r = Region::map(fd, ProtFlags::READ | ProtFlags::WRITE)?;
        let seals = SealFlags::FUTURE_WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        fs::fcntl_add_seals(&r.fd, seals)?;
        // SAFETY: the header lies inside the mapping, writable here.
        unsafe {
            let p = r.ptr.as_ptr();
            (p as *mut u64).write_volatile(MAGIC);
            (p.add(8) as *mut u32).write_volatile(VERSION);
            (p.add(12) as *mut u32).write_volatile(SLOTS);
        }
        Ok(r)
    }

    /// The client's view of a region the server sent: refused unless it is sealed against
    /// writes, shrinking and growing, long enough and of this layout.
    pub fn open(fd: OwnedFd) -> io::Result<Region> {
        let seals = fs::fcntl_get_seals(&fd)?;
        let needed = SealFlags::FUTURE_WRITE | SealFlags::SHRINK | SealFlags::GROW;
        if !seals.contains(needed) {
            return Err(invalid(
                "the feedback region is not sealed against writes and resizing",
            ));
        }
        if fs::fstat(&fd)?.st_size < SIZE as i64 {
            return Err(invalid("the feedback region is too short"));
        }
        let r = Region::map(fd, ProtFlags::READ)?;
        // SAFETY: the header lies inside the mapping.
        let (magic, version, slots) = unsafe {
            let p = r.ptr.as_ptr();
            (
                (p as *const u64).read_volatile(),
                (p.add(8) as *const u32).read_volatile(),
                (p.add(12) as *const u32).read_volatile(),
            )
        };
        if magic != MAGIC || version != VERSION || slots != SLOTS {
            return Err(invalid("the feedback region has another layout"));
        }
        Ok(r)
    }

    fn map(fd: OwnedFd, prot: ProtFlags) -> io::Result<Region> {
        // SAFETY: a fresh shared mapping of a file at least SIZE bytes long.
        let p = unsafe { mm::mmap(std::ptr::null_mut(), SIZE, prot, MapFlags::SHARED, &fd, 0)? };
        let ptr = NonNull::new(p as *mut u8).ok_or_else(|| invalid("mmap returned null"))?;
        Ok(Region { fd, ptr })
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn word64(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: callers pass aligned offsets inside the mapping, which lives as long as self.
        unsafe { &*(self.ptr.as_ptr().add(offset) as *const AtomicU64) }
    }

    /// The futex word waiters sleep on.
    pub fn changes(&self) -> &AtomicU32 {
        // SAFETY: as in `word64`.
        unsafe { &*(self.ptr.as_ptr().add(CHANGES_OFFSET) as *const AtomicU32) }
    }

    fn failed_word(&self) -> &AtomicU32 {
        // SAFETY: as in `word64`.
        unsafe { &*(self.ptr.as_ptr().add(FAILED_OFFSET) as *const AtomicU32) }
    }

    /// 0, or the `VkResult` the device's posted work failed with.
    pub fn failed(&self) -> i32 {
        self.failed_word().load(Ordering::Acquire) as i32
    }

    /// Server only: records the device's failure; waiters are woken by [`Region::changed`].
    pub fn set_failed(&self, r: i32) {
        self.failed_word().store(r as u32, Ordering::Release);
    }

    fn slot(&self, slot: u32) -> Option<(&AtomicU64, &AtomicU64)> {
        (slot < SLOTS).then(|| {
            let o = HEADER + slot as usize * SLOT_SIZE;
            (self.word64(o), self.word64(o + 8))
        })
    }

    /// A slot's state and value, read consistently (the state before and after the value
    /// agree), or `None` for a slot out of range.
    pub fn read(&self, slot: u32) -> Option<(u64, u64)> {
        let (state, value) = self.slot(slot)?;
        loop {
            let s = state.load(Ordering::Acquire);
            let v = value.load(Ordering::Acquire);
            if state.load(Ordering::Acquire) == s {
                return Some((s, v));
            }
        }
    }

    /// Server only: writes a slot. Waiters are woken by [`Region::changed`].
    pub fn write(&self, slot: u32, state: u64, value: u64) {
        if let Some((s, v)) = self.slot(slot) {
            v.store(value, Ordering::Release);
            s.store(state, Ordering::Release);
        }
    }

    /// Server only: tells every waiter that something changed.
    pub fn changed(&self) {
        self.changes().fetch_add(1, Ordering::AcqRel);
        let _ = futex::wake(self.changes(), futex::Flags::empty(), i32::MAX as u32);
    }

    /// Client: sleeps until the change count moves from `seen`, or `timeout` passes.
    pub fn wait(&self, seen: u32, timeout: Duration) {
        let ts = rustix::fs::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let _ = futex::wait(self.changes(), futex::Flags::empty(), seen, Some(&ts));
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our own mapping, used by nobody after this.
        unsafe {
            let _ = mm::munmap(self.ptr.as_ptr() as *mut _, SIZE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(r: &Region) -> OwnedFd {
        r.fd().try_clone_to_owned().unwrap()
    }

    #[test]
    fn the_client_sees_what_the_server_writes_and_cannot_write_itself() {
        let server = Region::create().unwrap();
        let client = Region::open(dup(&server)).unwrap();
        server.write(7, pack(3, SIGNALED), 42);
        server.changed();
        assert_eq!(client.read(7), Some((pack(3, SIGNALED), 42)));
        assert_eq!(client.changes().load(Ordering::Acquire), 1);
        assert_eq!(client.read(SLOTS), None);
        let fd = dup(&server);
        // SAFETY: a mapping that must be refused.
        let writable = unsafe {
            mm::mmap(
                std::ptr::null_mut(),
                SIZE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        };
        assert!(writable.is_err(), "a writable mapping of a sealed region");
        // SAFETY: the client's own read-only mapping; the change must be refused.
        let upgraded = unsafe {
            mm::mprotect(
                client.ptr.as_ptr() as *mut _,
                SIZE,
                mm::MprotectFlags::READ | mm::MprotectFlags::WRITE,
            )
        };
        assert!(
            upgraded.is_err(),
            "mprotect made the client's view writable"
        );
        assert!(
            rustix::io::write(&fd, b"x").is_err(),
            "write(2) into a sealed region"
        );
        assert!(fs::ftruncate(&fd, 0).is_err(), "shrinking a sealed region");
    }

    #[test]
    fn an_unsealed_or_short_memfd_is_refused() {
        let fd = fs::memfd_create("x", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        fs::ftruncate(&fd, SIZE as u64).unwrap();
        assert!(Region::open(fd).is_err());
        let fd = fs::memfd_create("x", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        fs::ftruncate(&fd, 4096).unwrap();
        let all = SealFlags::FUTURE_WRITE | SealFlags::SHRINK | SealFlags::GROW;
        fs::fcntl_add_seals(&fd, all).unwrap();
        assert!(Region::open(fd).is_err());
    }

    #[test]
    fn a_waiter_wakes_on_a_change() {
        let server = std::sync::Arc::new(Region::create().unwrap());
        let client = Region::open(dup(&server)).unwrap();
        let seen = client.changes().load(Ordering::Acquire);
        let s = std::sync::Arc::clone(&server);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            s.write(1, pack(1, SIGNALED), 0);
            s.changed();
        });
        let start = std::time::Instant::now();
        while client.changes().load(Ordering::Acquire) == seen {
            client.wait(seen, Duration::from_secs(5));
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(unpack(client.read(1).unwrap().0), (1, SIGNALED));
        t.join().unwrap();
    }
}
