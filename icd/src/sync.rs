//! Synchronization calls that need no answer from the server.
//!
//! `vkResetFences` can only fail for lack of memory; it is sent without waiting, like Venus
//! does, and the server applies it before anything the application does after it (one command
//! stream). Waiting for its reply cost a whole round trip per frame or dispatch.

use crate::objects::Dispatchable;
use ash::vk::{self, Handle};
use wire::generated::commands::C_vkResetFences;

pub unsafe extern "system" fn vkResetFences(
    device: vk::Device,
    count: u32,
    fences: *const vk::Fence,
) -> vk::Result {
    let conn = Dispatchable::conn_borrowed(device.as_raw());
    conn.post(
        &C_vkResetFences,
        &[device.as_raw(), count as u64, fences as u64],
    )
}
