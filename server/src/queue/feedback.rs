//! The server's side of the feedback region (`wire::feedback`): one region per device, which
//! slot reports which object, the epochs, and the watchers that write a status when the host's
//! changes.
//!
//! A submission that signals a watched fence or timeline semaphore becomes a job for a watcher
//! thread, which waits on the host for it and writes the outcome: each timeline value as it is
//! reached (a later batch may wait for the application to see it), then the fence. A fence is
//! written signalled only after the semaphores of its submission, so whoever saw the fence sees
//! their values too. Watchers wait in short steps and take turns when there are more jobs than
//! threads, so a job that waits on the application never holds up one that does not.
//!
//! Every value the server acts on is its own (`Slots`); the region is only ever written.

use crate::dispatch::Pfn;
use crate::tables::Table;
use ash::vk::{self, Handle};
use parking_lot::{Condvar, Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;
use std::ffi::CStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, warn};
use wire::feedback::{pack, Kind, Region, COUNTER, LOST, SIGNALED, SLOTS, UNSIGNALED};

/// Most watcher threads of one client.
const MAX_WATCHERS: usize = 16;
/// How long a watcher waits on the host at once before it looks at its other jobs.
const STEP: Duration = Duration::from_millis(20);
/// How long destroying a device waits for its watchers (which finish at once unless the
/// application destroys a device with work still pending).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The host functions the watchers and refreshes call, resolved once per device.
#[derive(Clone, Copy)]
pub struct HostSync {
    pub device: vk::Device,
    wait_fences: vk::PFN_vkWaitForFences,
    fence_status: vk::PFN_vkGetFenceStatus,
    wait_semaphores: vk::PFN_vkWaitSemaphores,
    counter: vk::PFN_vkGetSemaphoreCounterValue,
    event_status: vk::PFN_vkGetEventStatus,
}

impl HostSync {
    fn of(table: &Table) -> Option<HostSync> {
        let (device, gdpa) = table.device?;
        // SAFETY: resolving core functions of a live host device.
        unsafe {
            let f = |n: &CStr| gdpa(device, n.as_ptr());
            Some(HostSync {
                device,
                wait_fences: std::mem::transmute::<Pfn, vk::PFN_vkWaitForFences>(f(
                    c"vkWaitForFences",
                )?),
                fence_status: std::mem::transmute::<Pfn, vk::PFN_vkGetFenceStatus>(f(
                    c"vkGetFenceStatus",
                )?),
                wait_semaphores: std::mem::transmute::<Pfn, vk::PFN_vkWaitSemaphores>(
                    f(c"vkWaitSemaphores").or_else(|| f(c"vkWaitSemaphoresKHR"))?,
                ),
                counter: std::mem::transmute::<Pfn, vk::PFN_vkGetSemaphoreCounterValue>(
                    f(c"vkGetSemaphoreCounterValue")
                        .or_else(|| f(c"vkGetSemaphoreCounterValueKHR"))?,
                ),
                event_status: std::mem::transmute::<Pfn, vk::PFN_vkGetEventStatus>(f(
                    c"vkGetEventStatus",
                )?),
            })
        }
    }

    fn fence(&self, fence: u64) -> vk::Result {
        // SAFETY: a live host fence of this device.
        unsafe { (self.fence_status)(self.device, vk::Fence::from_raw(fence)) }
    }

    fn counter(&self, semaphore: u64) -> Option<u64> {
        let mut v = 0;
        // SAFETY: a live host timeline semaphore of this device.
        let r = unsafe { (self.counter)(self.device, vk::Semaphore::from_raw(semaphore), &mut v) };
        (r == vk::Result::SUCCESS).then_some(v)
    }

    fn event(&self, event: u64) -> vk::Result {
        // SAFETY: a live host event of this device.
        unsafe { (self.event_status)(self.device, vk::Event::from_raw(event)) }
    }

    /// The status word of `kind` object `host` as the host sees it now, and its value.
    fn status(&self, kind: Kind, host: u64) -> (u32, u64) {
        match kind {
            Kind::Fence => (fence_word(self.fence(host)), 0),
            Kind::Timeline => (COUNTER, self.counter(host).unwrap_or(0)),
            Kind::Event => match self.event(host) {
                vk::Result::EVENT_SET => (SIGNALED, 0),
                vk::Result::EVENT_RESET => (UNSIGNALED, 0),
                _ => (LOST, 0),
            },
        }
    }
}

/// The result a synchronisation reports for failed posted work: out of memory as the host said
/// it, anything else as a lost device.
fn reported(r: vk::Result) -> vk::Result {
    match r {
        vk::Result::ERROR_OUT_OF_HOST_MEMORY | vk::Result::ERROR_OUT_OF_DEVICE_MEMORY => r,
        _ => vk::Result::ERROR_DEVICE_LOST,
    }
}

fn fence_word(r: vk::Result) -> u32 {
    match r {
        vk::Result::SUCCESS => SIGNALED,
        vk::Result::NOT_READY => UNSIGNALED,
        _ => LOST,
    }
}

struct Binding {
    kind: Kind,
    host: u64,
}

#[derive(Default)]
struct Slots {
    bound: FxHashMap<u32, Binding>,
    by_host: FxHashMap<(u32, u64), u32>,
    /// Per slot, the events counted since the device began (binds, resets, submissions).
    epochs: Vec<u32>,
    /// Timeline values written, so that a value never goes back.
    values: FxHashMap<u32, u64>,
    /// The first failure of the device's posted work.
    failed: Option<vk::Result>,
    /// Timeline slots with a submission's signal not yet written, and how many.
    pending: FxHashMap<u32, usize>,
}

/// One device's region and slots.
pub struct Device {
    region: Region,
    host: HostSync,
    slots: Mutex<Slots>,
}

impl Device {
    fn slot_of(s: &Slots, kind: Kind, host: u64) -> Option<u32> {
        s.by_host.get(&(kind as u32, host)).copied()
    }

    /// Writes one slot from the host's view, under the slots lock so that no write of an
    /// older view lands after it.
    fn write_status(&self, s: &mut Slots, slot: u32, kind: Kind, host: u64) {
        let epoch = s.epochs[slot as usize];
        let (status, mut value) = self.host.status(kind, host);
        if kind == Kind::Timeline {
            let v = s.values.entry(slot).or_default();
            *v = (*v).max(value);
            value = *v;
        }
        self.region.write(slot, pack(epoch, status), value);
    }

    /// Rewrites the timelines that submissions signal and no watcher has written yet, from
    /// the host. Whatever a watcher is about to report (a later signal, a fence) comes after
    /// those on the queue, so whoever sees it must see them too, even when another watcher has
    /// not got to them.
    fn write_pending(&self, s: &mut Slots) {
        let slots: Vec<u32> = s.pending.keys().copied().collect();
        for slot in slots {
            let host = match s.bound.get(&slot) {
                Some(b) if b.kind == Kind::Timeline => b.host,
                _ => continue,
            };
            self.write_status(s, slot, Kind::Timeline, host);
        }
    }

    fn fail(&self, r: vk::Result) {
        let r = reported(r);
        let mut s = self.slots.lock();
        if s.failed.is_some() {
            return;
        }
        warn!(
            device = format!("{:#x}", self.host.device.as_raw()),
            "work of the device failed ({r:?}); its next synchronisation reports it"
        );
        s.failed = Some(r);
        self.region.set_failed(r.as_raw());
        drop(s);
        self.region.changed();
    }
}

/// What a submission left for a watcher.
struct Job {
    device: Arc<Device>,
    /// Timeline semaphores the submission signals: slot, host semaphore, value.
    timelines: Vec<(u32, u64, u64)>,
    /// The fence: slot, epoch of the submission, host fence.
    fence: Option<(u32, u32, u64)>,
}

impl Job {
    /// The host objects the job waits on.
    fn objects(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.timelines.iter().map(|t| t.1).collect();
        v.extend(self.fence.map(|f| f.2));
        v
    }

    fn is_empty(&self) -> bool {
        self.timelines.is_empty() && self.fence.is_none()
    }
}

#[derive(Default)]
struct Jobs {
    queue: VecDeque<Job>,
    /// Jobs being waited for (or queued) per device.
    active: FxHashMap<u64, usize>,
    closing: FxHashSet<u64>,
    /// Host objects a watcher is waiting on right now: their destruction waits for it.
    busy: FxHashMap<u64, usize>,
    threads: usize,
    idle: usize,
}

#[derive(Default)]
struct Inner {
    devices: RwLock<FxHashMap<u64, Arc<Device>>>,
    /// Devices whose posted work failed, region or not: their synchronisation reports it.
    failed: RwLock<FxHashMap<u64, vk::Result>>,
    jobs: Mutex<Jobs>,
    work: Condvar,
    finished: Condvar,
}

/// The feedback state of one client connection: a region per device that asked for one.
#[derive(Default)]
pub struct Feedback(Arc<Inner>);

impl Feedback {
    /// The region of the device whose functions `table` holds, made on first request.
    pub fn region(&self, table: &Table) -> Result<Arc<Device>, String> {
        let (device, _) = table.device.ok_or("not a device")?;
        if let Some(d) = self.0.devices.read().get(&device.as_raw()) {
            return Ok(Arc::clone(d));
        }
        let host = HostSync::of(table).ok_or("the host lacks the synchronisation functions")?;
        let region = Region::create().map_err(|e| e.to_string())?;
        let d = Arc::new(Device {
            region,
            host,
            slots: Mutex::new(Slots {
                epochs: vec![0; SLOTS as usize],
                ..Default::default()
            }),
        });
        let mut all = self.0.devices.write();
        Ok(Arc::clone(all.entry(device.as_raw()).or_insert(d)))
    }

    /// The memfd of a device's region.
    pub fn fd(device: &Device) -> std::os::fd::BorrowedFd<'_> {
        device.region.fd()
    }

    fn device(&self, table: &Table) -> Option<Arc<Device>> {
        let (device, _) = table.device?;
        self.0.devices.read().get(&device.as_raw()).cloned()
    }

    /// Binds `slot` to `kind` object `host` of the device whose functions `table` holds, and
    /// writes its status now.
    pub fn bind(&self, slot: u32, kind: Kind, host: u64, table: &Table) -> Result<(), String> {
        let d = self
            .device(table)
            .ok_or("the device has no feedback region")?;
        let mut s = d.slots.lock();
        if slot >= SLOTS {
            return Err(format!("slot {slot} is out of range"));
        }
        if s.bound.contains_key(&slot) {
            return Err(format!("slot {slot} reports another object"));
        }
        if s.by_host.contains_key(&(kind as u32, host)) {
            return Err("the object is reported in another slot".into());
        }
        s.bound.insert(slot, Binding { kind, host });
        s.by_host.insert((kind as u32, host), slot);
        let e = &mut s.epochs[slot as usize];
        *e = e.wrapping_add(1);
        s.values.remove(&slot);
        d.write_status(&mut s, slot, kind, host);
        drop(s);
        d.region.changed();
        Ok(())
    }

    /// Forgets the slot of a destroyed object of the device whose functions `table` holds.
    pub fn unbind(&self, table: Option<&Table>, kind: Kind, host: u64) {
        let Some(d) = table.and_then(|t| self.device(t)) else {
            return;
        };
        let mut s = d.slots.lock();
        if let Some(slot) = s.by_host.remove(&(kind as u32, host)) {
            s.bound.remove(&slot);
            s.values.remove(&slot);
            s.pending.remove(&slot);
        }
    }

    /// Counts a reset or a submission of host fence `fence`: the client counted it when it
    /// posted the command. Its status is unsignalled from now; returns the slot and new epoch.
    pub fn fence_restarted(&self, table: &Table, fence: u64) -> Option<(u32, u32)> {
        let d = self.device(table)?;
        let mut s = d.slots.lock();
        let slot = Device::slot_of(&s, Kind::Fence, fence)?;
        let e = &mut s.epochs[slot as usize];
        *e = e.wrapping_add(1);
        let epoch = *e;
        d.region.write(slot, pack(epoch, UNSIGNALED), 0);
        drop(s);
        d.region.changed();
        Some((slot, epoch))
    }

    /// Rewrites the status of `kind` objects `hosts` from what the host says now (after a wait
    /// or status query the server made, so the client's next look agrees with it).
    pub fn refresh(&self, table: &Table, kind: Kind, hosts: &[u64]) {
        let Some(d) = self.device(table) else { return };
        let mut s = d.slots.lock();
        let mut any = false;
        for &h in hosts {
            if let Some(slot) = Device::slot_of(&s, kind, h) {
                d.write_status(&mut s, slot, kind, h);
                any = true;
            }
        }
        drop(s);
        if any {
            d.region.changed();
        }
    }

    /// Rewrites every fence and timeline semaphore of a device (after it went idle).
    pub fn refresh_device(&self, table: &Table) {
        let Some(d) = self.device(table) else { return };
        let mut s = d.slots.lock();
        let mine: Vec<(u32, Kind, u64)> = s
            .bound
            .iter()
            .filter(|(_, b)| matches!(b.kind, Kind::Fence | Kind::Timeline))
            .map(|(slot, b)| (*slot, b.kind, b.host))
            .collect();
        for (slot, kind, h) in mine {
            d.write_status(&mut s, slot, kind, h);
        }
        drop(s);
        d.region.changed();
    }

    /// Posted work of a device failed: its next synchronisation says so (`VK_ERROR_DEVICE_LOST`
    /// unless the host said out of memory), through the region and the server alike.
    pub fn fail_device(&self, table: &Table, r: vk::Result) {
        let Some((device, _)) = table.device else {
            return;
        };
        self.0
            .failed
            .write()
            .entry(device.as_raw())
            .or_insert(reported(r));
        match self.device(table) {
            Some(d) => d.fail(r),
            None => {
                warn!("posted work of a device failed ({r:?}); its next synchronisation reports it")
            }
        }
    }

    /// What a synchronisation on the device whose functions `table` holds must return, if its
    /// posted work failed.
    pub fn failed(&self, table: &Table) -> Option<vk::Result> {
        let (device, _) = table.device?;
        let failed = self.0.failed.read();
        if failed.is_empty() {
            return None;
        }
        failed.get(&device.as_raw()).copied()
    }

    /// Hands a submission to a watcher: the timeline semaphores it signals (host handle,
    /// value) and its fence's slot and epoch, from [`Feedback::fence_restarted`].
    pub fn watch(&self, table: &Table, timelines: &[(u64, u64)], fence: Option<(u32, u32, u64)>) {
        let Some(d) = self.device(table) else { return };
        let mut s = d.slots.lock();
        let timelines: Vec<(u32, u64, u64)> = timelines
            .iter()
            .filter_map(|&(h, v)| Some((Device::slot_of(&s, Kind::Timeline, h)?, h, v)))
            .collect();
        for t in &timelines {
            *s.pending.entry(t.0).or_default() += 1;
        }
        drop(s);
        if timelines.is_empty() && fence.is_none() {
            return;
        }
        let mut jobs = self.0.jobs.lock();
        *jobs.active.entry(d.host.device.as_raw()).or_default() += 1;
        jobs.queue.push_back(Job {
            device: d,
            timelines,
            fence,
        });
        if jobs.idle == 0 && jobs.threads < MAX_WATCHERS {
            let inner = Arc::clone(&self.0);
            let n = jobs.threads;
            let started = std::thread::Builder::new()
                .name(format!("airlock-watch-{n}"))
                .spawn(move || watcher(&inner));
            match started {
                Ok(_) => {
                    jobs.threads += 1;
                    jobs.idle += 1;
                }
                Err(e) => warn!("cannot start a watcher thread: {e}"),
            }
        }
        drop(jobs);
        self.0.work.notify_one();
    }

    /// Before a host fence or semaphore is destroyed: no watcher may wait on it afterwards
    /// (the application may destroy it once it has seen it signalled some other way: a wait
    /// on the server, an idle queue, a later fence). Queued waits on it are dropped, and a
    /// watcher inside a host wait on it is waited for (it returns at once: the object is
    /// signalled, or its step ends).
    pub fn forget_object(&self, host: u64) {
        let mut jobs = self.0.jobs.lock();
        let mut emptied = Vec::new();
        for j in jobs.queue.iter_mut() {
            if j.timelines.iter().any(|t| t.1 == host) {
                let mut s = j.device.slots.lock();
                for t in j.timelines.iter().filter(|t| t.1 == host) {
                    done_pending(&mut s, t.0);
                }
            }
            j.timelines.retain(|t| t.1 != host);
            if j.fence.is_some_and(|f| f.2 == host) {
                j.fence = None;
            }
            if j.is_empty() {
                emptied.push(j.device.host.device.as_raw());
            }
        }
        if !emptied.is_empty() {
            jobs.queue.retain(|j| !j.is_empty());
            for d in emptied {
                if let Some(a) = jobs.active.get_mut(&d) {
                    *a = a.saturating_sub(1);
                }
            }
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        while jobs.busy.contains_key(&host) {
            if self.0.finished.wait_until(&mut jobs, deadline).timed_out() {
                warn!("a watcher still waits on a fence or semaphore being destroyed");
                break;
            }
        }
    }

    /// Before a host device is destroyed: no watcher may call into it afterwards, and its
    /// region goes (the client's mapping stays valid until it unmaps it).
    pub fn close_device(&self, device: u64) {
        let mut jobs = self.0.jobs.lock();
        jobs.closing.insert(device);
        let before = jobs.queue.len();
        jobs.queue
            .retain(|j| j.device.host.device.as_raw() != device);
        let dropped = before - jobs.queue.len();
        if let Some(a) = jobs.active.get_mut(&device) {
            *a = a.saturating_sub(dropped);
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        while jobs.active.get(&device).copied().unwrap_or(0) > 0 {
            if self.0.finished.wait_until(&mut jobs, deadline).timed_out() {
                warn!(
                    device = format!("{device:#x}"),
                    "a watcher still waits on a device being destroyed"
                );
                break;
            }
        }
        jobs.active.remove(&device);
        jobs.closing.remove(&device);
        drop(jobs);
        self.0.devices.write().remove(&device);
        self.0.failed.write().remove(&device);
    }
}

fn watcher(inner: &Arc<Inner>) {
    let mut jobs = inner.jobs.lock();
    loop {
        let Some(mut job) = jobs.queue.pop_front() else {
            inner.work.wait(&mut jobs);
            continue;
        };
        jobs.idle -= 1;
        let device = job.device.host.device.as_raw();
        let closing = jobs.closing.contains(&device);
        let objects = job.objects();
        for o in &objects {
            *jobs.busy.entry(*o).or_default() += 1;
        }
        drop(jobs);
        let done = closing || step(&mut job);
        jobs = inner.jobs.lock();
        for o in &objects {
            if let Some(n) = jobs.busy.get_mut(o) {
                *n -= 1;
                if *n == 0 {
                    jobs.busy.remove(o);
                }
            }
        }
        if !done {
            inner.finished.notify_all();
        }
        jobs.idle += 1;
        if done {
            if let Some(a) = jobs.active.get_mut(&device) {
                *a = a.saturating_sub(1);
            }
            inner.finished.notify_all();
        } else {
            // Not there yet: the other jobs get their turn.
            jobs.queue.push_back(job);
        }
    }
}

/// One signal of `slot` written (or given up).
fn done_pending(s: &mut Slots, slot: u32) {
    if let Some(n) = s.pending.get_mut(&slot) {
        *n -= 1;
        if *n == 0 {
            s.pending.remove(&slot);
        }
    }
}

/// Longest poll of a host fence before the watcher sleeps in the host's wait.
const FENCE_POLL: Duration = Duration::from_micros(100);

/// Whether polling has been paying off: a score (0..=1024) of how often recent polls saw the
/// fence signalled within [`FENCE_POLL`]. Below one half the watcher sleeps at once, but every
/// 16th wait polls anyway so that the score can recover. On a loaded machine a polling watcher
/// only takes a core from the work it waits for.
static POLL_SCORE: AtomicU32 = AtomicU32::new(1024);
static POLL_TURN: AtomicU32 = AtomicU32::new(0);

/// The host fence's status once it is no longer `NOT_READY`, if that happens within
/// [`FENCE_POLL`] and polling pays off.
fn poll_fence(h: &HostSync, fence: u64) -> Option<vk::Result> {
    let score = POLL_SCORE.load(Ordering::Relaxed);
    if score < 512 && !POLL_TURN.fetch_add(1, Ordering::Relaxed).is_multiple_of(16) {
        return None;
    }
    let start = std::time::Instant::now();
    let won = loop {
        let r = h.fence(fence);
        if r != vk::Result::NOT_READY {
            break Some(r);
        }
        if start.elapsed() >= FENCE_POLL {
            break None;
        }
        std::hint::spin_loop();
    };
    let target = if won.is_some() { 1024 } else { 0 };
    POLL_SCORE.store((score * 7 + target) / 8, Ordering::Relaxed);
    won
}

/// Waits one step for a job; whether it is finished.
fn step(job: &mut Job) -> bool {
    let d = &job.device;
    let h = d.host;
    let timeout = STEP.as_nanos() as u64;
    while let Some(&(slot, sem, value)) = job.timelines.first() {
        let sems = [vk::Semaphore::from_raw(sem)];
        let values = [value];
        let info = vk::SemaphoreWaitInfo::default()
            .semaphores(&sems)
            .values(&values);
        // SAFETY: a live host timeline semaphore of a device that is not being destroyed.
        match unsafe { (h.wait_semaphores)(h.device, &info, timeout) } {
            vk::Result::TIMEOUT => return false,
            r => {
                let mut s = d.slots.lock();
                d.write_pending(&mut s);
                if Device::slot_of(&s, Kind::Timeline, sem) == Some(slot) {
                    d.write_status(&mut s, slot, Kind::Timeline, sem);
                }
                done_pending(&mut s, slot);
                drop(s);
                d.region.changed();
                if r == vk::Result::ERROR_DEVICE_LOST {
                    d.fail(r);
                } else if r != vk::Result::SUCCESS {
                    debug!(?r, "waiting for a timeline semaphore");
                }
                job.timelines.remove(0);
            }
        }
    }
    if let Some((slot, epoch, fence)) = job.fence {
        let f = [vk::Fence::from_raw(fence)];
        // A short submission is often done within a few tens of microseconds: polled, its
        // signal reaches the application without waiting for this thread to be woken.
        let r = match poll_fence(&h, fence) {
            Some(r) => r,
            // SAFETY: a live host fence, submitted, of a device that is not being destroyed.
            None => unsafe { (h.wait_fences)(h.device, 1, f.as_ptr(), vk::TRUE, timeout) },
        };
        if r == vk::Result::TIMEOUT {
            return false;
        }
        let mut s = d.slots.lock();
        d.write_pending(&mut s);
        // A fence reset or destroyed meanwhile is no longer this submission's.
        if Device::slot_of(&s, Kind::Fence, fence) == Some(slot) && s.epochs[slot as usize] == epoch
        {
            d.region.write(slot, pack(epoch, fence_word(r)), 0);
        }
        drop(s);
        d.region.changed();
        if r == vk::Result::ERROR_DEVICE_LOST {
            d.fail(r);
        }
    }
    true
}
