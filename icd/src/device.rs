//! Devices: the wrapper keeps what the device enabled, and everything the families keep for
//! it (memory mappings, command pools and their command buffers, templates, queues). Destroying
//! the device frees the wrapper, and all of that with it.

use crate::call::{call, create};
use crate::instance::{
    carried_names, enabled_of_physical_device, own_extensions, properties, Enabled,
};
use crate::objects::{header, Object};
use crate::util::{fill, names};
use ash::vk::{self, Handle};
use std::ffi::c_char;
use std::sync::Arc;
use wire::generated::commands::{
    C_vkCreateDevice, C_vkDestroyDevice, C_vkEnumerateDeviceExtensionProperties,
};

/// A device's own state.
pub struct Device {
    pub enabled: Arc<Enabled>,
}

pub unsafe extern "system" fn vkCreateDevice(
    pd: vk::PhysicalDevice,
    info: *const vk::DeviceCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Device,
) -> vk::Result {
    if info.is_null() {
        return vk::Result::ERROR_INITIALIZATION_FAILED;
    }
    let i = &*info;
    // The server creates the device without the extensions that are the ICD's alone.
    let carried = carried_names(i.pp_enabled_extension_names, i.enabled_extension_count);
    let sent = vk::DeviceCreateInfo {
        enabled_extension_count: carried.len() as u32,
        pp_enabled_extension_names: carried.as_ptr(),
        ..*i
    };
    let r = create(&C_vkCreateDevice, pd.as_raw(), &sent, allocator, out);
    if r != vk::Result::SUCCESS {
        return r;
    }
    let enabled = enabled_of_physical_device(pd.as_raw()).with(names(
        i.pp_enabled_extension_names,
        i.enabled_extension_count,
    ));
    // The generic path leaves the new device's id; the wrapper carries its state.
    let id = (*out).as_raw();
    let conn = header(pd.as_raw()).conn();
    let state = Device {
        enabled: Arc::new(enabled),
    };
    *out = vk::Device::from_raw(Object::create(id, conn, pd.as_raw(), state));
    r
}

pub unsafe extern "system" fn vkDestroyDevice(
    device: vk::Device,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    let h = device.as_raw();
    if h == 0 {
        return;
    }
    call(&C_vkDestroyDevice, &[h, allocator as u64]);
    Object::<Device>::free(h);
}

/// The host's device extensions that both sides carry (the server's answer), and the ICD's own.
pub unsafe extern "system" fn vkEnumerateDeviceExtensionProperties(
    pd: vk::PhysicalDevice,
    layer: *const c_char,
    count: *mut u32,
    out: *mut vk::ExtensionProperties,
) -> vk::Result {
    if !layer.is_null() {
        return vk::Result::ERROR_LAYER_NOT_PRESENT;
    }
    let ask = |n: &mut u32, p: *mut vk::ExtensionProperties| {
        let args = [pd.as_raw(), 0, n as *mut u32 as u64, p as u64];
        vk::Result::from_raw(call(&C_vkEnumerateDeviceExtensionProperties, &args) as i32)
    };
    let mut n = 0u32;
    let r = ask(&mut n, std::ptr::null_mut());
    if r != vk::Result::SUCCESS {
        return r;
    }
    let mut list = vec![vk::ExtensionProperties::default(); n as usize];
    let r = ask(&mut n, list.as_mut_ptr());
    if r.as_raw() < 0 {
        return r;
    }
    list.truncate(n as usize);
    list.extend(own_extensions(false).map(|e| properties(e.name, e.spec_version)));
    fill(&list, count, out)
}
