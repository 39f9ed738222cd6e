//! The loader interface: version negotiation and the lookup of entry points by name, which for
//! a device answers only what its API version and enabled extensions give.

use crate::device::Device;
use crate::generated::entry::ENTRIES;
use crate::objects::Object;
use ash::vk::{self, Handle};
use std::ffi::{c_char, CStr};
use wire::desc::Level;

/// The loader interface version Airlock implements.
const LOADER_INTERFACE_VERSION: u32 = 5;

#[no_mangle]
pub unsafe extern "system" fn vk_icdNegotiateLoaderICDInterfaceVersion(
    version: *mut u32,
) -> vk::Result {
    if version.is_null() {
        return vk::Result::ERROR_INCOMPATIBLE_DRIVER;
    }
    if *version < LOADER_INTERFACE_VERSION {
        // Older loaders do not wrap dispatchable objects the way this ICD expects.
        return vk::Result::ERROR_INCOMPATIBLE_DRIVER;
    }
    *version = LOADER_INTERFACE_VERSION;
    vk::Result::SUCCESS
}

#[no_mangle]
pub unsafe extern "system" fn vk_icdGetInstanceProcAddr(
    instance: vk::Instance,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    vkGetInstanceProcAddr(instance, name)
}

#[no_mangle]
pub unsafe extern "system" fn vk_icdGetPhysicalDeviceProcAddr(
    _instance: vk::Instance,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    lookup(name, &[Level::PhysicalDevice])
}

/// The entry point named `name`, if it is one of `levels`, with the names of what provides it.
unsafe fn lookup_entry(
    name: *const c_char,
    levels: &[Level],
) -> Option<(unsafe extern "system" fn(), &'static [&'static str])> {
    if name.is_null() {
        return None;
    }
    let name = CStr::from_ptr(name).to_str().ok()?;
    let i = ENTRIES.binary_search_by(|e| e.0.cmp(name)).ok()?;
    let (_, level, f, origins) = ENTRIES[i];
    if !levels.contains(&level) {
        return None;
    }
    // The two lookups are this module's (the generated table lists them without a function).
    let f = match name {
        "vkGetInstanceProcAddr" => {
            let f: vk::PFN_vkGetInstanceProcAddr = vkGetInstanceProcAddr;
            std::mem::transmute::<vk::PFN_vkGetInstanceProcAddr, unsafe extern "system" fn()>(f)
        }
        "vkGetDeviceProcAddr" => {
            let f: vk::PFN_vkGetDeviceProcAddr = vkGetDeviceProcAddr;
            std::mem::transmute::<vk::PFN_vkGetDeviceProcAddr, unsafe extern "system" fn()>(f)
        }
        _ => f?,
    };
    Some((f, origins))
}

/// The entry point named `name`, if it is one of `levels`.
unsafe fn lookup(name: *const c_char, levels: &[Level]) -> vk::PFN_vkVoidFunction {
    lookup_entry(name, levels).map(|(f, _)| f)
}

const ALL: &[Level] = &[
    Level::Global,
    Level::Instance,
    Level::PhysicalDevice,
    Level::Device,
];

pub unsafe extern "system" fn vkGetInstanceProcAddr(
    instance: vk::Instance,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    if instance == vk::Instance::null() {
        lookup(name, &[Level::Global])
    } else {
        lookup(name, ALL)
    }
}

/// A device's commands: only those of its API version and of the extensions it (or its instance)
/// enabled, as Vulkan requires of `vkGetDeviceProcAddr`.
pub unsafe extern "system" fn vkGetDeviceProcAddr(
    device: vk::Device,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    let (f, origins) = lookup_entry(name, &[Level::Device])?;
    if device == vk::Device::null() {
        return None;
    }
    let enabled = &Object::<Device>::get(device.as_raw()).state.enabled;
    enabled.provides(origins).then_some(f)
}
