//! Multi-draws: their arrays are spaced by the application's own `stride`, not by the element
//! size the encoder assumes, so they are gathered into a packed copy first.

use crate::call::call;
use ash::vk::{self, Handle};
use wire::generated::commands::{C_vkCmdDrawMultiEXT, C_vkCmdDrawMultiIndexedEXT};

/// `count` elements of `T` read every `stride` bytes from `p`.
unsafe fn packed<T: Copy>(p: *const T, count: u32, stride: u32) -> Vec<T> {
    if p.is_null() {
        return Vec::new();
    }
    (0..count as usize)
        .map(|i| std::ptr::read_unaligned((p as *const u8).add(i * stride as usize) as *const T))
        .collect()
}

/// The array's address as a call argument; NULL when empty, as the application may pass.
fn address<T>(v: &[T]) -> u64 {
    if v.is_empty() {
        0
    } else {
        v.as_ptr() as u64
    }
}

pub unsafe extern "system" fn vkCmdDrawMultiEXT(
    cb: vk::CommandBuffer,
    count: u32,
    draws: *const vk::MultiDrawInfoEXT,
    instances: u32,
    first_instance: u32,
    stride: u32,
) {
    let draws = packed(draws, count, stride);
    call(
        &C_vkCmdDrawMultiEXT,
        &[
            cb.as_raw(),
            count as u64,
            address(&draws),
            instances as u64,
            first_instance as u64,
            std::mem::size_of::<vk::MultiDrawInfoEXT>() as u64,
        ],
    );
}

pub unsafe extern "system" fn vkCmdDrawMultiIndexedEXT(
    cb: vk::CommandBuffer,
    count: u32,
    draws: *const vk::MultiDrawIndexedInfoEXT,
    instances: u32,
    first_instance: u32,
    stride: u32,
    vertex_offset: *const i32,
) {
    let draws = packed(draws, count, stride);
    call(
        &C_vkCmdDrawMultiIndexedEXT,
        &[
            cb.as_raw(),
            count as u64,
            address(&draws),
            instances as u64,
            first_instance as u64,
            std::mem::size_of::<vk::MultiDrawIndexedInfoEXT>() as u64,
            vertex_offset as u64,
        ],
    );
}
