//! Devices: destroying one frees what the ICD holds for it (queue wrappers, command buffer
//! wrappers, memory mappings) after the server has destroyed the device.

use crate::call::call;
use crate::objects::{free_children, Dispatchable};
use ash::vk::{self, Handle};
use wire::generated::commands::{C_vkCreateDevice, C_vkDestroyDevice};

pub unsafe extern "system" fn vkCreateDevice(
    pd: vk::PhysicalDevice,
    info: *const vk::DeviceCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Device,
) -> vk::Result {
    let r = vk::Result::from_raw(call(
        &C_vkCreateDevice,
        &[pd.as_raw(), info as u64, allocator as u64, out as u64],
    ) as i32);
    if r == vk::Result::SUCCESS {
        let conn = Dispatchable::conn(pd.as_raw());
        let pd_id = Dispatchable::id_of(pd.as_raw());
        let instance = conn
            .named
            .lock()
            .get(&pd_id)
            .map_or(0, |(_, parent, _)| *parent);
        crate::instance::enable_device(
            &conn,
            Dispatchable::id_of((*out).as_raw()),
            instance,
            &*info,
        );
    }
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
    let conn = Dispatchable::conn(h);
    let id = Dispatchable::id_of(h);
    conn.queues.lock().forget_device(id);
    free_children(&conn, id);
    crate::instance::forget_enabled(&conn, id);
    crate::command_buffer::forget_pools(&conn, id);
    crate::memory::forget_device(&conn, id);
    Dispatchable::free(h);
}
