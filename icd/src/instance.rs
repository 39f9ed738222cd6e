//! Instance-level entry points written by hand: proc-address lookup, what the ICD answers alone
//! (extension and layer lists), and instance creation and destruction, which start the server
//! and own the instance's wrapper.

use crate::call::call;
use crate::conn;
use crate::generated::entry::ENTRIES;
use crate::objects::{free_children, Dispatchable};
use ash::vk;
use std::ffi::{c_char, CStr};
use wire::desc::Level;
use wire::generated::commands::{C_vkCreateInstance, C_vkDestroyInstance, COMMANDS};

/// The entry point named `name`, if it is one of `levels`.
pub unsafe fn lookup(name: *const c_char, levels: &[Level]) -> vk::PFN_vkVoidFunction {
    if name.is_null() {
        return None;
    }
    let name = CStr::from_ptr(name).to_str().ok()?;
    let i = ENTRIES.binary_search_by(|(n, _, _)| (*n).cmp(name)).ok()?;
    let (_, id, f) = ENTRIES[i];
    if levels.contains(&COMMANDS[id as usize].level) {
        f
    } else {
        None
    }
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

pub unsafe extern "system" fn vkGetDeviceProcAddr(
    _device: vk::Device,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    lookup(name, &[Level::Device])
}

unsafe fn fill<T: Copy>(list: &[T], count: *mut u32, out: *mut T) -> vk::Result {
    if count.is_null() {
        return vk::Result::ERROR_INITIALIZATION_FAILED;
    }
    if out.is_null() {
        *count = list.len() as u32;
        return vk::Result::SUCCESS;
    }
    let n = (*count as usize).min(list.len());
    std::ptr::copy_nonoverlapping(list.as_ptr(), out, n);
    *count = n as u32;
    if n < list.len() {
        vk::Result::INCOMPLETE
    } else {
        vk::Result::SUCCESS
    }
}

fn properties(name: &str, spec_version: u32) -> vk::ExtensionProperties {
    let mut p = vk::ExtensionProperties {
        spec_version,
        ..Default::default()
    };
    for (d, s) in p.extension_name.iter_mut().zip(name.bytes().take(255)) {
        *d = s as c_char;
    }
    p
}

/// The host's instance extensions that Airlock carries, as the handshake reported them.
pub unsafe extern "system" fn vkEnumerateInstanceExtensionProperties(
    layer: *const c_char,
    count: *mut u32,
    out: *mut vk::ExtensionProperties,
) -> vk::Result {
    if !layer.is_null() {
        return vk::Result::ERROR_LAYER_NOT_PRESENT;
    }
    let conn = match conn::current() {
        Ok(c) => c,
        Err(r) => return r,
    };
    let list: Vec<_> = conn
        .welcome
        .extensions
        .iter()
        .map(|e| properties(&e.name, e.spec_version))
        .collect();
    fill(&list, count, out)
}

/// A driver has no layers of its own.
pub unsafe extern "system" fn vkEnumerateInstanceLayerProperties(
    count: *mut u32,
    out: *mut vk::LayerProperties,
) -> vk::Result {
    fill(&[], count, out)
}

pub unsafe extern "system" fn vkEnumerateDeviceLayerProperties(
    _pd: vk::PhysicalDevice,
    count: *mut u32,
    out: *mut vk::LayerProperties,
) -> vk::Result {
    fill(&[], count, out)
}

pub unsafe extern "system" fn vkCreateInstance(
    info: *const vk::InstanceCreateInfo,
    allocator: *const vk::AllocationCallbacks,
    instance: *mut vk::Instance,
) -> vk::Result {
    let conn = match conn::current() {
        Ok(c) => c,
        Err(r) => return r,
    };
    if info.is_null() || instance.is_null() {
        return vk::Result::ERROR_INITIALIZATION_FAILED;
    }
    let i = &*info;
    for k in 0..i.enabled_extension_count as usize {
        let name = CStr::from_ptr(*i.pp_enabled_extension_names.add(k));
        if !conn
            .welcome
            .extensions
            .iter()
            .any(|e| e.name.as_bytes() == name.to_bytes())
        {
            crate::log::log!(
                warn,
                "airlock: vkCreateInstance: extension {name:?} is not carried"
            );
            return vk::Result::ERROR_EXTENSION_NOT_PRESENT;
        }
    }
    let r = call(
        &C_vkCreateInstance,
        &[info as u64, allocator as u64, instance as u64],
    );
    vk::Result::from_raw(r as i32)
}

pub unsafe extern "system" fn vkDestroyInstance(
    instance: vk::Instance,
    allocator: *const vk::AllocationCallbacks,
) {
    use ash::vk::Handle;
    let h = instance.as_raw();
    if h == 0 {
        return;
    }
    call(&C_vkDestroyInstance, &[h, allocator as u64]);
    crate::stats::dump();
    let conn = Dispatchable::conn(h);
    free_children(&conn, Dispatchable::id_of(h));
    Dispatchable::free(h);
}
