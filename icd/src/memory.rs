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
//! The mappings are the device's: destroying it unmaps them. The handover of the memfd, and its
//! checks, are `memfd.rs`'s.

use crate::call::call;
use crate::conn::Connection;
use crate::log::log;
use crate::memfd::{self, Allocations};
use crate::objects::header;
use ash::vk::{self, Handle};
use parking_lot::Mutex;
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use std::collections::HashMap;
use std::ffi::c_void;
use std::os::fd::AsFd;
use wire::generated::commands::{C_vkAllocateMemory, C_vkFreeMemory, C_vkMapMemory};

struct Mapping {
    ptr: usize,
    len: u64,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping; the memory it shows is freed or its device destroyed.
        unsafe {
            let _ = munmap(self.ptr as *mut c_void, self.len as usize);
        }
    }
}

/// A device's memory mapped into this process, by memory id; unmapped with the device.
#[derive(Default)]
struct Mappings(Mutex<HashMap<u64, Mapping>>);

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
    let r = match crate::external::imported_fd(info) {
        Err(r) => return r,
        Ok(None) => vk::Result::from_raw(call(&C_vkAllocateMemory, &args) as i32),
        Ok(Some(fd)) => crate::external::import(device, fd, (*info).allocation_size, || {
            vk::Result::from_raw(call(&C_vkAllocateMemory, &args) as i32)
        }),
    };
    if r == vk::Result::SUCCESS && !info.is_null() {
        header(device.as_raw())
            .families
            .get::<Allocations>()
            .insert((*memory).as_raw(), (*info).allocation_size);
    }
    r
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
    let dev = header(device.as_raw());
    let id = memory.as_raw();
    let mut maps = dev.families.get::<Mappings>().0.lock();
    let m = match maps.entry(id) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let Some(want) = dev.families.get::<Allocations>().size(id) else {
                log!(
                    warn,
                    "airlock: vkMapMemory: memory {id} was not allocated through this driver"
                );
                return vk::Result::ERROR_MEMORY_MAP_FAILED;
            };
            let (ptr, len) = match fetch(dev.conn(), id, want) {
                Ok(m) => m,
                Err(r) => return r,
            };
            crate::stats::mapped(len);
            v.insert(Mapping { ptr, len })
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
    let (fd, size) = memfd::receive(conn, memory, want, &C_vkMapMemory)?;
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
    let dev = header(device.as_raw());
    dev.families
        .get::<Mappings>()
        .0
        .lock()
        .remove(&memory.as_raw());
    dev.families.get::<Allocations>().remove(memory.as_raw());
    call(
        &C_vkFreeMemory,
        &[device.as_raw(), memory.as_raw(), allocator as u64],
    );
}
