//! Queues and synchronization: a submission of a command buffer whose recording the server
//! rejected fails; only timeline semaphores reach the timeline calls; no external semaphore or
//! fence is offered.

use crate::dispatch::{answer, Before, Hook, Server, HOST};
use crate::generated::views;
use crate::util::slice;
use ash::vk::{self, Handle};
use parking_lot::Mutex;
use std::collections::HashSet;
use tracing::warn;
use wire::generated::commands::id;

/// Host semaphores created as timeline semaphores. The host driver trusts the client to pass
/// only those to the timeline calls (lavapipe calls through a null function pointer on a
/// binary one: found by the server_stream fuzzer); the server checks.
#[derive(Default)]
pub struct Semaphores {
    timeline: Mutex<HashSet<u64>>,
}

/// # Safety
/// `args` are the decoded arguments of `vkQueueSubmit` or `vkQueueSubmit2`.
pub unsafe fn before_submit(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    if !server.command_buffers.any_broken() {
        return HOST;
    }
    let used: Vec<u64> = if h.cmd.id == id::vkQueueSubmit {
        let v = views::QueueSubmit::of(args);
        slice(v.p_submits, u64::from(v.submit_count))
            .iter()
            .flat_map(|s| slice(s.p_command_buffers, u64::from(s.command_buffer_count)))
            .map(|c| c.as_raw())
            .collect()
    } else {
        let v = views::QueueSubmit2::of(args);
        slice(v.p_submits, u64::from(v.submit_count))
            .iter()
            .flat_map(|s| {
                slice(
                    s.p_command_buffer_infos,
                    u64::from(s.command_buffer_info_count),
                )
            })
            .map(|c| c.command_buffer.as_raw())
            .collect()
    };
    if let Some(bad) = server.command_buffers.first_broken(&used) {
        warn!(
            command_buffer = format!("{bad:#x}"),
            "{}: a command buffer whose recording the server rejected; VK_ERROR_UNKNOWN",
            h.cmd.name
        );
        return answer(vk::Result::ERROR_UNKNOWN);
    }
    HOST
}

/// # Safety
/// `args` are the decoded arguments of `vkGetSemaphoreCounterValue`, `vkSignalSemaphore` or
/// `vkWaitSemaphores`.
pub unsafe fn before_timeline(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    let semaphores: Vec<u64> = match h.cmd.id {
        id::vkGetSemaphoreCounterValue => {
            vec![views::GetSemaphoreCounterValue::of(args).semaphore.as_raw()]
        }
        id::vkSignalSemaphore => {
            let v = views::SignalSemaphore::of(args);
            vec![(*v.p_signal_info).semaphore.as_raw()]
        }
        _ => {
            let info = &*views::WaitSemaphores::of(args).p_wait_info;
            slice(info.p_semaphores, u64::from(info.semaphore_count))
                .iter()
                .map(|s| s.as_raw())
                .collect()
        }
    };
    let timeline = server.semaphores.timeline.lock();
    if let Some(bad) = semaphores.iter().find(|s| !timeline.contains(s)) {
        warn!(
            semaphore = format!("{bad:#x}"),
            "{}: not a timeline semaphore; VK_ERROR_UNKNOWN", h.cmd.name
        );
        return answer(vk::Result::ERROR_UNKNOWN);
    }
    HOST
}

/// Remembers whether a new semaphore is a timeline one.
///
/// # Safety
/// `args` are the arguments of a `vkCreateSemaphore` that succeeded.
pub unsafe fn after_create_semaphore(server: &Server, args: &[u64]) {
    let v = views::CreateSemaphore::of(args);
    let timeline = is_timeline((*v.p_create_info).p_next);
    let host = (*v.p_semaphore).as_raw();
    // Set either way: a host handle may be a destroyed semaphore's, reused.
    let mut t = server.semaphores.timeline.lock();
    if timeline {
        t.insert(host);
    } else {
        t.remove(&host);
    }
}

/// Whether a `VkSemaphoreCreateInfo` chain makes a timeline semaphore.
///
/// # Safety
/// `p` is a valid, decoded `pNext` chain.
unsafe fn is_timeline(mut p: *const std::ffi::c_void) -> bool {
    while !p.is_null() {
        let b = &*(p as *const vk::BaseInStructure);
        if b.s_type == vk::StructureType::SEMAPHORE_TYPE_CREATE_INFO {
            let t = &*(p as *const vk::SemaphoreTypeCreateInfo);
            return t.semaphore_type == vk::SemaphoreType::TIMELINE;
        }
        p = b.p_next as *const std::ffi::c_void;
    }
    false
}

/// Airlock carries no external semaphore or fence (a descriptor of one process means nothing
/// to the other): none is reported importable or exportable.
///
/// # Safety
/// `args` are the arguments of one of those queries, which returned.
pub unsafe fn after_external_properties(args: &[u64], h: &Hook) {
    if h.cmd.id == id::vkGetPhysicalDeviceExternalSemaphoreProperties {
        let p = &mut *views::GetPhysicalDeviceExternalSemaphoreProperties::of(args)
            .p_external_semaphore_properties;
        p.export_from_imported_handle_types = Default::default();
        p.compatible_handle_types = Default::default();
        p.external_semaphore_features = Default::default();
    } else {
        let p = &mut *views::GetPhysicalDeviceExternalFenceProperties::of(args)
            .p_external_fence_properties;
        p.export_from_imported_handle_types = Default::default();
        p.compatible_handle_types = Default::default();
        p.external_fence_features = Default::default();
    }
}
