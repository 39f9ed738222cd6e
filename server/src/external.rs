//! Opaque file descriptors of device memory (`VK_KHR_external_memory_fd`), made of Airlock's
//! shared memory.
//!
//! Every host-visible allocation already lives in a sealed memfd that both processes map
//! (`memory.rs`), and that memfd is its opaque fd: the client exports it by asking for it as for
//! a map, and an import brings one back over the control socket (`private::IMPORT_MEMORY`) to be
//! checked, mapped and imported into the host driver as host memory, like any other allocation.
//! The host driver never sees an opaque fd. So Airlock offers them only where every allocation
//! can be shared memory: the host imports host memory and each memory type is host-visible
//! (lavapipe). Elsewhere neither the extension nor the handle type is reported.

use crate::dispatch::{answer, Before, Hook, Pending, Server, HOST};
use crate::generated::views;
use crate::tables::Table;
use ash::vk;
use std::ffi::{c_void, CStr};
use tracing::warn;

pub const EXTENSION: &CStr = c"VK_KHR_external_memory_fd";

pub const OPAQUE: vk::ExternalMemoryHandleTypeFlags = vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD;
const HOST_MEMORY: vk::ExternalMemoryHandleTypeFlags =
    vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT;

/// What an opaque fd of Airlock's memory allows: the same as lavapipe's own.
fn opaque_properties() -> vk::ExternalMemoryProperties {
    vk::ExternalMemoryProperties {
        external_memory_features: vk::ExternalMemoryFeatureFlags::EXPORTABLE
            | vk::ExternalMemoryFeatureFlags::IMPORTABLE,
        export_from_imported_handle_types: OPAQUE,
        compatible_handle_types: OPAQUE,
    }
}

/// The answer for a handle type: opaque fds where the host driver said it could import the
/// resource's memory as host memory (the question it was asked instead), nothing otherwise.
fn answer_for(props: &mut vk::ExternalMemoryProperties, opaque: bool) {
    let importable = props
        .external_memory_features
        .contains(vk::ExternalMemoryFeatureFlags::IMPORTABLE);
    *props = if opaque && importable {
        opaque_properties()
    } else {
        vk::ExternalMemoryProperties::default()
    };
}

/// Unlinks the opaque-fd import and the export request from a decoded `VkMemoryAllocateInfo`
/// chain: the handle type to import (`None`: no import), the handle types to export.
///
/// # Safety
/// `head` starts a valid, decoded chain in arena memory.
pub unsafe fn take_external(
    head: &mut *const c_void,
) -> (
    Option<vk::ExternalMemoryHandleTypeFlags>,
    vk::ExternalMemoryHandleTypeFlags,
) {
    let (mut import, mut export) = (None, vk::ExternalMemoryHandleTypeFlags::empty());
    let mut link: *mut *const c_void = head;
    while !(*link).is_null() {
        let node = *link as *mut vk::BaseOutStructure;
        match (*node).s_type {
            vk::StructureType::IMPORT_MEMORY_FD_INFO_KHR => {
                let t = (*(node as *const vk::ImportMemoryFdInfoKHR)).handle_type;
                // A handle type of 0 imports nothing.
                if !t.is_empty() {
                    import = Some(t);
                }
            }
            vk::StructureType::EXPORT_MEMORY_ALLOCATE_INFO => {
                export |= (*(node as *const vk::ExportMemoryAllocateInfo)).handle_types;
            }
            _ => {
                link = std::ptr::addr_of_mut!((*node).p_next).cast();
                continue;
            }
        }
        *link = (*node).p_next as *const c_void;
    }
    (import, export)
}

/// Whether the memory of `pd` can be exported and imported as opaque fds.
pub fn opaque_fds(server: &Server, pd: vk::PhysicalDevice, table: Option<&Table>) -> bool {
    if !crate::device::host_has_import(server, pd, table) {
        return false;
    }
    let Some(f) = table.and_then(|t| {
        server
            .host
            .instance_proc(t.instance, c"vkGetPhysicalDeviceMemoryProperties")
    }) else {
        return false;
    };
    // SAFETY: the host's function of that name, called on one of its physical devices.
    let mp = unsafe {
        let f: vk::PFN_vkGetPhysicalDeviceMemoryProperties = std::mem::transmute(f);
        let mut mp = vk::PhysicalDeviceMemoryProperties::default();
        f(pd, &mut mp);
        mp
    };
    mp.memory_types[..(mp.memory_type_count as usize).min(vk::MAX_MEMORY_TYPES)]
        .iter()
        .all(|t| {
            t.property_flags
                .contains(vk::MemoryPropertyFlags::HOST_VISIBLE)
        })
}

/// An opaque-fd question about a buffer becomes a host-memory one.
///
/// # Safety
/// `args` are the decoded arguments of `vkGetPhysicalDeviceExternalBufferProperties`.
pub unsafe fn before_buffer_query(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    let v = views::GetPhysicalDeviceExternalBufferProperties::of(args);
    let info = &mut *(v.p_external_buffer_info as *mut vk::PhysicalDeviceExternalBufferInfo);
    if info.handle_type == OPAQUE && opaque_fds(server, v.physical_device, h.table) {
        info.handle_type = HOST_MEMORY;
        (None, Pending::Opaque)
    } else {
        HOST
    }
}

/// # Safety
/// `args` are the arguments of a `vkGetPhysicalDeviceExternalBufferProperties` that returned.
pub unsafe fn after_buffer_query(args: &[u64], pending: Pending) {
    let v = views::GetPhysicalDeviceExternalBufferProperties::of(args);
    let p = &mut *v.p_external_buffer_properties;
    answer_for(
        &mut p.external_memory_properties,
        matches!(pending, Pending::Opaque),
    );
}

/// The same for images; any other handle type is not supported.
///
/// # Safety
/// `args` are the decoded arguments of `vkGetPhysicalDeviceImageFormatProperties2`.
pub unsafe fn before_image_query(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    let v = views::GetPhysicalDeviceImageFormatProperties2::of(args);
    let mut p = (*v.p_image_format_info).p_next as *mut vk::BaseOutStructure;
    while !p.is_null() {
        if (*p).s_type == vk::StructureType::PHYSICAL_DEVICE_EXTERNAL_IMAGE_FORMAT_INFO {
            let e = &mut *(p as *mut vk::PhysicalDeviceExternalImageFormatInfo);
            if e.handle_type.is_empty() {
                break;
            }
            if e.handle_type != OPAQUE || !opaque_fds(server, v.physical_device, h.table) {
                return answer(vk::Result::ERROR_FORMAT_NOT_SUPPORTED);
            }
            e.handle_type = HOST_MEMORY;
            return (None, Pending::Opaque);
        }
        p = (*p).p_next;
    }
    HOST
}

/// After a query that asked about opaque fds: the answer for opaque fds.
///
/// # Safety
/// `args` are the arguments of a `vkGetPhysicalDeviceImageFormatProperties2` that returned.
pub unsafe fn after_image_query(args: &[u64], pending: Pending) {
    if !matches!(pending, Pending::Opaque) {
        return;
    }
    let v = views::GetPhysicalDeviceImageFormatProperties2::of(args);
    let mut p = (*v.p_image_format_properties).p_next as *mut vk::BaseOutStructure;
    while !p.is_null() {
        if (*p).s_type == vk::StructureType::EXTERNAL_IMAGE_FORMAT_PROPERTIES {
            let e = &mut *(p as *mut vk::ExternalImageFormatProperties);
            answer_for(&mut e.external_memory_properties, true);
        }
        p = (*p).p_next;
    }
}

/// The client answers these itself: the fds are its memfds (the ICD's `external.rs`).
pub fn answered_by_client(h: &Hook) -> Before {
    warn!("{}: the client answers it, not the server", h.cmd.name);
    answer(vk::Result::ERROR_INVALID_EXTERNAL_HANDLE)
}
