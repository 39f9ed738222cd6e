//! Opaque file descriptors of device memory (`VK_KHR_external_memory_fd`).
//!
//! An allocation's opaque fd is the sealed memfd it shares with the server (`memory.rs`), so it
//! means the same in every process that holds it. Exporting asks the server for that memfd as a
//! first map does. Importing sends it back over the control socket just before the allocation
//! (`private::IMPORT_MEMORY`); the server checks it again and imports its pages into the host
//! driver. Only such memfds import: any other descriptor (another driver's opaque fd, which has a
//! layout of its own) gets `VK_ERROR_INVALID_EXTERNAL_HANDLE`.
//! The server offers the extension only where every allocation is such a memfd.

use crate::log::log;
use crate::memfd::{self, Allocations};
use crate::objects::header;
use ash::vk::{self, Handle};
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use wire::codec::Decoder;
use wire::control::ControlMsg;
use wire::frame::Status;
use wire::generated::commands::{C_vkAllocateMemory, C_vkGetMemoryFdKHR};
use wire::private::IMPORT_MEMORY;

const OPAQUE: vk::ExternalMemoryHandleTypeFlags = vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD;

pub unsafe extern "system" fn vkGetMemoryFdKHR(
    device: vk::Device,
    info: *const vk::MemoryGetFdInfoKHR<'_>,
    fd: *mut i32,
) -> vk::Result {
    if info.is_null() || fd.is_null() {
        return vk::Result::ERROR_INVALID_EXTERNAL_HANDLE;
    }
    let (memory, handle_type) = ((*info).memory.as_raw(), (*info).handle_type);
    if handle_type != OPAQUE {
        log!(
            warn,
            "airlock: vkGetMemoryFdKHR: handle type {handle_type:?}: Airlock exports opaque fds only"
        );
        return vk::Result::ERROR_INVALID_EXTERNAL_HANDLE;
    }
    let dev = header(device.as_raw());
    let Some(want) = dev.families.get::<Allocations>().size(memory) else {
        log!(
            warn,
            "airlock: vkGetMemoryFdKHR: memory {memory} was not allocated through this driver"
        );
        return vk::Result::ERROR_INVALID_EXTERNAL_HANDLE;
    };
    match memfd::receive(dev.conn(), memory, want, &C_vkGetMemoryFdKHR) {
        Ok((memfd, _)) => {
            *fd = memfd.into_raw_fd();
            vk::Result::SUCCESS
        }
        Err(vk::Result::ERROR_MEMORY_MAP_FAILED) => {
            log!(
                warn,
                "airlock: vkGetMemoryFdKHR: memory {memory} is not shared memory (allocated without VkExportMemoryAllocateInfo?)"
            );
            vk::Result::ERROR_INVALID_EXTERNAL_HANDLE
        }
        Err(r) => r,
    }
}

/// Opaque fds have no properties to ask for (the application must not pass one), and Airlock
/// has no other kind.
pub unsafe extern "system" fn vkGetMemoryFdPropertiesKHR(
    _device: vk::Device,
    handle_type: vk::ExternalMemoryHandleTypeFlags,
    _fd: i32,
    _properties: *mut vk::MemoryFdPropertiesKHR<'_>,
) -> vk::Result {
    log!(
        warn,
        "airlock: vkGetMemoryFdPropertiesKHR: handle type {handle_type:?} has no fd properties"
    );
    vk::Result::ERROR_INVALID_EXTERNAL_HANDLE
}

/// The descriptor a `VkMemoryAllocateInfo` chain imports, if any.
///
/// # Safety
/// `info` is NULL or the application's valid allocate info.
pub unsafe fn imported_fd(
    info: *const vk::MemoryAllocateInfo<'_>,
) -> Result<Option<i32>, vk::Result> {
    let Some(info) = info.as_ref() else {
        return Ok(None);
    };
    let mut p = info.p_next as *const vk::BaseInStructure<'_>;
    while let Some(b) = p.as_ref() {
        if b.s_type == vk::StructureType::IMPORT_MEMORY_FD_INFO_KHR {
            let i = &*(p as *const vk::ImportMemoryFdInfoKHR<'_>);
            if i.handle_type.is_empty() {
                return Ok(None);
            }
            if i.handle_type != OPAQUE || i.fd < 0 {
                log!(
                    warn,
                    "airlock: vkAllocateMemory: cannot import fd {} of handle type {:?}",
                    i.fd,
                    i.handle_type
                );
                return Err(vk::Result::ERROR_INVALID_EXTERNAL_HANDLE);
            }
            return Ok(Some(i.fd));
        }
        p = b.p_next;
    }
    Ok(None)
}

/// Whether `fd` is a memfd the server made for device memory, by its name (`memory.rs` in the
/// server). Where `/proc` cannot tell, the server's checks decide alone.
fn names_airlock_memory(fd: BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    match std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) {
        Ok(target) => target
            .to_string_lossy()
            .strip_prefix("/memfd:")
            .is_some_and(|name| name.starts_with(wire::private::MEMORY_MEMFD)),
        Err(_) => true,
    }
}

/// Imports `fd` into an allocation of `size` bytes: hands it to the server just before the
/// allocation, `allocate`, which the server pairs with it by their order; a successful import
/// owns the descriptor (the server holds its own copy).
///
/// # Safety
/// `device` is a live device wrapper; `fd` the application's descriptor.
pub unsafe fn import(
    device: vk::Device,
    fd: i32,
    size: u64,
    allocate: impl FnOnce() -> vk::Result,
) -> vk::Result {
    let conn = header(device.as_raw()).conn();
    let _handover = conn.handover();
    let borrowed = BorrowedFd::borrow_raw(fd);
    if !names_airlock_memory(borrowed) {
        log!(
            warn,
            "airlock: vkAllocateMemory: the fd to import is not an opaque fd of Airlock's memory"
        );
        return vk::Result::ERROR_INVALID_EXTERNAL_HANDLE;
    }
    if let Err(why) = memfd::check(borrowed, size) {
        log!(
            warn,
            "airlock: vkAllocateMemory: the fd to import is not memory of Airlock's: {why}"
        );
        return vk::Result::ERROR_INVALID_EXTERNAL_HANDLE;
    }
    let cmd = &C_vkAllocateMemory;
    if let Err(e) = conn.send_control(&ControlMsg::ImportMemory, &[borrowed]) {
        return conn.fail(cmd, &format!("sending the fd to import: {e}"));
    }
    let mut body = Vec::new();
    let status = match conn.exchange_parts(IMPORT_MEMORY, &[], true, &mut body) {
        Ok(s) => s,
        Err(why) => return conn.fail(cmd, &format!("import: {why}")),
    };
    let mut dc = Decoder::new(&body);
    let r = match (status, dc.u32(), dc.finish()) {
        (Some(Status::Ok), Ok(r), Ok(())) => vk::Result::from_raw(r as i32),
        _ => return conn.fail(cmd, "malformed import reply"),
    };
    if r != vk::Result::SUCCESS {
        log!(
            warn,
            "airlock: vkAllocateMemory: the server refused the fd to import: {r}"
        );
        return vk::Result::ERROR_INVALID_EXTERNAL_HANDLE;
    }
    let r = allocate();
    if r == vk::Result::SUCCESS {
        drop(OwnedFd::from_raw_fd(fd));
    }
    r
}
