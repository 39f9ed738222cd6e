//! Devices: the wrapper keeps what the device enabled, and everything the families keep for
//! it (memory mappings, command pools and their command buffers, templates, queues). Destroying
//! the device frees the wrapper, and all of that with it.

use crate::call::{call, create};
use crate::instance::{enabled_of_physical_device, Enabled};
use crate::objects::{header, Object};
use crate::util::names;
use ash::vk::{self, Handle};
use std::sync::Arc;
use wire::generated::commands::{C_vkCreateDevice, C_vkDestroyDevice};

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
    let r = create(&C_vkCreateDevice, pd.as_raw(), info, allocator, out);
    if r != vk::Result::SUCCESS {
        return r;
    }
    let i = &*info;
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
