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
//!
//! The memory family's calls: allocation (shared memory behind it, within the client's
//! limit), the memfd handover for a map or an export (`private::MAP_MEMORY`) and for an import
//! (`private::IMPORT_MEMORY`), buffers and images that such memory backs, and the heaps the
//! client sees (no larger than what it may allocate).

use crate::dispatch::{answer, Before, Hook, Pending, Server, HOST};
use crate::external::{take_external, OPAQUE};
use crate::generated::views;
use crate::objects::ClientId;
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
use wire::codec::Encoder;
use wire::control::{ControlError, ControlMsg};
use wire::frame::Status;

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
    get_properties2: Option<vk::PFN_vkGetPhysicalDeviceProperties2>,
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
    if let Some(get) = get_properties2 {
        get(pd, &mut p2);
    }
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

// ---------------------------------------------------------------- the family's calls

/// Shared memory behind every host-visible allocation, the client's memfd behind an opaque-fd
/// import.
///
/// # Safety
/// `args` are the decoded arguments of `vkAllocateMemory`, in `h.arena`.
pub unsafe fn before_allocate(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    let v = views::AllocateMemory::of(args);
    let device = vk::Handle::as_raw(v.device);
    let info = &mut *(v.p_allocate_info as *mut vk::MemoryAllocateInfo);
    // Refused before anything is reserved: no memfd, no host allocation.
    if !server.limits.memory_fits(info.allocation_size) {
        return answer(vk::Result::ERROR_OUT_OF_DEVICE_MEMORY);
    }
    let (import, export) = take_external(&mut info.p_next);
    let refuse = |why: String| {
        warn!("vkAllocateMemory: {why}; VK_ERROR_INVALID_EXTERNAL_HANDLE");
        answer(vk::Result::ERROR_INVALID_EXTERNAL_HANDLE)
    };
    let (ty, size) = (info.memory_type_index, info.allocation_size);
    let backing = match import {
        Some(t) if t != OPAQUE => return refuse(format!("import of handle type {t:?}")),
        Some(_) => match server.memory.take_import(device, ty, size) {
            Ok(b) => b,
            Err(why) => return refuse(format!("opaque fd import: {why}")),
        },
        None if !(export & !OPAQUE).is_empty() => {
            return refuse(format!("export of handle types {export:?}"));
        }
        None => match server.memory.back(device, ty, size) {
            Some(b) => b,
            None if !export.is_empty() => {
                return refuse(format!("memory type {ty} cannot be exported"));
            }
            None => return HOST,
        },
    };
    let import = h.arena.alloc(backing.import_info());
    import.p_next = info.p_next;
    info.p_next = import as *const _ as *const c_void;
    info.allocation_size = backing.size();
    (None, Pending::Backing(backing))
}

/// The new allocation keeps its shared memory and counts against the client's limit.
///
/// # Safety
/// `call` is a `vkAllocateMemory` that succeeded.
pub unsafe fn after_allocate(server: &Server, call: &wire::interp::DecodedCall, pending: Pending) {
    let Some(n) = call.new_handles.first() else {
        return;
    };
    if let Pending::Backing(b) = pending {
        server.memory.adopt(n.id, b);
    }
    // Its size is the one the host allocated (rounded up when shared memory backs it).
    let v = views::AllocateMemory::of(&call.args);
    let size = (*v.p_allocate_info).allocation_size;
    server
        .limits
        .allocated(n.id, size, vk::Handle::as_raw(v.device));
}

/// Vulkan lets memory imported from a host pointer back only resources created for that handle
/// type; the client cannot know its memory is imported, so buffers and images of a device that
/// imports are created for it.
///
/// # Safety
/// `args` are the decoded arguments of `vkCreateBuffer` or `vkCreateImage`, in `h.arena`.
pub unsafe fn before_create_resource(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    let host = vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT;
    let (device, head, s_type) = if h.cmd.id == wire::generated::commands::id::vkCreateBuffer {
        let v = views::CreateBuffer::of(args);
        let info = &mut *(v.p_create_info as *mut vk::BufferCreateInfo);
        let t = vk::StructureType::EXTERNAL_MEMORY_BUFFER_CREATE_INFO;
        (v.device, &mut info.p_next, t)
    } else {
        let v = views::CreateImage::of(args);
        let info = &mut *(v.p_create_info as *mut vk::ImageCreateInfo);
        let t = vk::StructureType::EXTERNAL_MEMORY_IMAGE_CREATE_INFO;
        (v.device, &mut info.p_next, t)
    };
    if !server.memory.imports(vk::Handle::as_raw(device)) {
        return HOST;
    }
    // Both structs are {sType, pNext, handleTypes}.
    let mut node = *head as *mut vk::ExternalMemoryBufferCreateInfo;
    while !node.is_null() && (*node).s_type != s_type {
        node = (*node).p_next as *mut vk::ExternalMemoryBufferCreateInfo;
    }
    if let Some(n) = node.as_mut() {
        // An opaque fd is the client's name for the same shared memory.
        n.handle_types = (n.handle_types & !OPAQUE) | host;
    } else {
        let n = h.arena.alloc(vk::ExternalMemoryBufferCreateInfo {
            s_type,
            p_next: *head,
            handle_types: host,
            ..Default::default()
        });
        *head = n as *const _ as *const c_void;
    }
    HOST
}

/// The heaps the client sees are no larger than what it may allocate.
///
/// # Safety
/// `args` are the arguments of a memory-properties query that returned.
pub unsafe fn after_properties(server: &Server, args: &[u64], h: &Hook) {
    if h.cmd.id == wire::generated::commands::id::vkGetPhysicalDeviceMemoryProperties {
        let v = views::GetPhysicalDeviceMemoryProperties::of(args);
        clamp_heaps(server, &mut *v.p_memory_properties);
        return;
    }
    let v = views::GetPhysicalDeviceMemoryProperties2::of(args);
    let p = &mut *v.p_memory_properties;
    clamp_heaps(server, &mut p.memory_properties);
    let mut node = p.p_next as *mut vk::BaseOutStructure;
    while !node.is_null() {
        if (*node).s_type == vk::StructureType::PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT {
            clamp_budget(
                server,
                &mut *(node as *mut vk::PhysicalDeviceMemoryBudgetPropertiesEXT),
            );
        }
        node = (*node).p_next;
    }
}

fn clamp_heaps(server: &Server, p: &mut vk::PhysicalDeviceMemoryProperties) {
    let Some(max) = server.limits.max_device_memory else {
        return;
    };
    let n = (p.memory_heap_count as usize).min(p.memory_heaps.len());
    for h in &mut p.memory_heaps[..n] {
        h.size = h.size.min(max);
    }
}

fn clamp_budget(server: &Server, b: &mut vk::PhysicalDeviceMemoryBudgetPropertiesEXT<'_>) {
    let Some(max) = server.limits.max_device_memory else {
        return;
    };
    let left = max.saturating_sub(server.limits.memory_in_use());
    for budget in &mut b.heap_budget {
        *budget = (*budget).min(left);
    }
}

/// `private::MAP_MEMORY`: hands the memfd behind a client memory object to the client with
/// `send` (the control socket), for a first map or an export.
pub fn map_request(
    server: &Server,
    payload: &[u8],
    out: &mut Encoder,
    send: impl FnOnce(BorrowedFd<'_>, &ControlMsg) -> Result<(), ControlError>,
) -> Status {
    let Ok(id) = <[u8; 8]>::try_from(payload).map(|b| ClientId(u64::from_le_bytes(b))) else {
        out.bytes(b"MAP_MEMORY: expected one memory id");
        return Status::BadRequest;
    };
    if let Err(e) = server.objects.lookup(vk::ObjectType::DEVICE_MEMORY, id) {
        out.bytes(format!("MAP_MEMORY: {e}").as_bytes());
        return Status::BadRequest;
    }
    let sent = server.memory.with_fd(id.0, |fd, size| {
        let msg = ControlMsg::MemoryFd { memory: id.0, size };
        send(fd, &msg).map(|()| size)
    });
    let (r, size) = match sent {
        Some(Ok(size)) => (vk::Result::SUCCESS, size),
        Some(Err(e)) => {
            warn!(memory = id.0, "sending memory to the client: {e}");
            (vk::Result::ERROR_MEMORY_MAP_FAILED, 0)
        }
        None => {
            warn!(
                memory = id.0,
                "vkMapMemory of memory that is not host-visible shared memory"
            );
            (vk::Result::ERROR_MEMORY_MAP_FAILED, 0)
        }
    };
    out.u32(r.as_raw() as u32);
    out.u64(size);
    Status::Ok
}

/// `private::IMPORT_MEMORY`: takes the memfd the client sent (`received`) for its next
/// opaque-fd import.
pub fn import_request(
    server: &Server,
    payload: &[u8],
    out: &mut Encoder,
    received: impl FnOnce() -> Result<OwnedFd, String>,
) -> Status {
    if !payload.is_empty() {
        out.bytes(b"IMPORT_MEMORY: expected no parameters");
        return Status::BadRequest;
    }
    let r = match received().and_then(|fd| server.memory.receive_import(fd)) {
        Ok(()) => vk::Result::SUCCESS,
        Err(why) => {
            warn!("opaque fd import: {why}; VK_ERROR_INVALID_EXTERNAL_HANDLE");
            vk::Result::ERROR_INVALID_EXTERNAL_HANDLE
        }
    };
    out.u32(r.as_raw() as u32);
    Status::Ok
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
