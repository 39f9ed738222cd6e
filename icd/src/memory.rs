//! Device memory in the application's address space: zero copy.
//!
//! The server backs each host-visible allocation with a memfd that it maps and imports into the
//! host driver. On the first `vkMapMemory` of an allocation the ICD asks for that memfd once,
//! maps it here (read and write, never executable) and closes the descriptor: the application
//! then writes the very pages the driver reads. The mapping stays until `vkFreeMemory`, so later
//! maps are local and unmapping loses nothing.
//!
//! The memfd is also the allocation's opaque fd (`external.rs`), which `vkAllocateMemory` may
//! import.
//!
//! The server is not trusted with the mapping: the size it names must cover the application's
//! `allocationSize` (which the ICD remembers from `vkAllocateMemory`), and the memfd must be at
//! least that long and sealed against shrinking, so no access the application may make within
//! its allocation can fall outside the mapping or past the end of the file (SIGBUS).

use crate::call::call;
use crate::conn::Connection;
use crate::log::log;
use crate::objects::Dispatchable;
use ash::vk::{self, Handle};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use std::collections::HashMap;
use std::ffi::c_void;
use std::os::fd::AsFd;
use wire::codec::Decoder;
use wire::control::ControlMsg;
use wire::desc::CommandDesc;
use wire::frame::Status;
use wire::generated::commands::{C_vkAllocateMemory, C_vkFreeMemory, C_vkMapMemory};
use wire::private::MAP_MEMORY;

pub struct Mapping {
    ptr: usize,
    len: u64,
    /// The device the memory was allocated from.
    device: u64,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping; the memory it shows is freed or its device destroyed.
        unsafe {
            let _ = munmap(self.ptr as *mut c_void, self.len as usize);
        }
    }
}

#[derive(Default)]
pub struct Mappings(HashMap<u64, Mapping>, HashMap<u64, Allocation>);

/// What the application asked `vkAllocateMemory` for.
struct Allocation {
    size: u64,
    device: u64,
}

/// Most the server may round an allocation up by (its import alignment).
const MAX_ROUNDING: u64 = 64 << 20;

impl Mappings {
    /// The size the application asked for when it allocated `memory`.
    pub(crate) fn allocation_size(&self, memory: u64) -> Option<u64> {
        self.1.get(&memory).map(|a| a.size)
    }
}

pub unsafe extern "system" fn vkAllocateMemory(
    device: vk::Device,
    info: *const vk::MemoryAllocateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    memory: *mut vk::DeviceMemory,
) -> vk::Result {
    let args = [
        device.as_raw(),
        info as u64,
        allocator as u64,
        memory as u64,
    ];
    let imported = match crate::external::imported_fd(info) {
        Ok(fd) => fd,
        Err(r) => return r,
    };
    let r = match imported {
        None => call(&C_vkAllocateMemory, &args),
        Some(fd) => {
            let conn = Dispatchable::conn(device.as_raw());
            let _order = conn.imports.lock();
            if let Err(r) = crate::external::send_import(&conn, fd, (*info).allocation_size) {
                return r;
            }
            let r = call(&C_vkAllocateMemory, &args);
            if r == 0 {
                // A successful import owns the descriptor; the server holds its own copy.
                drop(<std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd));
            }
            r
        }
    };
    if r == 0 {
        allocated(&args);
    }
    vk::Result::from_raw(r as i64 as i32)
}

/// Remembers the size of a successful `vkAllocateMemory`.
///
/// # Safety
/// `args` are the application's arguments of a `vkAllocateMemory` that succeeded.
unsafe fn allocated(args: &[u64]) {
    let (device, info, out) = (args[0], args[1] as *const vk::MemoryAllocateInfo, args[3]);
    if info.is_null() || out == 0 {
        return;
    }
    let conn = Dispatchable::conn_borrowed(device);
    let memory = *(out as *const u64);
    conn.mappings.lock().1.insert(
        memory,
        Allocation {
            size: (*info).allocation_size,
            device: Dispatchable::id_of(device),
        },
    );
}

pub unsafe extern "system" fn vkMapMemory(
    device: vk::Device,
    memory: vk::DeviceMemory,
    offset: vk::DeviceSize,
    size: vk::DeviceSize,
    _flags: vk::MemoryMapFlags,
    pp_data: *mut *mut c_void,
) -> vk::Result {
    if pp_data.is_null() {
        return vk::Result::ERROR_MEMORY_MAP_FAILED;
    }
    *pp_data = std::ptr::null_mut();
    let conn = Dispatchable::conn(device.as_raw());
    let dev_id = Dispatchable::id_of(device.as_raw());
    // One lock for the whole handover, so concurrent first maps cannot take each other's
    // descriptors off the socket.
    let mut maps = conn.mappings.lock();
    let id = memory.as_raw();
    let maps = &mut *maps;
    let m = match maps.0.entry(id) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let Some(want) = maps.1.get(&id).map(|a| a.size) else {
                log!(
                    warn,
                    "airlock: vkMapMemory: memory {id} was not allocated through this driver"
                );
                return vk::Result::ERROR_MEMORY_MAP_FAILED;
            };
            let (ptr, len) = match fetch(&conn, id, want) {
                Ok(m) => m,
                Err(r) => return r,
            };
            crate::stats::mapped(len);
            v.insert(Mapping {
                ptr,
                len,
                device: dev_id,
            })
        }
    };
    let fits = offset < m.len && (size == vk::WHOLE_SIZE || size <= m.len - offset);
    if !fits {
        log!(
            warn,
            "airlock: vkMapMemory: range {offset}+{size} outside the allocation of {} bytes",
            m.len
        );
        return vk::Result::ERROR_MEMORY_MAP_FAILED;
    }
    *pp_data = (m.ptr + offset as usize) as *mut c_void;
    vk::Result::SUCCESS
}

/// Asks the server for the memfd of `memory`, of at least `want` bytes, and maps it.
fn fetch(conn: &Connection, memory: u64, want: u64) -> Result<(usize, u64), vk::Result> {
    let (fd, size) = receive(conn, memory, want, &C_vkMapMemory)?;
    // SAFETY: a fresh shared mapping of a memfd of at least `size` bytes that cannot shrink.
    let ptr = unsafe {
        mmap(
            std::ptr::null_mut(),
            size as usize,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd.as_fd(),
            0,
        )
    };
    match ptr {
        Ok(p) => Ok((p as usize, size)),
        Err(e) => {
            log!(error, "airlock: vkMapMemory: mmap of {size} bytes: {e}");
            Err(vk::Result::ERROR_MEMORY_MAP_FAILED)
        }
    }
}

/// Asks the server for the memfd of `memory`, of at least `want` bytes: the descriptor and the
/// size the server maps. The caller holds the `mappings` lock, so that concurrent requests cannot
/// take each other's descriptors off the socket. `ERROR_MEMORY_MAP_FAILED`: the server has no
/// memfd behind that memory.
pub(crate) fn receive(
    conn: &Connection,
    memory: u64,
    want: u64,
    cmd: &CommandDesc,
) -> Result<(std::os::fd::OwnedFd, u64), vk::Result> {
    let what = cmd.name;
    let mut body = Vec::new();
    let status = conn
        .exchange_parts(MAP_MEMORY, &[&memory.to_le_bytes()], true, &mut body)
        .map_err(|why| conn.fail(cmd, &why))?;
    if status != Some(Status::Ok) {
        log!(error, "airlock: {what}: the server rejected the request");
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
    if let Err(why) = check_memfd(fd.as_fd(), size) {
        return Err(conn.fail(cmd, &why));
    }
    Ok((fd, size))
}

/// Whether a memfd can back a mapping of `size` bytes for good: pages past the end of a file
/// raise SIGBUS when touched, so it must be that long and unable to shrink.
pub(crate) fn check_memfd(fd: std::os::fd::BorrowedFd<'_>, size: u64) -> Result<(), String> {
    use rustix::fs::{fcntl_get_seals, fstat, SealFlags};
    let len = fstat(fd)
        .map_err(|e| format!("fstat of the memory: {e}"))?
        .st_size;
    if (len as u64) < size {
        return Err(format!("the memfd has {len} bytes, fewer than {size}"));
    }
    let seals = fcntl_get_seals(fd).map_err(|e| format!("not a memfd ({e})"))?;
    if !seals.contains(SealFlags::SHRINK) {
        return Err("the memfd can shrink under the mapping".into());
    }
    Ok(())
}

/// The mapping stays until the memory is freed: nothing to tell the server.
pub unsafe extern "system" fn vkUnmapMemory(_device: vk::Device, _memory: vk::DeviceMemory) {}

pub unsafe extern "system" fn vkFreeMemory(
    device: vk::Device,
    memory: vk::DeviceMemory,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    if memory == vk::DeviceMemory::null() {
        return;
    }
    let conn = Dispatchable::conn(device.as_raw());
    {
        let mut maps = conn.mappings.lock();
        maps.0.remove(&memory.as_raw());
        maps.1.remove(&memory.as_raw());
    }
    call(
        &C_vkFreeMemory,
        &[device.as_raw(), memory.as_raw(), allocator as u64],
    );
}

/// Unmaps the memory of a device being destroyed.
pub fn forget_device(conn: &Connection, device_id: u64) {
    let mut maps = conn.mappings.lock();
    maps.0.retain(|_, m| m.device != device_id);
    maps.1.retain(|_, a| a.device != device_id);
}
