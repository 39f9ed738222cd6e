//! Device memory as the memfds it shares with the server: what the application allocated, and
//! the handover of an allocation's memfd from the server (a first map, an export), checked.
//!
//! The server is not trusted with the memfd: the size it names must cover the application's
//! `allocationSize` (which the ICD remembers from `vkAllocateMemory`), and the memfd must be at
//! least that long and sealed against shrinking, so no access the application may make within
//! its allocation can fall outside a mapping or past the end of the file (SIGBUS).

use crate::conn::Connection;
use crate::log::log;
use ash::vk;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use wire::codec::Decoder;
use wire::control::ControlMsg;
use wire::desc::CommandDesc;
use wire::frame::Status;
use wire::private::MAP_MEMORY;

/// Most the server may round an allocation up by (its import alignment).
const MAX_ROUNDING: u64 = 64 << 20;

/// A device's allocations: memory id → the size the application asked for.
#[derive(Default)]
pub struct Allocations(Mutex<HashMap<u64, u64>>);

impl Allocations {
    pub fn insert(&self, memory: u64, size: u64) {
        self.0.lock().insert(memory, size);
    }

    pub fn remove(&self, memory: u64) {
        self.0.lock().remove(&memory);
    }

    /// The size the application asked for when it allocated `memory`.
    pub fn size(&self, memory: u64) -> Option<u64> {
        self.0.lock().get(&memory).copied()
    }
}

/// Asks the server for the memfd of `memory`, of at least `want` bytes, for `cmd`: the
/// descriptor and the size the server maps. `ERROR_MEMORY_MAP_FAILED`: the server has no memfd
/// behind that memory.
pub fn receive(
    conn: &Connection,
    memory: u64,
    want: u64,
    cmd: &CommandDesc,
) -> Result<(OwnedFd, u64), vk::Result> {
    // Concurrent requests must not take each other's descriptors off the socket.
    let _handover = conn.handover();
    let mut body = Vec::new();
    let status = conn
        .exchange_parts(MAP_MEMORY, &[&memory.to_le_bytes()], true, &mut body)
        .map_err(|why| conn.fail(cmd, &why.to_string()))?;
    if status != Some(Status::Ok) {
        log!(
            error,
            "airlock: {}: the server rejected the request",
            cmd.name
        );
        return Err(vk::Result::ERROR_MEMORY_MAP_FAILED);
    }
    let mut dc = Decoder::new(&body);
    let (r, size) = match (dc.u32(), dc.u64()) {
        (Ok(r), Ok(s)) => (vk::Result::from_raw(r as i32), s),
        _ => return Err(conn.fail(cmd, "malformed reply")),
    };
    if r != vk::Result::SUCCESS {
        // A map can fail only so (anything else would be a result the application does not
        // expect from vkMapMemory).
        return Err(vk::Result::ERROR_MEMORY_MAP_FAILED);
    }
    if dc.finish().is_err() || size < want.max(1) || size - want > MAX_ROUNDING {
        return Err(conn.fail(
            cmd,
            &format!("the server offers {size} bytes for an allocation of {want}"),
        ));
    }
    let (msg, fds) = conn
        .recv_control()
        .map_err(|e| conn.fail(cmd, &format!("waiting for the memory: {e}")))?;
    let fd = match (msg, <[_; 1]>::try_from(fds)) {
        (ControlMsg::MemoryFd { memory: m, size: s }, Ok([fd])) if m == memory && s == size => fd,
        _ => return Err(conn.fail(cmd, "the server sent something else than the memory")),
    };
    if let Err(why) = check(fd.as_fd(), size) {
        return Err(conn.fail(cmd, &why.to_string()));
    }
    Ok((fd, size))
}

/// Why a descriptor cannot back a mapping.
#[derive(Debug, thiserror::Error)]
pub enum MemfdError {
    #[error("fstat of the memory: {0}")]
    Stat(rustix::io::Errno),
    #[error("the memfd has {len} bytes, fewer than {size}")]
    TooShort { len: i64, size: u64 },
    #[error("not a memfd ({0})")]
    NotMemfd(rustix::io::Errno),
    #[error("the memfd can shrink under the mapping")]
    CanShrink,
}

/// Whether a memfd can back a mapping of `size` bytes for good: pages past the end of a file
/// raise SIGBUS when touched, so it must be that long and unable to shrink.
pub fn check(fd: std::os::fd::BorrowedFd<'_>, size: u64) -> Result<(), MemfdError> {
    use rustix::fs::{fcntl_get_seals, fstat, SealFlags};
    let len = fstat(fd).map_err(MemfdError::Stat)?.st_size;
    if (len as u64) < size {
        return Err(MemfdError::TooShort { len, size });
    }
    let seals = fcntl_get_seals(fd).map_err(MemfdError::NotMemfd)?;
    if !seals.contains(SealFlags::SHRINK) {
        return Err(MemfdError::CanShrink);
    }
    Ok(())
}
