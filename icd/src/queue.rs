//! Queues and synchronization.
//!
//! The server names each queue of a device once; the ICD keeps the wrapper with the device, so
//! asking again costs no round trip and returns the same handle, as Vulkan requires. A queue
//! asked for once the server is gone is still an object the loader can write its dispatch
//! pointer into (it writes into whatever the ICD returns): a wrapper of the ICD's own, on
//! which every call fails as on a lost device.
//!
//! `vkResetFences` can only fail for lack of memory; it is sent without waiting, like Venus
//! does, and the server applies it before anything the application does after it (one command
//! stream). Waiting for its reply cost a whole round trip per frame or dispatch.

use crate::call::{call, post};
use crate::objects::{header, NoFacts};
use ash::vk::{self, Handle};
use parking_lot::Mutex;
use std::collections::HashMap;
use wire::generated::commands::{C_vkGetDeviceQueue, C_vkGetDeviceQueue2, C_vkResetFences};

/// A device's queue wrappers handed out, by creation flags, family and index. The wrappers
/// themselves are named under the device, which frees them.
#[derive(Default)]
struct Queues(Mutex<HashMap<(vk::DeviceQueueCreateFlags, u32, u32), u64>>);

pub unsafe extern "system" fn vkGetDeviceQueue(
    device: vk::Device,
    family: u32,
    index: u32,
    out: *mut vk::Queue,
) {
    let flags = vk::DeviceQueueCreateFlags::empty();
    queue(device, (flags, family, index), out, || {
        call(
            &C_vkGetDeviceQueue,
            &[device.as_raw(), family as u64, index as u64, out as u64],
        );
    });
}

pub unsafe extern "system" fn vkGetDeviceQueue2(
    device: vk::Device,
    info: *const vk::DeviceQueueInfo2<'_>,
    out: *mut vk::Queue,
) {
    if info.is_null() {
        return;
    }
    let i = &*info;
    queue(
        device,
        (i.flags, i.queue_family_index, i.queue_index),
        out,
        || {
            call(
                &C_vkGetDeviceQueue2,
                &[device.as_raw(), info as u64, out as u64],
            );
        },
    );
}

/// Writes the wrapper of a device's queue to `out`, asking the server (`ask`) the first time.
unsafe fn queue(
    device: vk::Device,
    key: (vk::DeviceQueueCreateFlags, u32, u32),
    out: *mut vk::Queue,
    ask: impl FnOnce(),
) {
    if out.is_null() || device == vk::Device::null() {
        return;
    }
    let dev = header(device.as_raw());
    let queues = dev.families.get::<Queues>();
    if let Some(&h) = queues.0.lock().get(&key) {
        *out = vk::Queue::from_raw(h);
        return;
    }
    *out = vk::Queue::null();
    ask();
    let mut h = (*out).as_raw();
    if h == 0 {
        // The server is gone (or named nothing).
        h = dev.adopt_unnamed(vk::ObjectType::QUEUE);
    }
    // Two threads asking at once for the same queue get the same wrapper.
    let h = *queues.0.lock().entry(key).or_insert(h);
    *out = vk::Queue::from_raw(h);
}

pub unsafe extern "system" fn vkResetFences(
    device: vk::Device,
    count: u32,
    fences: *const vk::Fence,
) -> vk::Result {
    post(
        &C_vkResetFences,
        &[device.as_raw(), count as u64, fences as u64],
        &NoFacts,
    )
}
