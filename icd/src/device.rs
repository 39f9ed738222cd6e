//! Devices: destroying one frees what the ICD holds for it (queue wrappers, command buffer
//! wrappers, memory mappings) after the server has destroyed the device.

use crate::call::call;
use crate::objects::{free_children, Dispatchable};
use ash::vk::{self, Handle};
use wire::generated::commands::C_vkDestroyDevice;

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
    free_children(&conn, id);
    crate::command_buffer::forget_pools(&conn, id);
    crate::memory::forget_device(&conn, id);
    Dispatchable::free(h);
}
