//! Queues: the server names each queue of a device once, and the ICD keeps its wrapper with the
//! device, so asking again costs no round trip and returns the same handle, as Vulkan requires.
//! A queue asked for once the server is gone is still an object the loader can write its
//! dispatch pointer into (it writes into whatever the ICD returns): a wrapper of the ICD's own,
//! on which every call fails as on a lost device.

use crate::call::call;
use crate::objects::{new_id, Dispatchable};
use ash::vk::{self, Handle};
use std::collections::HashMap;
use wire::generated::commands::{C_vkGetDeviceQueue, C_vkGetDeviceQueue2};

/// A queue of a device: device id, creation flags, family, index.
type QueueKey = (u64, vk::DeviceQueueCreateFlags, u32, u32);

/// The queue wrappers handed out, by device and queue.
#[derive(Default)]
pub struct Queues(HashMap<QueueKey, u64>);

impl Queues {
    /// Forgets the queues of a destroyed device (their wrappers go with its children).
    pub fn forget_device(&mut self, device: u64) {
        self.0.retain(|k, _| k.0 != device);
    }
}

pub unsafe extern "system" fn vkGetDeviceQueue(
    device: vk::Device,
    family: u32,
    index: u32,
    out: *mut vk::Queue,
) {
    let flags = vk::DeviceQueueCreateFlags::empty();
    queue(device, flags, family, index, out, || {
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
        i.flags,
        i.queue_family_index,
        i.queue_index,
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
    flags: vk::DeviceQueueCreateFlags,
    family: u32,
    index: u32,
    out: *mut vk::Queue,
    ask: impl FnOnce(),
) {
    if out.is_null() || device == vk::Device::null() {
        return;
    }
    let conn = Dispatchable::conn(device.as_raw());
    let device_id = Dispatchable::id_of(device.as_raw());
    let key = (device_id, flags, family, index);
    if let Some(&h) = conn.queues.lock().0.get(&key) {
        *out = vk::Queue::from_raw(h);
        return;
    }
    *out = vk::Queue::null();
    ask();
    let mut h = (*out).as_raw();
    if h == 0 {
        // The server is gone (or named nothing): a wrapper of our own, a child of the device.
        let id = new_id();
        h = Dispatchable::create(id, &conn);
        conn.named
            .lock()
            .insert(id, (h as usize, device_id, vk::ObjectType::QUEUE));
    }
    // Two threads asking at once for the same queue get the same wrapper.
    let h = *conn.queues.lock().0.entry(key).or_insert(h);
    *out = vk::Queue::from_raw(h);
}
