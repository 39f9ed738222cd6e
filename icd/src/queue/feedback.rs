//! The client's side of a device's feedback region (`wire::feedback`): the read-only mapping,
//! the slots given to fences, timeline semaphores and events, the epochs counted here, and the
//! wait that sleeps on the region's futex.
//!
//! A slot's state is believed only when its epoch is the one counted here. Until the server has
//! confirmed a binding once (its first state with our epoch), a query asks the server, which
//! answers after the binding, and a wait waits for the confirmation a while before it asks too;
//! so a binding the server refused only costs speed. Once confirmed, an older epoch means a
//! reset or submission the server has not read yet: the fence is unsignalled, as it is after
//! either.

use crate::conn::Connection;
use crate::log::log;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wire::codec::Decoder;
use wire::control::ControlMsg;
use wire::feedback::{unpack, Kind, Region, SLOTS};
use wire::frame::Status;
use wire::private::{FEEDBACK, WATCH};

/// Longest futex sleep between looks at the server's liveness.
const LIVENESS: Duration = Duration::from_millis(25);
/// How long a confirmed object may show an epoch behind ours before the wait asks the server
/// instead (the server missed an event it should have counted: a bug, never a hang).
const BEHIND_LIMIT: Duration = Duration::from_secs(1);

/// One watched object.
#[derive(Clone, Copy)]
pub struct Watched {
    pub slot: u32,
    pub kind: Kind,
    /// Signalled or reset by a command buffer: only the server knows its status.
    pub device_touched: bool,
    /// Its status must come from the server (a sparse binding signals it, which the feedback
    /// does not follow).
    pub detached: bool,
}

/// What one slot says, as far as this side can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The status word and value, with our epoch.
    Current(u32, u64),
    /// The server has not caught up with what we posted: a fence is unsignalled.
    Behind,
    /// The server has not shown the binding yet (it has not read it, or refused it): a wait
    /// may wait for it a while, a query asks the server.
    Unconfirmed,
    /// Detached, or given no slot: ask the server.
    Unknown,
}

pub struct Feedback {
    region: Region,
    objects: RwLock<FxHashMap<u64, Watched>>,
    /// Bumped after every change of `objects`: a thread's last lookup stays good while it is
    /// unchanged (status polls ask about one object over and over; the lock and the hash were
    /// most of their cost).
    changes: AtomicU64,
    free: Mutex<(Vec<u32>, u32)>,
    /// Per slot, the events counted here.
    epochs: Box<[AtomicU32]>,
    /// Per slot, whether the server has shown our epoch since the binding.
    confirmed: Box<[AtomicBool]>,
}

impl Feedback {
    /// Asks the server for the region of device `device` (an id). `None` when it cannot be had:
    /// every status then comes from the server.
    pub fn open(conn: &Connection, device: u64) -> Option<Feedback> {
        match receive(conn, device) {
            Ok(fd) => match Region::open(fd) {
                Ok(region) => Some(Feedback {
                    region,
                    objects: RwLock::default(),
                    changes: AtomicU64::new(0),
                    free: Mutex::new((Vec::new(), 0)),
                    epochs: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
                    confirmed: (0..SLOTS).map(|_| AtomicBool::new(false)).collect(),
                }),
                Err(e) => {
                    log!(warn, "airlock: the feedback region the server sent: {e}");
                    None
                }
            },
            Err(e) => {
                log!(
                    warn,
                    "airlock: no feedback region ({e}); status queries ask the server"
                );
                None
            }
        }
    }

    /// Gives object `id` a slot and tells the server (posted): its status is then read here.
    pub fn watch(&self, conn: &Connection, id: u64, kind: Kind) {
        let slot = {
            let mut f = self.free.lock();
            match f.0.pop() {
                Some(s) => s,
                None if f.1 < SLOTS => {
                    f.1 += 1;
                    f.1 - 1
                }
                // Out of slots: this object's status comes from the server.
                None => return,
            }
        };
        let i = slot as usize;
        self.confirmed[i].store(false, Ordering::Release);
        self.epochs[i].fetch_add(1, Ordering::AcqRel);
        self.change(|objects| {
            objects.insert(
                id,
                Watched {
                    slot,
                    kind,
                    device_touched: false,
                    detached: false,
                },
            );
        });
        let mut p = [0u8; 16];
        p[..8].copy_from_slice(&id.to_le_bytes());
        p[8..12].copy_from_slice(&slot.to_le_bytes());
        p[12..].copy_from_slice(&(kind as u32).to_le_bytes());
        if let Err(e) = conn.exchange_parts(WATCH, &[&p], false, &mut Vec::new()) {
            conn.lose(&format!("WATCH: {e}"));
        }
    }

    /// Frees the slot of a destroyed object.
    pub fn forget(&self, id: u64) {
        if let Some(w) = self.change(|objects| objects.remove(&id)) {
            self.free.lock().0.push(w.slot);
        }
    }

    /// Changes `objects`, then counts the change (after it: a lookup that saw the old count
    /// may have seen the old map, and is not kept past it).
    fn change<R>(&self, f: impl FnOnce(&mut FxHashMap<u64, Watched>) -> R) -> R {
        let mut objects = self.objects.write();
        let r = f(&mut objects);
        self.changes.fetch_add(1, Ordering::Release);
        r
    }

    pub fn get(&self, id: u64) -> Option<Watched> {
        thread_local! {
            /// This thread's last lookup: the region, `changes` before it, the id, the answer.
            static LAST: std::cell::Cell<(usize, u64, u64, Option<Watched>)> =
                const { std::cell::Cell::new((0, u64::MAX, 0, None)) };
        }
        let me = self as *const Feedback as usize;
        let changes = self.changes.load(Ordering::Acquire);
        let (region, seen, last_id, answer) = LAST.get();
        if region == me && seen == changes && last_id == id {
            return answer;
        }
        let answer = self.objects.read().get(&id).copied();
        LAST.set((me, changes, id, answer));
        answer
    }

    /// Marks an object whose status only the server can tell from now on.
    pub fn touch(&self, id: u64, device: bool) {
        self.change(|objects| {
            if let Some(w) = objects.get_mut(&id) {
                if device {
                    w.device_touched = true;
                } else {
                    w.detached = true;
                }
            }
        });
    }

    /// Counts a reset or submission of fence `id`, before it is posted.
    pub fn restart(&self, id: u64) {
        if let Some(w) = self.get(id) {
            self.epochs[w.slot as usize].fetch_add(1, Ordering::AcqRel);
        }
    }

    /// What the region says of object `id` now.
    pub fn seen(&self, id: u64) -> Seen {
        let Some(w) = self.get(id) else {
            return Seen::Unknown;
        };
        if w.detached || w.device_touched {
            return Seen::Unknown;
        }
        let i = w.slot as usize;
        let Some((state, value)) = self.region.read(w.slot) else {
            return Seen::Unknown;
        };
        let (epoch, status) = unpack(state);
        if epoch == self.epochs[i].load(Ordering::Acquire) {
            self.confirmed[i].store(true, Ordering::Release);
            Seen::Current(status, value)
        } else if self.confirmed[i].load(Ordering::Acquire) {
            Seen::Behind
        } else {
            Seen::Unconfirmed
        }
    }

    /// 0, or the `VkResult` the device's posted work failed with.
    pub fn failed(&self) -> i32 {
        self.region.failed()
    }

    /// Waits until `check` says done (`Some`), the deadline passes (`Err(true)`), or the
    /// answer must come from the server (`Err(false)`: an unknown object, or one behind for
    /// too long). `check` sees each object's [`Seen`] and returns `None` to keep waiting.
    pub fn wait<T>(
        &self,
        conn: &Connection,
        timeout_ns: u64,
        mut check: impl FnMut(&Self) -> Result<Option<T>, ()>,
    ) -> Result<T, bool> {
        let start = Instant::now();
        let deadline = start.checked_add(Duration::from_nanos(timeout_ns));
        loop {
            let seen = self.region.changes().load(Ordering::Acquire);
            match check(self) {
                Ok(Some(t)) => return Ok(t),
                Ok(None) => {}
                Err(()) => return Err(false),
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if now >= d => return Err(true),
                Some(d) => d - now,
                None => LIVENESS,
            };
            if conn.is_lost() || !conn.alive() {
                return Err(false);
            }
            self.region.wait(seen, left.min(LIVENESS));
        }
    }

    /// How long an object may stay [`Seen::Behind`] in a wait.
    pub fn behind_limit() -> Duration {
        BEHIND_LIMIT
    }
}

/// Asks the server for the region's memfd.
fn receive(conn: &Connection, device: u64) -> Result<OwnedFd, String> {
    // Concurrent requests must not take each other's descriptors off the socket.
    let _handover = conn.handover();
    let mut body = Vec::new();
    let status = conn
        .exchange_parts(FEEDBACK, &[&device.to_le_bytes()], true, &mut body)
        .map_err(|e| {
            conn.lose(&format!("FEEDBACK: {e}"));
            e.to_string()
        })?;
    if status != Some(Status::Ok) {
        return Err("the server rejected the request".into());
    }
    let r = Decoder::new(&body).u32().map_err(|e| e.to_string())? as i32;
    if r != 0 {
        return Err(format!("the server answered {r}"));
    }
    let (msg, fds) = conn.recv_control().map_err(|e| {
        conn.lose(&format!("waiting for the feedback region: {e}"));
        e.to_string()
    })?;
    match (msg, <[_; 1]>::try_from(fds)) {
        (ControlMsg::Feedback, Ok([fd])) => Ok(fd),
        _ => {
            conn.lose("the server sent something else than the feedback region");
            Err("unexpected control message".into())
        }
    }
}
