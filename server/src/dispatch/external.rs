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

use super::{answer, Pending, Server, Table};
use ash::vk::{self, Handle};
use bumpalo::Bump;
use std::ffi::{c_void, CStr};
use tracing::warn;

pub const EXTENSION: &CStr = c"VK_KHR_external_memory_fd";

const OPAQUE: vk::ExternalMemoryHandleTypeFlags = vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD;
const HOST: vk::ExternalMemoryHandleTypeFlags =
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
unsafe fn take_external(
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

impl Server {
    /// Whether the memory of `pd` can be exported and imported as opaque fds.
    pub(super) fn opaque_fds(&self, pd: vk::PhysicalDevice, table: Option<&Table>) -> bool {
        if !self.host_has_import(pd, table) {
            return false;
        }
        let Some(f) = table.and_then(|t| {
            self.host
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

    /// `before` of `vkGetPhysicalDeviceExternalBufferProperties`: an opaque-fd question becomes
    /// a host-memory one.
    ///
    /// # Safety
    /// `args` are the decoded arguments of that command.
    pub(super) unsafe fn external_buffer_query(
        &self,
        args: &mut [u64],
        table: Option<&Table>,
    ) -> Pending {
        let info = &mut *(args[1] as *mut vk::PhysicalDeviceExternalBufferInfo);
        if info.handle_type == OPAQUE
            && self.opaque_fds(vk::PhysicalDevice::from_raw(args[0]), table)
        {
            info.handle_type = HOST;
            Pending::Opaque
        } else {
            Pending::None
        }
    }

    /// `after` of `vkGetPhysicalDeviceExternalBufferProperties`.
    ///
    /// # Safety
    /// `args` are the arguments of that command, which returned.
    pub(super) unsafe fn external_buffer_answer(args: &[u64], pending: &Pending) {
        let p = &mut *(args[2] as *mut vk::ExternalBufferProperties);
        answer_for(
            &mut p.external_memory_properties,
            matches!(pending, Pending::Opaque),
        );
    }

    /// `before` of `vkGetPhysicalDeviceImageFormatProperties2`: the same for images; any other
    /// handle type is not supported.
    ///
    /// # Safety
    /// `args` are the decoded arguments of that command.
    pub(super) unsafe fn external_image_query(
        &self,
        args: &mut [u64],
        table: Option<&Table>,
    ) -> (Option<u64>, Pending) {
        let info = &*(args[1] as *const vk::PhysicalDeviceImageFormatInfo2);
        let mut p = info.p_next as *mut vk::BaseOutStructure;
        while !p.is_null() {
            if (*p).s_type == vk::StructureType::PHYSICAL_DEVICE_EXTERNAL_IMAGE_FORMAT_INFO {
                let e = &mut *(p as *mut vk::PhysicalDeviceExternalImageFormatInfo);
                if e.handle_type.is_empty() {
                    break;
                }
                let pd = vk::PhysicalDevice::from_raw(args[0]);
                if e.handle_type != OPAQUE || !self.opaque_fds(pd, table) {
                    return answer(vk::Result::ERROR_FORMAT_NOT_SUPPORTED);
                }
                e.handle_type = HOST;
                return (None, Pending::Opaque);
            }
            p = (*p).p_next;
        }
        (None, Pending::None)
    }

    /// `after` of a successful `vkGetPhysicalDeviceImageFormatProperties2` that asked about
    /// opaque fds.
    ///
    /// # Safety
    /// `args` are the arguments of that command, which returned.
    pub(super) unsafe fn external_image_answer(args: &[u64]) {
        let props = &*(args[2] as *const vk::ImageFormatProperties2);
        let mut p = props.p_next as *mut vk::BaseOutStructure;
        while !p.is_null() {
            if (*p).s_type == vk::StructureType::EXTERNAL_IMAGE_FORMAT_PROPERTIES {
                let e = &mut *(p as *mut vk::ExternalImageFormatProperties);
                answer_for(&mut e.external_memory_properties, true);
            }
            p = (*p).p_next;
        }
    }

    /// `before` of `vkAllocateMemory`: shared memory behind every host-visible allocation, the
    /// client's memfd behind an opaque-fd import.
    ///
    /// # Safety
    /// `args` are the decoded arguments of that command, in `arena`.
    pub(super) unsafe fn allocate_memory(
        &self,
        args: &mut [u64],
        arena: &Bump,
    ) -> (Option<u64>, Pending) {
        let device = args[0];
        let info = &mut *(args[1] as *mut vk::MemoryAllocateInfo);
        // Refused before anything is reserved: no memfd, no host allocation.
        if !self.limits.memory_fits(info.allocation_size) {
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
            Some(_) => match self.memory.take_import(device, ty, size) {
                Ok(b) => b,
                Err(why) => return refuse(format!("opaque fd import: {why}")),
            },
            None if !(export & !OPAQUE).is_empty() => {
                return refuse(format!("export of handle types {export:?}"));
            }
            None => match self.memory.back(device, ty, size) {
                Some(b) => b,
                None if !export.is_empty() => {
                    return refuse(format!("memory type {ty} cannot be exported"));
                }
                None => return (None, Pending::None),
            },
        };
        let import = arena.alloc(backing.import_info());
        import.p_next = info.p_next;
        info.p_next = import as *const _ as *const c_void;
        info.allocation_size = backing.size();
        (None, Pending::Backing(backing))
    }
}
