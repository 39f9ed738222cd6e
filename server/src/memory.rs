//! Device memory shared with the client, zero copy.
//!
//! Each allocation of a host-visible memory type is backed by a memfd that the server creates,
//! seals against resizing (so the client cannot make the driver's reads fault), maps, and
//! imports into the host driver with `VK_EXT_external_memory_host`. The client asks for the
//! memfd on its first `vkMapMemory` and maps the same pages. The server keeps its mapping and
//! descriptor until the memory is freed or its device destroyed.
//!
//! The same memfds are the opaque fds of `VK_KHR_external_memory_fd` (`external.rs`): an
//! import brings one back, which the server checks like any descriptor from the client.

use ash::vk::{self, Handle};
use parking_lot::{Mutex, RwLock};
use rustix::fs::{
    fcntl_add_seals, fcntl_get_seals, fstat, ftruncate, memfd_create, MemfdFlags, SealFlags,
};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use std::collections::HashMap;
use std::ffi::c_void;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use tracing::{debug, warn};

pub const IMPORT_EXTENSION: &std::ffi::CStr = c"VK_EXT_external_memory_host";

/// What the server knows of one host device's memory.
pub struct DeviceMemory {
    host_visible: Vec<bool>,
    /// `minImportedHostPointerAlignment`, at least a page.
    alignment: u64,
    host_pointer_properties: vk::PFN_vkGetMemoryHostPointerPropertiesEXT,
}

/// One allocation's shared pages.
#[derive(Debug)]
pub struct Backing {
    ptr: usize,
    len: u64,
    fd: OwnedFd,
    /// The host device it was allocated on.
    device: u64,
}

impl Drop for Backing {
    fn drop(&mut self) {
        // SAFETY: our mapping; the host driver's memory object over it is gone.
        unsafe {
            let _ = munmap(self.ptr as *mut c_void, self.len as usize);
        }
    }
}

#[derive(Default)]
pub struct Memory {
    devices: RwLock<HashMap<u64, DeviceMemory>>,
    /// By client memory id.
    backings: Mutex<HashMap<u64, Backing>>,
    /// The memfd of the next opaque-fd import (`private::IMPORT_MEMORY`).
    import: Mutex<Option<OwnedFd>>,
}

impl Memory {
    /// Records what a new host device offers for importing host memory.
    pub fn add_device(&self, device: u64, info: DeviceMemory) {
        self.devices.write().insert(device, info);
    }

    /// A backing for an allocation of `size` bytes of `type_index` on `device`, if the type is
    /// host-visible and the driver can import it. `None`: allocate as the application asked.
    pub fn back(&self, device: u64, type_index: u32, size: u64) -> Option<Backing> {
        let devices = self.devices.read();
        let d = devices.get(&device)?;
        let len = d.shared_len(type_index, size).ok()?;
        let backing = match create(len, device) {
            Ok(b) => b,
            Err(e) => {
                warn!(size = len, "cannot create shared memory: {e}");
                return None;
            }
        };
        d.importable(backing, type_index)
    }

    /// Keeps a memfd from the client for the next opaque-fd import, once it is known to be
    /// one the server can map without faulting: sealed against shrinking.
    pub fn receive_import(&self, fd: OwnedFd) -> Result<(), String> {
        let seals = fcntl_get_seals(&fd).map_err(|e| format!("not a memfd ({e})"))?;
        if !seals.contains(SealFlags::SHRINK) {
            return Err("a memfd that can shrink under the driver".into());
        }
        *self.import.lock() = Some(fd);
        Ok(())
    }

    /// The backing of an allocation of `size` bytes of `type_index` on `device` that imports
    /// the memfd [`Memory::receive_import`] kept.
    pub fn take_import(&self, device: u64, type_index: u32, size: u64) -> Result<Backing, String> {
        let fd = self
            .import
            .lock()
            .take()
            .ok_or("no memfd was sent for this import")?;
        let devices = self.devices.read();
        let d = devices
            .get(&device)
            .ok_or("the device does not import host memory")?;
        let len = d.shared_len(type_index, size)?;
        let have = fstat(&fd).map_err(|e| format!("fstat: {e}"))?.st_size as u64;
        if have < len {
            return Err(format!(
                "the memfd has {have} bytes, the allocation needs {len}"
            ));
        }
        let backing = map(fd, len, device).map_err(|e| format!("mmap of {len} bytes: {e}"))?;
        d.importable(backing, type_index)
            .ok_or_else(|| format!("the host driver cannot import it as memory type {type_index}"))
    }

    pub fn adopt(&self, memory_id: u64, b: Backing) {
        self.backings.lock().insert(memory_id, b);
    }

    /// The memfd and size of client memory `memory_id`, for handing to the client.
    pub fn with_fd<R>(
        &self,
        memory_id: u64,
        f: impl FnOnce(BorrowedFd<'_>, u64) -> R,
    ) -> Option<R> {
        let b = self.backings.lock();
        let b = b.get(&memory_id)?;
        Some(f(b.fd.as_fd(), b.len))
    }

    /// Drops the backing of freed memory.
    pub fn release(&self, memory_id: u64) {
        self.backings.lock().remove(&memory_id);
    }

    /// Drops everything of a destroyed device.
    /// Whether allocations of `device` may import shared memory.
    pub fn imports(&self, device: u64) -> bool {
        self.devices.read().contains_key(&device)
    }

    pub fn forget_device(&self, device: u64) {
        self.devices.write().remove(&device);
        self.backings.lock().retain(|_, b| b.device != device);
    }
}

impl DeviceMemory {
    /// How long the shared memory behind `size` bytes of `type_index` is: the size rounded up to
    /// the import alignment. An error if the type cannot be shared memory.
    fn shared_len(&self, type_index: u32, size: u64) -> Result<u64, String> {
        if !self
            .host_visible
            .get(type_index as usize)
            .copied()
            .unwrap_or(false)
        {
            return Err(format!("memory type {type_index} is not host-visible"));
        }
        size.max(1)
            .checked_next_multiple_of(self.alignment)
            .ok_or_else(|| format!("allocation size {size} out of range"))
    }

    /// `backing` if the host driver can import it as memory of `type_index`.
    fn importable(&self, backing: Backing, type_index: u32) -> Option<Backing> {
        let mut props = vk::MemoryHostPointerPropertiesEXT::default();
        // SAFETY: a live device and a pointer to memory we mapped.
        let r = unsafe {
            (self.host_pointer_properties)(
                vk::Device::from_raw(backing.device),
                vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT,
                backing.ptr as *const c_void,
                &mut props,
            )
        };
        if r != vk::Result::SUCCESS || props.memory_type_bits & (1 << type_index) == 0 {
            debug!(
                type_index,
                "the host driver cannot import memory of this type"
            );
            return None;
        }
        Some(backing)
    }
}

impl Backing {
    /// The import struct to chain into the application's `VkMemoryAllocateInfo`.
    pub fn import_info(&self) -> vk::ImportMemoryHostPointerInfoEXT<'static> {
        vk::ImportMemoryHostPointerInfoEXT {
            handle_type: vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT,
            p_host_pointer: self.ptr as *mut c_void,
            ..Default::default()
        }
    }

    pub fn size(&self) -> u64 {
        self.len
    }
}

fn create(len: u64, device: u64) -> rustix::io::Result<Backing> {
    map(sealed_memfd(len)?, len, device)
}

/// A new memfd of `len` bytes that can neither shrink nor grow.
pub fn sealed_memfd(len: u64) -> rustix::io::Result<OwnedFd> {
    let fd = memfd_create(
        wire::private::MEMORY_MEMFD,
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    ftruncate(&fd, len)?;
    fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(fd)
}

/// Maps the first `len` bytes of `fd`, which is at least that long and sealed against shrinking.
fn map(fd: OwnedFd, len: u64, device: u64) -> rustix::io::Result<Backing> {
    // SAFETY: a shared mapping within a memfd that nobody can shrink.
    let ptr = unsafe {
        mmap(
            std::ptr::null_mut(),
            len as usize,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            0,
        )?
    };
    Ok(Backing {
        ptr: ptr as usize,
        len,
        fd,
        device,
    })
}

/// What a new device offers, read through its instance's functions.
///
/// # Safety
/// The function pointers belong to the live instance of `pd`; `device` was created from `pd`
/// with [`IMPORT_EXTENSION`] enabled.
pub unsafe fn device_memory(
    pd: vk::PhysicalDevice,
    get_memory_properties: vk::PFN_vkGetPhysicalDeviceMemoryProperties,
    get_properties2: vk::PFN_vkGetPhysicalDeviceProperties2,
    host_pointer_properties: vk::PFN_vkGetMemoryHostPointerPropertiesEXT,
) -> DeviceMemory {
    let mut mp = vk::PhysicalDeviceMemoryProperties::default();
    get_memory_properties(pd, &mut mp);
    let host_visible = mp.memory_types[..mp.memory_type_count as usize]
        .iter()
        .map(|t| {
            t.property_flags
                .contains(vk::MemoryPropertyFlags::HOST_VISIBLE)
        })
        .collect();
    let mut ext = vk::PhysicalDeviceExternalMemoryHostPropertiesEXT::default();
    let mut p2 = vk::PhysicalDeviceProperties2 {
        p_next: &mut ext as *mut _ as *mut c_void,
        ..Default::default()
    };
    get_properties2(pd, &mut p2);
    // libc's rather than rustix's: rustix reads the auxiliary vector itself, which faults under
    // valgrind (used to triage fuzzer findings in the host driver).
    // SAFETY: sysconf only reads a system value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    DeviceMemory {
        host_visible,
        alignment: ext.min_imported_host_pointer_alignment.max(page),
        host_pointer_properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An import takes only a memfd that cannot shrink under the driver's mapping.
    #[test]
    fn imports_only_memfds_sealed_against_shrinking() {
        let memory = Memory::default();
        let (pipe, _) = rustix::pipe::pipe().unwrap();
        let err = memory.receive_import(pipe).unwrap_err();
        assert!(err.contains("not a memfd"), "{err}");
        let loose = memfd_create("loose", MemfdFlags::ALLOW_SEALING).unwrap();
        ftruncate(&loose, 4096).unwrap();
        let err = memory.receive_import(loose).unwrap_err();
        assert!(err.contains("can shrink"), "{err}");
        memory.receive_import(sealed_memfd(4096).unwrap()).unwrap();
        // Taken by the next import only, and only once.
        let err = memory.take_import(1, 0, 4096).unwrap_err();
        assert!(err.contains("does not import"), "{err}");
        let err = memory.take_import(1, 0, 4096).unwrap_err();
        assert!(err.contains("no memfd"), "{err}");
    }
}
