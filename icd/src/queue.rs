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
//! stream). Waiting for its reply cost a whole round trip per frame or dispatch. Submissions are
//! posted the same way; a failure shows at the device's next synchronisation.
//!
//! Fences, events and timeline semaphores get a slot in the device's feedback region
//! (`feedback.rs`) when they are made: their status queries read it, and waits sleep on it. What
//! the region cannot tell (an object without a slot, an event a command buffer sets) is asked
//! of the server, which then rewrites the slots of what it answered for.

pub mod feedback;

use crate::call::{call, create_posted_if, post, post_quiet};
use crate::log::log;
use crate::objects::{header, NoFacts};
use crate::util::app_slice as slice;
use ash::vk::{self, Handle};
use feedback::{Feedback, Seen};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;
use wire::desc::CommandDesc;
use wire::feedback::{Kind, LOST, SIGNALED, UNSIGNALED};
use wire::generated::commands::{
    C_vkCreateEvent, C_vkCreateFence, C_vkCreateSemaphore, C_vkDestroyEvent, C_vkDestroyFence,
    C_vkDestroySemaphore, C_vkGetDeviceQueue, C_vkGetDeviceQueue2, C_vkGetEventStatus,
    C_vkGetFenceStatus, C_vkGetSemaphoreCounterValue, C_vkQueueBindSparse, C_vkQueueSubmit,
    C_vkQueueSubmit2, C_vkResetFences, C_vkWaitForFences, C_vkWaitSemaphores,
};

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

/// A device's feedback region (`queue/feedback.rs`), asked for when the device makes its first
/// fence, event or timeline semaphore; `None` inside when the server could not give one.
#[derive(Default)]
struct DeviceFeedback(OnceLock<Option<Feedback>>);

/// The feedback region of device wrapper `device`, if it has one and the server is there.
///
/// # Safety
/// `device` is a live device wrapper.
unsafe fn feedback<'a>(device: u64) -> Option<&'a Feedback> {
    thread_local! {
        /// The last device asked about on this thread, by id (never reused), and its region:
        /// status queries come in runs on one device, and the families' list takes a lock.
        static LAST: std::cell::Cell<(u64, *const Feedback)> =
            const { std::cell::Cell::new((0, std::ptr::null())) };
    }
    let h = header(device);
    let (id, last) = LAST.get();
    let f = if id == h.id && !last.is_null() {
        // SAFETY: the region of the live device with this id (ids are never reused), which
        // lives as long as the device.
        &*last
    } else {
        let f = h.families.get::<DeviceFeedback>().0.get()?.as_ref()?;
        LAST.set((h.id, f as *const Feedback));
        f
    };
    (!h.conn().is_lost()).then_some(f)
}

/// [`feedback`], asking the server for the region the first time.
///
/// # Safety
/// `device` is a live device wrapper.
unsafe fn feedback_or_open<'a>(device: u64) -> Option<&'a Feedback> {
    let h = header(device);
    let f = h.families.get::<DeviceFeedback>();
    f.0.get_or_init(|| Feedback::open(h.conn(), h.id)).as_ref()
}

/// A result Vulkan allows a synchronisation command, from the region's failure word.
fn failure(f: &Feedback) -> Option<vk::Result> {
    match f.failed() {
        0 => None,
        r => Some(vk::Result::from_raw(r)),
    }
}

pub unsafe extern "system" fn vkResetFences(
    device: vk::Device,
    count: u32,
    fences: *const vk::Fence,
) -> vk::Result {
    if let Some(f) = feedback(device.as_raw()) {
        for fence in slice(fences, count) {
            f.restart(fence.as_raw());
        }
    }
    // Nothing observes the host fence before the next submission, which wakes the server.
    post_quiet(
        &C_vkResetFences,
        &[device.as_raw(), count as u64, fences as u64],
        &NoFacts,
    )
}

pub unsafe extern "system" fn vkCreateFence(
    device: vk::Device,
    info: *const vk::FenceCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Fence,
) -> vk::Result {
    let plain = !info.is_null() && (*info).p_next.is_null();
    let r = create_sync_object(plain, &C_vkCreateFence, device, info, allocator, out);
    watch(device, r, out as *const u64, Kind::Fence);
    r
}

/// Creates a fence, semaphore or event without waiting when only a lack of memory could make
/// the host refuse it: `plain` (no extension structure that could, such as an export), no
/// allocator of the application's (its records are made around a call, `allocation.rs`), and
/// room under the object limit (`call::create_posted_if`). Applications that make a fence per
/// frame save a round trip a frame.
///
/// # Safety
/// The application's arguments to `cmd`, a `vkCreate*(device, info, allocator, out)`.
unsafe fn create_sync_object<I, O>(
    plain: bool,
    cmd: &'static CommandDesc,
    device: vk::Device,
    info: *const I,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut O,
) -> vk::Result {
    let args = [device.as_raw(), info as u64, allocator as u64, out as u64];
    create_posted_if(plain && allocator.is_null(), cmd, &args, out.cast(), 1)
}

/// Whether a semaphore's chain holds nothing but its type (binary or timeline).
///
/// # Safety
/// `next` is a valid Vulkan structure chain.
unsafe fn only_semaphore_type(mut next: *const std::ffi::c_void) -> bool {
    while !next.is_null() {
        let s = &*(next as *const vk::BaseInStructure<'_>);
        if s.s_type != vk::StructureType::SEMAPHORE_TYPE_CREATE_INFO {
            return false;
        }
        next = s.p_next as *const std::ffi::c_void;
    }
    true
}

/// Gives a new object a feedback slot.
///
/// # Safety
/// `out` holds the object `r` says was created.
unsafe fn watch(device: vk::Device, r: vk::Result, out: *const u64, kind: Kind) {
    if r != vk::Result::SUCCESS {
        return;
    }
    if let Some(f) = feedback_or_open(device.as_raw()) {
        f.watch(header(device.as_raw()).conn(), *out, kind);
    }
}

pub unsafe extern "system" fn vkDestroyFence(
    device: vk::Device,
    fence: vk::Fence,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    destroy(&C_vkDestroyFence, device, fence.as_raw(), allocator);
}

/// Destroys a watched object, then frees its slot (a later binding of the slot reaches the
/// server after the destruction).
unsafe fn destroy(
    cmd: &'static CommandDesc,
    device: vk::Device,
    object: u64,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    call(cmd, &[device.as_raw(), object, allocator as u64]);
    if object != 0 {
        // Even after a loss: the slot is this side's to give again.
        let h = header(device.as_raw());
        if let Some(Some(f)) = h.families.get::<DeviceFeedback>().0.get() {
            f.forget(object);
        }
    }
}

pub unsafe extern "system" fn vkGetFenceStatus(device: vk::Device, fence: vk::Fence) -> vk::Result {
    if let Some(f) = feedback(device.as_raw()) {
        if let Some(r) = failure(f) {
            return r;
        }
        match f.seen(fence.as_raw()) {
            Seen::Current(SIGNALED, _) => return vk::Result::SUCCESS,
            Seen::Current(UNSIGNALED, _) | Seen::Behind => return vk::Result::NOT_READY,
            Seen::Current(LOST, _) => return vk::Result::ERROR_DEVICE_LOST,
            _ => {}
        }
    }
    vk::Result::from_raw(call(&C_vkGetFenceStatus, &[device.as_raw(), fence.as_raw()]) as i32)
}

pub unsafe extern "system" fn vkWaitForFences(
    device: vk::Device,
    count: u32,
    fences: *const vk::Fence,
    wait_all: vk::Bool32,
    timeout: u64,
) -> vk::Result {
    if let Some(f) = feedback(device.as_raw()) {
        let list = slice(fences, count);
        let mut behind = Behind::default();
        let r = f.wait(header(device.as_raw()).conn(), timeout, |f| {
            if let Some(r) = failure(f) {
                return Ok(Some(r));
            }
            let (mut signalled, mut late, mut unsure) = (0, false, false);
            for fence in list {
                match f.seen(fence.as_raw()) {
                    Seen::Current(SIGNALED, _) => signalled += 1,
                    Seen::Current(LOST, _) => return Ok(Some(vk::Result::ERROR_DEVICE_LOST)),
                    Seen::Current(..) => {}
                    Seen::Behind => late = true,
                    Seen::Unconfirmed => (late, unsure) = (true, true),
                    Seen::Unknown => return Err(()),
                }
            }
            let done = if wait_all != vk::FALSE {
                signalled == list.len()
            } else {
                signalled > 0
            };
            if done {
                return Ok(Some(vk::Result::SUCCESS));
            }
            behind.check(late, unsure).map(|()| None)
        });
        match r {
            Ok(r) => return r,
            Err(true) if !behind.unsure => return vk::Result::TIMEOUT,
            Err(_) => {}
        }
    }
    let args = [
        device.as_raw(),
        count as u64,
        fences as u64,
        wait_all as u64,
        timeout,
    ];
    vk::Result::from_raw(call(&C_vkWaitForFences, &args) as i32)
}

/// How long a wait has seen an object whose epoch or binding the server has not reached: past
/// the limit, the wait asks the server instead. And whether the last look saw an object whose
/// binding the server has not confirmed yet (one just made: its creation and binding are
/// posted): its status is unknown, so a wait whose time is up asks the server rather than
/// report a timeout.
#[derive(Default)]
struct Behind {
    since: Option<Instant>,
    unsure: bool,
}

impl Behind {
    fn check(&mut self, late: bool, unsure: bool) -> Result<(), ()> {
        self.unsure = unsure;
        if !late {
            self.since = None;
            return Ok(());
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() > Feedback::behind_limit() {
            log!(
                debug,
                "airlock: an object stays behind in the feedback region; asking the server"
            );
            return Err(());
        }
        Ok(())
    }
}

/// Submissions are posted: the server applies them in order and reports a failure at the
/// device's next synchronisation, as Vulkan allows. The fence's epoch counts the submission.
pub unsafe extern "system" fn vkQueueSubmit(
    queue: vk::Queue,
    count: u32,
    submits: *const vk::SubmitInfo<'_>,
    fence: vk::Fence,
) -> vk::Result {
    submitted(queue, fence);
    let args = [queue.as_raw(), count as u64, submits as u64, fence.as_raw()];
    post(&C_vkQueueSubmit, &args, &NoFacts)
}

pub unsafe extern "system" fn vkQueueSubmit2(
    queue: vk::Queue,
    count: u32,
    submits: *const vk::SubmitInfo2<'_>,
    fence: vk::Fence,
) -> vk::Result {
    submitted(queue, fence);
    let args = [queue.as_raw(), count as u64, submits as u64, fence.as_raw()];
    post(&C_vkQueueSubmit2, &args, &NoFacts)
}

/// Counts a submission of `fence` on `queue`'s device.
unsafe fn submitted(queue: vk::Queue, fence: vk::Fence) {
    if fence == vk::Fence::null() || queue == vk::Queue::null() {
        return;
    }
    if let Some(f) = feedback(header(queue.as_raw()).parent) {
        f.restart(fence.as_raw());
    }
}

/// Sparse bindings signal fences and semaphores the feedback does not follow: those are asked
/// of the server from now on.
pub unsafe extern "system" fn vkQueueBindSparse(
    queue: vk::Queue,
    count: u32,
    infos: *const vk::BindSparseInfo<'_>,
    fence: vk::Fence,
) -> vk::Result {
    if queue != vk::Queue::null() {
        if let Some(f) = feedback(header(queue.as_raw()).parent) {
            f.touch(fence.as_raw(), false);
            for i in slice(infos, count) {
                for s in slice(i.p_signal_semaphores, i.signal_semaphore_count) {
                    f.touch(s.as_raw(), false);
                }
            }
        }
    }
    let args = [queue.as_raw(), count as u64, infos as u64, fence.as_raw()];
    vk::Result::from_raw(call(&C_vkQueueBindSparse, &args) as i32)
}

pub unsafe extern "system" fn vkCreateSemaphore(
    device: vk::Device,
    info: *const vk::SemaphoreCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Semaphore,
) -> vk::Result {
    let plain = !info.is_null() && only_semaphore_type((*info).p_next);
    let r = create_sync_object(plain, &C_vkCreateSemaphore, device, info, allocator, out);
    if !info.is_null() && wire::feedback::is_timeline((*info).p_next) {
        watch(device, r, out as *const u64, Kind::Timeline);
    }
    r
}

pub unsafe extern "system" fn vkDestroySemaphore(
    device: vk::Device,
    semaphore: vk::Semaphore,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    destroy(&C_vkDestroySemaphore, device, semaphore.as_raw(), allocator);
}

pub unsafe extern "system" fn vkGetSemaphoreCounterValue(
    device: vk::Device,
    semaphore: vk::Semaphore,
    value: *mut u64,
) -> vk::Result {
    if let Some(f) = feedback(device.as_raw()) {
        if let Some(r) = failure(f) {
            return r;
        }
        if let (Seen::Current(_, v), false) = (f.seen(semaphore.as_raw()), value.is_null()) {
            *value = v;
            return vk::Result::SUCCESS;
        }
    }
    let args = [device.as_raw(), semaphore.as_raw(), value as u64];
    vk::Result::from_raw(call(&C_vkGetSemaphoreCounterValue, &args) as i32)
}

pub unsafe extern "system" fn vkWaitSemaphores(
    device: vk::Device,
    info: *const vk::SemaphoreWaitInfo<'_>,
    timeout: u64,
) -> vk::Result {
    if let (Some(f), false) = (feedback(device.as_raw()), info.is_null()) {
        let i = &*info;
        let sems = slice(i.p_semaphores, i.semaphore_count);
        let values = slice(i.p_values, i.semaphore_count);
        let any = i.flags.contains(vk::SemaphoreWaitFlags::ANY);
        let mut behind = Behind::default();
        let r = f.wait(header(device.as_raw()).conn(), timeout, |f| {
            if let Some(r) = failure(f) {
                return Ok(Some(r));
            }
            let (mut reached, mut late) = (0, false);
            for (s, want) in sems.iter().zip(values) {
                match f.seen(s.as_raw()) {
                    Seen::Current(_, v) if v >= *want => reached += 1,
                    Seen::Current(..) => {}
                    Seen::Unconfirmed => late = true,
                    _ => return Err(()),
                }
            }
            // Only an unconfirmed semaphore is late here.
            let unsure = late;
            let done = if any {
                reached > 0
            } else {
                reached == sems.len()
            };
            if done {
                return Ok(Some(vk::Result::SUCCESS));
            }
            behind.check(late, unsure).map(|()| None)
        });
        match r {
            Ok(r) => return r,
            Err(true) if !behind.unsure => return vk::Result::TIMEOUT,
            Err(_) => {}
        }
    }
    let args = [device.as_raw(), info as u64, timeout];
    vk::Result::from_raw(call(&C_vkWaitSemaphores, &args) as i32)
}

pub unsafe extern "system" fn vkCreateEvent(
    device: vk::Device,
    info: *const vk::EventCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Event,
) -> vk::Result {
    let plain = !info.is_null() && (*info).p_next.is_null();
    let r = create_sync_object(plain, &C_vkCreateEvent, device, info, allocator, out);
    watch(device, r, out as *const u64, Kind::Event);
    r
}

pub unsafe extern "system" fn vkDestroyEvent(
    device: vk::Device,
    event: vk::Event,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    destroy(&C_vkDestroyEvent, device, event.as_raw(), allocator);
}

/// An event a command buffer sets or resets: the region follows only what the host does to an
/// event, so its status comes from the server from now on.
///
/// # Safety
/// `device` is a live device wrapper.
pub unsafe fn recorded_event(device: u64, event: u64) {
    if let Some(f) = feedback(device) {
        f.touch(event, true);
    }
}

pub unsafe extern "system" fn vkGetEventStatus(device: vk::Device, event: vk::Event) -> vk::Result {
    if let Some(f) = feedback(device.as_raw()) {
        if let Some(r) = failure(f) {
            return r;
        }
        match f.seen(event.as_raw()) {
            Seen::Current(SIGNALED, _) => return vk::Result::EVENT_SET,
            Seen::Current(UNSIGNALED, _) => return vk::Result::EVENT_RESET,
            Seen::Current(LOST, _) => return vk::Result::ERROR_DEVICE_LOST,
            _ => {}
        }
    }
    vk::Result::from_raw(call(&C_vkGetEventStatus, &[device.as_raw(), event.as_raw()]) as i32)
}
