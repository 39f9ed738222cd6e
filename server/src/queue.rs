//! Queues and synchronization: a submission of a command buffer whose recording the server
//! rejected fails; only timeline semaphores reach the timeline calls; no external semaphore or
//! fence is offered. Fences, events and timeline semaphores the client watches report their
//! status in the feedback region (`feedback.rs`), and a submission, which the client posts
//! without waiting, reports a failure at the device's next synchronisation.

pub mod feedback;

use crate::dispatch::{answer, Before, Hook, Pending, Server, HOST};
use crate::generated::views;
use crate::objects::ClientId;
use crate::util::slice;
use ash::vk::{self, Handle};
use feedback::Feedback;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use tracing::warn;
use wire::codec::Encoder;
use wire::control::ControlError;
use wire::desc::CommandDesc;
use wire::feedback::Kind;
use wire::frame::Status;
use wire::generated::commands::id;

/// Host semaphores created as timeline semaphores. The host driver trusts the client to pass
/// only those to the timeline calls (lavapipe calls through a null function pointer on a
/// binary one: found by the server_stream fuzzer); the server checks.
#[derive(Default)]
pub struct Semaphores {
    pub timeline: Mutex<HashSet<u64>>,
}

/// # Safety
/// `args` are the decoded arguments of `vkQueueSubmit` or `vkQueueSubmit2`.
pub unsafe fn before_submit(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    let fence = Pending::Fence(restart_fence(server, args, h));
    if !server.command_buffers.any_broken() {
        return (None, fence);
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
    (None, fence)
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
    let timeline = wire::feedback::is_timeline((*v.p_create_info).p_next);
    let host = (*v.p_semaphore).as_raw();
    // Set either way: a host handle may be a destroyed semaphore's, reused.
    let mut t = server.semaphores.timeline.lock();
    if timeline {
        t.insert(host);
    } else {
        t.remove(&host);
    }
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

/// The fence of a submission: its slot, the epoch of this submission and the host fence.
pub type SubmittedFence = Option<(u32, u32, u64)>;

/// Counts the reset of every watched fence (the client counted it when it posted the reset).
///
/// # Safety
/// `args` are the decoded arguments of `vkResetFences`.
pub unsafe fn before_reset_fences(server: &Server, args: &[u64], h: &Hook) -> Before {
    let Some(table) = h.table else { return HOST };
    let v = views::ResetFences::of(args);
    for f in slice(v.p_fences, u64::from(v.fence_count)) {
        server.feedback.fence_restarted(table, f.as_raw());
    }
    HOST
}

/// The fence of a submission being made, counted as the client counted it.
///
/// # Safety
/// `args` are the decoded arguments of `vkQueueSubmit` or `vkQueueSubmit2`.
unsafe fn restart_fence(server: &Server, args: &[u64], h: &Hook) -> SubmittedFence {
    let fence = if h.cmd.id == id::vkQueueSubmit {
        views::QueueSubmit::of(args).fence
    } else {
        views::QueueSubmit2::of(args).fence
    };
    if fence == vk::Fence::null() {
        return None;
    }
    let (slot, epoch) = server.feedback.fence_restarted(h.table?, fence.as_raw())?;
    Some((slot, epoch, fence.as_raw()))
}

/// Hands a submission that went to the host to a watcher: the timeline semaphores it signals
/// and its fence.
///
/// # Safety
/// `args` are the decoded arguments of `vkQueueSubmit` or `vkQueueSubmit2`, which succeeded.
pub unsafe fn after_submit(server: &Server, args: &[u64], h: &Hook, fence: SubmittedFence) {
    let Some(table) = h.table else { return };
    let mut timelines = Vec::new();
    if h.cmd.id == id::vkQueueSubmit {
        let v = views::QueueSubmit::of(args);
        for s in slice(v.p_submits, u64::from(v.submit_count)) {
            let sems = slice(s.p_signal_semaphores, u64::from(s.signal_semaphore_count));
            let values = timeline_values(s.p_next);
            for (i, sem) in sems.iter().enumerate() {
                if let Some(&v) = values.get(i) {
                    timelines.push((sem.as_raw(), v));
                }
            }
        }
    } else {
        let v = views::QueueSubmit2::of(args);
        for s in slice(v.p_submits, u64::from(v.submit_count)) {
            let infos = slice(
                s.p_signal_semaphore_infos,
                u64::from(s.signal_semaphore_info_count),
            );
            timelines.extend(infos.iter().map(|i| (i.semaphore.as_raw(), i.value)));
        }
    }
    server.feedback.watch(table, &timelines, fence);
}

/// The signal values of a `VkSubmitInfo` chain (`VkTimelineSemaphoreSubmitInfo`).
///
/// # Safety
/// `p` is a valid, decoded `pNext` chain.
unsafe fn timeline_values<'a>(mut p: *const std::ffi::c_void) -> &'a [u64] {
    while !p.is_null() {
        let b = &*(p as *const vk::BaseInStructure);
        if b.s_type == vk::StructureType::TIMELINE_SEMAPHORE_SUBMIT_INFO {
            let t = &*(p as *const vk::TimelineSemaphoreSubmitInfo);
            return slice(
                t.p_signal_semaphore_values,
                u64::from(t.signal_semaphore_value_count),
            );
        }
        p = b.p_next as *const std::ffi::c_void;
    }
    &[]
}

/// A posted call the host failed: nobody waits for its result, so the device reports the
/// failure at its next synchronisation. Submissions, descriptor-set and command-buffer
/// allocations and the creations of fences, semaphores and events are posted (the ICD posts an allocation only
/// when its pool's accounting says it fits, and a creation only with room set aside under the
/// object limit, so here the objects the application holds do not exist: the device is lost
/// unless the host ran out of memory). Other posted calls (`vkBeginCommandBuffer` …) are answered by the ICD as the host
/// would and keep doing so.
pub fn after_failed_post(server: &Server, h: &Hook, r: vk::Result) {
    let r = match h.cmd.id {
        id::vkQueueSubmit | id::vkQueueSubmit2 => r,
        id::vkAllocateDescriptorSets
        | id::vkAllocateCommandBuffers
        | id::vkCreateFence
        | id::vkCreateSemaphore
        | id::vkCreateEvent => {
            warn!(
                "posted {} failed on the host ({r:?}); the device fails",
                h.cmd.name
            );
            match r {
                vk::Result::ERROR_OUT_OF_HOST_MEMORY | vk::Result::ERROR_OUT_OF_DEVICE_MEMORY => r,
                _ => vk::Result::ERROR_DEVICE_LOST,
            }
        }
        _ => return,
    };
    if let Some(table) = h.table {
        server.feedback.fail_device(table, r);
    }
}

/// A posted submission, allocation or creation the server could not even decode (an unknown
/// handle): its device fails.
pub fn post_rejected(server: &Server, cmd: &CommandDesc, payload: &[u8]) {
    if !matches!(
        cmd.id,
        id::vkQueueSubmit
            | id::vkQueueSubmit2
            | id::vkAllocateDescriptorSets
            | id::vkAllocateCommandBuffers
            | id::vkCreateFence
            | id::vkCreateSemaphore
            | id::vkCreateEvent
    ) {
        return;
    }
    let Some(first) = payload.get(..8) else {
        return;
    };
    // The queue of a submission, the device of an allocation or creation.
    let first = ClientId(u64::from_le_bytes(first.try_into().unwrap_or_default()));
    let Some(e) = server.objects.get(first) else {
        return;
    };
    if let Some(table) = server.device_table(e.owner) {
        server
            .feedback
            .fail_device(&table, vk::Result::ERROR_DEVICE_LOST);
    }
}

/// A synchronisation on a device whose posted work failed reports the failure.
pub fn before_sync(server: &Server, h: &Hook) -> Option<Before> {
    let r = server.feedback.failed(h.table?)?;
    Some(answer(r))
}

/// After the server waited or asked on the client's behalf (the client had no status to go
/// by): the slots of what it asked about say what the host said.
///
/// # Safety
/// `args` are the decoded arguments of `h.cmd`, which returned.
pub unsafe fn after_sync(server: &Server, args: &[u64], h: &Hook) {
    let Some(table) = h.table else { return };
    let f = &server.feedback;
    match h.cmd.id {
        id::vkQueueWaitIdle | id::vkDeviceWaitIdle => f.refresh_device(table),
        id::vkWaitForFences => {
            let v = views::WaitForFences::of(args);
            let fences = slice(v.p_fences, u64::from(v.fence_count));
            let hosts: Vec<u64> = fences.iter().map(|x| x.as_raw()).collect();
            f.refresh(table, Kind::Fence, &hosts);
        }
        id::vkGetFenceStatus => {
            let v = views::GetFenceStatus::of(args);
            f.refresh(table, Kind::Fence, &[v.fence.as_raw()]);
        }
        id::vkWaitSemaphores => {
            let info = &*views::WaitSemaphores::of(args).p_wait_info;
            let sems = slice(info.p_semaphores, u64::from(info.semaphore_count));
            let hosts: Vec<u64> = sems.iter().map(|x| x.as_raw()).collect();
            f.refresh(table, Kind::Timeline, &hosts);
        }
        id::vkGetSemaphoreCounterValue => {
            let v = views::GetSemaphoreCounterValue::of(args);
            f.refresh(table, Kind::Timeline, &[v.semaphore.as_raw()]);
        }
        id::vkSignalSemaphore => {
            let v = views::SignalSemaphore::of(args);
            f.refresh(
                table,
                Kind::Timeline,
                &[(*v.p_signal_info).semaphore.as_raw()],
            );
        }
        id::vkSetEvent => f.refresh(
            table,
            Kind::Event,
            &[views::SetEvent::of(args).event.as_raw()],
        ),
        id::vkResetEvent => f.refresh(
            table,
            Kind::Event,
            &[views::ResetEvent::of(args).event.as_raw()],
        ),
        id::vkGetEventStatus => f.refresh(
            table,
            Kind::Event,
            &[views::GetEventStatus::of(args).event.as_raw()],
        ),
        _ => {}
    }
}

/// `private::FEEDBACK`: hands the client the feedback region of a device (`send` puts its
/// memfd on the control socket).
pub fn feedback_request(
    server: &Server,
    payload: &[u8],
    out: &mut Encoder,
    send: impl FnOnce(BorrowedFd<'_>) -> Result<(), ControlError>,
) -> Status {
    let Ok(id) = <[u8; 8]>::try_from(payload).map(|b| ClientId(u64::from_le_bytes(b))) else {
        out.bytes(b"FEEDBACK: expected one device id");
        return Status::BadRequest;
    };
    let table = match server.objects.lookup(vk::ObjectType::DEVICE, id) {
        Ok(e) => server.device_table(e.host),
        Err(e) => {
            out.bytes(format!("FEEDBACK: {e}").as_bytes());
            return Status::BadRequest;
        }
    };
    let region = table
        .ok_or_else(|| "no such device".to_string())
        .and_then(|t| server.feedback.region(&t));
    let r = match region {
        Ok(d) => match send(Feedback::fd(&d)) {
            Ok(()) => vk::Result::SUCCESS,
            Err(e) => {
                warn!("sending the feedback region: {e}");
                vk::Result::ERROR_INITIALIZATION_FAILED
            }
        },
        Err(e) => {
            warn!("making the feedback region: {e}");
            vk::Result::ERROR_OUT_OF_HOST_MEMORY
        }
    };
    out.u32(r.as_raw() as u32);
    Status::Ok
}

/// `private::WATCH`: binds a slot to an object of the client's. A request that names a slot,
/// object or kind it may not is refused with a log line and changes nothing.
pub fn watch_request(server: &Server, payload: &[u8]) -> Result<(), String> {
    let p: [u8; 16] = payload
        .try_into()
        .map_err(|_| format!("WATCH: {} bytes, expected 16", payload.len()))?;
    let id = ClientId(u64::from_le_bytes(p[..8].try_into().unwrap_or_default()));
    let slot = u32::from_le_bytes(p[8..12].try_into().unwrap_or_default());
    let kind = u32::from_le_bytes(p[12..].try_into().unwrap_or_default());
    let kind = Kind::from_u32(kind).ok_or_else(|| format!("WATCH: no kind {kind}"))?;
    let ty = match kind {
        Kind::Fence => vk::ObjectType::FENCE,
        Kind::Timeline => vk::ObjectType::SEMAPHORE,
        Kind::Event => vk::ObjectType::EVENT,
    };
    let e = server
        .objects
        .lookup(ty, id)
        .map_err(|e| format!("WATCH: {e}"))?;
    if kind == Kind::Timeline && !server.semaphores.timeline.lock().contains(&e.host.0) {
        return Err(format!(
            "WATCH: semaphore {} is not a timeline semaphore",
            id.0
        ));
    }
    let table = server
        .device_table(e.owner)
        .ok_or_else(|| format!("WATCH: object {} has no device", id.0))?;
    server
        .feedback
        .bind(slot, kind, e.host.0, &table)
        .map_err(|e| format!("WATCH: {e}"))
}

/// No watcher may wait on a fence or semaphore the host is about to destroy.
///
/// # Safety
/// `args` are the decoded arguments of `vkDestroyFence` or `vkDestroySemaphore`.
pub unsafe fn before_destroy_sync(server: &Server, args: &[u64], h: &Hook) -> Before {
    let host = if h.cmd.id == id::vkDestroyFence {
        views::DestroyFence::of(args).fence.as_raw()
    } else {
        views::DestroySemaphore::of(args).semaphore.as_raw()
    };
    if host != 0 {
        server.feedback.forget_object(host);
    }
    HOST
}

/// The kind of slot a destroyed object of type `ty` may have had.
pub fn watched_kind(ty: vk::ObjectType) -> Option<Kind> {
    match ty {
        vk::ObjectType::FENCE => Some(Kind::Fence),
        vk::ObjectType::SEMAPHORE => Some(Kind::Timeline),
        vk::ObjectType::EVENT => Some(Kind::Event),
        _ => None,
    }
}
