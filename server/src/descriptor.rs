//! Descriptors: a set layout no pipeline layout could use (too many descriptors, binding
//! numbers the host would size arrays by) is refused before the host sizes it; the sets of a pool go with it (freed, reset or destroyed).

use crate::dispatch::{answer, Before, Hook, Server, HOST};
use crate::generated::views;
use crate::limits::{MAX_LAYOUT_BINDING, MAX_LAYOUT_DESCRIPTORS};
use crate::objects::HostHandle;
use crate::util::slice;
use ash::vk::{self, Handle};
use tracing::warn;
use wire::interp::DecodedCall;

/// # Safety
/// `args` are the decoded arguments of `vkCreateDescriptorSetLayout`.
pub unsafe fn before_create_layout(args: &mut [u64], h: &Hook) -> Before {
    let info = &*views::CreateDescriptorSetLayout::of(args).p_create_info;
    let bindings = slice(info.p_bindings, u64::from(info.binding_count));
    if let Some(b) = bindings.iter().find(|b| b.binding >= MAX_LAYOUT_BINDING) {
        warn!(
            "{}: binding number {}, beyond {MAX_LAYOUT_BINDING}; VK_ERROR_OUT_OF_HOST_MEMORY",
            h.cmd.name, b.binding
        );
        return answer(vk::Result::ERROR_OUT_OF_HOST_MEMORY);
    }
    let total: u64 = bindings.iter().map(|b| u64::from(b.descriptor_count)).sum();
    if total > MAX_LAYOUT_DESCRIPTORS {
        warn!(
            "{}: {total} descriptors, more than any pipeline layout may use \
             ({MAX_LAYOUT_DESCRIPTORS} at most); VK_ERROR_OUT_OF_HOST_MEMORY",
            h.cmd.name
        );
        return answer(vk::Result::ERROR_OUT_OF_HOST_MEMORY);
    }
    HOST
}

/// The new sets belong to their pool.
///
/// # Safety
/// `call` is a `vkAllocateDescriptorSets` that succeeded.
pub unsafe fn after_allocate_sets(server: &Server, call: &DecodedCall) {
    let pool = (*views::AllocateDescriptorSets::of(&call.args).p_allocate_info).descriptor_pool;
    adopt(server, vk::ObjectType::DESCRIPTOR_POOL, pool.as_raw(), call);
}

/// # Safety
/// `args` are the arguments of a `vkResetDescriptorPool` that succeeded.
pub unsafe fn after_reset_pool(server: &Server, args: &[u64]) {
    let pool = HostHandle(
        views::ResetDescriptorPool::of(args)
            .descriptor_pool
            .as_raw(),
    );
    if let Some(pool) = server.objects.id_of(vk::ObjectType::DESCRIPTOR_POOL, pool) {
        server.objects.unbind_children(pool);
    }
}

/// Remembers the objects a pool allocated, which go when the pool goes.
pub fn adopt(server: &Server, ty: vk::ObjectType, pool: u64, call: &DecodedCall) {
    if let Some(pool) = server.objects.id_of(ty, HostHandle(pool)) {
        let ids: Vec<u64> = call.new_handles.iter().map(|n| n.id).collect();
        server.objects.adopt_all(pool, &ids);
    }
}
