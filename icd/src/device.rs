//! Devices: destroying one frees what the ICD holds for it (queue wrappers, command buffer
//! wrappers, memory mappings) after the server has destroyed the device. Private data names
//! objects of any type by a 64-bit value, which for dispatchable objects is our wrapper's
//! address: the id travels instead.

use crate::call::call;
use crate::objects::{free_children, Dispatchable};
use ash::vk::{self, Handle};
use wire::generated::commands::{
    C_vkCreateDevice, C_vkDestroyDevice, C_vkGetPrivateData, C_vkSetPrivateData,
};

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
    free_children(&conn, id);
    crate::instance::forget_enabled(&conn, id);
    crate::command_buffer::forget_pools(&conn, id);
    crate::memory::forget_device(&conn, id);
    Dispatchable::free(h);
}

/// The value that names `handle` of type `ty` on the wire.
unsafe fn object_id(ty: vk::ObjectType, handle: u64) -> u64 {
    match ty {
        vk::ObjectType::INSTANCE
        | vk::ObjectType::PHYSICAL_DEVICE
        | vk::ObjectType::DEVICE
        | vk::ObjectType::QUEUE
        | vk::ObjectType::COMMAND_BUFFER => Dispatchable::id_of(handle),
        _ => handle,
    }
}

pub unsafe extern "system" fn vkSetPrivateData(
    device: vk::Device,
    ty: vk::ObjectType,
    handle: u64,
    slot: vk::PrivateDataSlot,
    data: u64,
) -> vk::Result {
    vk::Result::from_raw(call(
        &C_vkSetPrivateData,
        &[
            device.as_raw(),
            ty.as_raw() as u32 as u64,
            object_id(ty, handle),
            slot.as_raw(),
            data,
        ],
    ) as i32)
}

pub unsafe extern "system" fn vkGetPrivateData(
    device: vk::Device,
    ty: vk::ObjectType,
    handle: u64,
    slot: vk::PrivateDataSlot,
    data: *mut u64,
) {
    call(
        &C_vkGetPrivateData,
        &[
            device.as_raw(),
            ty.as_raw() as u32 as u64,
            object_id(ty, handle),
            slot.as_raw(),
            data as u64,
        ],
    );
}
