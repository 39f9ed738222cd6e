//! Single-producer single-consumer byte-stream ring in shared memory.
//!
//! The two ends normally live in different processes, and the other end may
//! be buggy, hostile or dead. Hence:
//!
//! * each side keeps the authoritative copy of its own counter in private
//!   memory and only *publishes* it to the header; the peer's counter is
//!   re-validated on every load (`Corrupt` instead of an out-of-bounds access);
//! * bytes are copied out of the shared area exactly once, into the caller's
//!   private buffer, before anything decodes them;
//! * every blocking wait has a timeout so [`Liveness::check`] runs regularly.
//!
//! Header layout (`RING_HEADER_SIZE` bytes, 64-byte lines, all little-endian
//! native atomics):
//!
//! | offset | field                                    | written by          |
//! |--------|------------------------------------------|---------------------|
//! | 0      | magic `u64`, version `u32`, capacity `u64` | initialiser        |
//! | 64     | `head: u64` (bytes ever written)          | producer            |
//! | 72     | `space_waiting: u32` (futex word)         | producer sets, consumer clears |
//! | 128    | `tail: u64` (bytes ever read)             | consumer            |
//! | 136    | `data_waiting: u32` (futex word)          | consumer sets, producer clears |
//!
//! Each side's hot line holds what it writes plus the flag the *other* side
//! checks after reading it, so one cache-line transfer serves both.

use std::hint;
use std::io;
use std::ptr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

use crate::shm::SharedMemory;

/// Bytes reserved for the ring header in front of the data area.
pub const RING_HEADER_SIZE: usize = 256;
/// Smallest supported data-area capacity.
pub const MIN_RING_CAPACITY: usize = 64;
/// Largest supported data-area capacity.
pub const MAX_RING_CAPACITY: usize = 1 << 30;

/// Header offsets, part of the shared-memory ABI.
pub const MAGIC_OFFSET: usize = 0;
pub const VERSION_OFFSET: usize = 8;
pub const CAPACITY_OFFSET: usize = 16;
pub const HEAD_OFFSET: usize = 64;
pub const SPACE_WAITING_OFFSET: usize = 72;
pub const TAIL_OFFSET: usize = 128;
pub const DATA_WAITING_OFFSET: usize = 136;

const RING_MAGIC: u64 = u64::from_le_bytes(*b"AIRLRING");
const RING_VERSION: u32 = 1;

/// Longest busy-poll (`spin_loop`) before sleeping on the futex: a peer running
/// on another core usually answers well within it. `AIRLOCK_SPIN_US`
/// overrides it (0: always sleep at once).
///
/// Whether to spin at all is decided per waiting side by [`SpinPolicy`].
/// Measured with deqp-vk on two cores: one client alone runs 4x faster
/// spinning than sleeping at once, but two clients at once run 2-5x slower
/// spinning, because a spinning waiter keeps its peer off the cores. There is
/// no `sched_yield` phase: it handed whole time slices to other processes.
const DEFAULT_SPIN: Duration = Duration::from_micros(10);

fn spin_time() -> Duration {
    static SPIN: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *SPIN.get_or_init(|| {
        std::env::var("AIRLOCK_SPIN_US")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|us| Duration::from_micros(us.min(1000)))
            .unwrap_or(DEFAULT_SPIN)
    })
}
/// Longest single futex sleep, and the liveness polling period.
const CHECK_INTERVAL: Duration = Duration::from_millis(25);

/// Errors from ring operations.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The peer process died or closed its end of the connection.
    #[error("peer is gone")]
    PeerGone,
    /// The peer wrote impossible values into the shared header.
    #[error("ring corrupted by peer: {0}")]
    Corrupt(&'static str),
    /// The requested ring capacity exceeds [`MAX_RING_CAPACITY`].
    #[error("ring capacity too large")]
    TooLarge,
    /// `offset`/`len` do not describe a valid ring inside the mapping.
    #[error("invalid ring geometry: {0}")]
    Geometry(&'static str),
    /// An earlier operation failed part-way through a transfer, so the byte
    /// stream is no longer aligned on message boundaries.
    #[error("ring stream desynchronised by an earlier failure")]
    Desynchronized,
    /// Unexpected failure of the futex syscall.
    #[error("futex: {0}")]
    Io(#[from] io::Error),
}

/// Tells a blocked ring operation whether the peer is still there.
pub trait Liveness {
    /// Called about every 25 ms while blocked; an `Err` aborts the blocking
    /// operation with that error.
    fn check(&self) -> Result<(), RingError>;
}

/// A [`Liveness`] that never gives up (in-process peers, benchmarks).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysAlive;

impl Liveness for AlwaysAlive {
    fn check(&self) -> Result<(), RingError> {
        Ok(())
    }
}

/// Private state of one end. `pos` is our own counter (authoritative);
/// `seen` is the last validated value of the peer's counter.
#[derive(Debug)]
struct Side {
    pos: u64,
    seen: u64,
    failure: Option<Failure>,
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    Corrupt(&'static str),
    Desynchronized,
}

impl Side {
    fn new(pos: u64, seen: u64) -> Side {
        Side {
            pos,
            seen,
            failure: None,
        }
    }

    fn check_usable(&self) -> Result<(), RingError> {
        match self.failure {
            None => Ok(()),
            Some(Failure::Corrupt(why)) => Err(RingError::Corrupt(why)),
            Some(Failure::Desynchronized) => Err(RingError::Desynchronized),
        }
    }

    /// Records a failure that leaves the stream unusable. Errors before any
    /// byte moved (e.g. peer gone while idle) keep the stream aligned.
    fn latch(&mut self, err: &RingError, moved: bool) {
        match err {
            RingError::Corrupt(why) => {
                tracing::warn!(reason = why, "shared ring corrupted by peer");
                self.failure = Some(Failure::Corrupt(why));
            }
            _ if moved => self.failure = Some(Failure::Desynchronized),
            _ => {}
        }
    }
}

/// One direction of a byte stream in shared memory.
///
/// Each end uses only one role (producer: [`Ring::write`]; consumer:
/// [`Ring::read_exact`]). Concurrent callers of the same role are serialised
/// internally, but messages should be written with a single `write` call so
/// they stay contiguous.
#[derive(Debug)]
pub struct Ring {
    mem: Arc<SharedMemory>,
    offset: usize,
    cap: usize,
    producer: Mutex<Side>,
    consumer: Mutex<Side>,
    space_spin: SpinPolicy,
    data_spin: SpinPolicy,
}

/// Spin while spinning pays off. A score (fixed point, 0..=1024) follows the
/// share of recent waits that a spin ended; below one half the waiter sleeps at
/// once, except that every 32nd wait spins anyway so that the score can recover
/// when the cores free up.
#[derive(Debug)]
struct SpinPolicy {
    score: AtomicU32,
    waits: AtomicU32,
}

impl SpinPolicy {
    const ONE: u32 = 1024;

    fn budget(&self) -> Duration {
        let n = self.waits.fetch_add(1, Ordering::Relaxed);
        if self.score.load(Ordering::Relaxed) >= Self::ONE / 2 || n.is_multiple_of(32) {
            spin_time()
        } else {
            Duration::ZERO
        }
    }

    fn record(&self, spin_won: bool) {
        let s = self.score.load(Ordering::Relaxed);
        let target = if spin_won { Self::ONE } else { 0 };
        // Exponential average with weight 1/8 (racy updates only blur it).
        self.score.store(s - s / 8 + target / 8, Ordering::Relaxed);
    }
}

impl Ring {
    /// Initialises a ring header at `mem[offset..offset + len]`, where
    /// `len = RING_HEADER_SIZE + capacity` and `capacity` is a power of two.
    ///
    /// Must only be called before the memory is shared with the peer.
    pub fn init(mem: Arc<SharedMemory>, offset: usize, len: usize) -> Result<Ring, RingError> {
        let cap = check_geometry(&mem, offset, len)?;
        let ring = Ring::new(mem, offset, cap);
        // Plain stores suffice: the peer can only map the memory after we
        // send it the fd, and that syscall orders these writes before it.
        for (field, value) in [
            (MAGIC_OFFSET, RING_MAGIC),
            (CAPACITY_OFFSET, cap as u64),
            (HEAD_OFFSET, 0),
            (TAIL_OFFSET, 0),
        ] {
            ring.atomic_u64(field).store(value, Ordering::Relaxed);
        }
        for (field, value) in [
            (VERSION_OFFSET, RING_VERSION),
            (SPACE_WAITING_OFFSET, 0),
            (DATA_WAITING_OFFSET, 0),
        ] {
            ring.atomic_u32(field).store(value, Ordering::Relaxed);
        }
        Ok(ring)
    }

    /// Attaches to a ring the peer initialised at `mem[offset..offset + len]`.
    ///
    /// Geometry comes from our own arguments; the header is only checked for
    /// consistency here and re-validated on every later access.
    pub fn attach(mem: Arc<SharedMemory>, offset: usize, len: usize) -> Result<Ring, RingError> {
        let cap = check_geometry(&mem, offset, len)?;
        let mut ring = Ring::new(mem, offset, cap);
        if ring.atomic_u64(MAGIC_OFFSET).load(Ordering::Acquire) != RING_MAGIC {
            return Err(RingError::Corrupt("ring header magic mismatch"));
        }
        if ring.atomic_u32(VERSION_OFFSET).load(Ordering::Relaxed) != RING_VERSION {
            return Err(RingError::Corrupt("ring header version mismatch"));
        }
        if ring.atomic_u64(CAPACITY_OFFSET).load(Ordering::Relaxed) != cap as u64 {
            return Err(RingError::Corrupt("ring header capacity mismatch"));
        }
        // The peer may already have produced or consumed bytes.
        let head = ring.atomic_u64(HEAD_OFFSET).load(Ordering::Acquire);
        let tail = ring.atomic_u64(TAIL_OFFSET).load(Ordering::Acquire);
        if head.wrapping_sub(tail) > cap as u64 {
            return Err(RingError::Corrupt("head and tail more than capacity apart"));
        }
        ring.producer = Mutex::new(Side::new(head, tail));
        ring.consumer = Mutex::new(Side::new(tail, head));
        Ok(ring)
    }

    fn new(mem: Arc<SharedMemory>, offset: usize, cap: usize) -> Ring {
        Ring {
            mem,
            offset,
            cap,
            producer: Mutex::new(Side::new(0, 0)),
            consumer: Mutex::new(Side::new(0, 0)),
            space_spin: SpinPolicy {
                score: AtomicU32::new(SpinPolicy::ONE),
                waits: AtomicU32::new(0),
            },
            data_spin: SpinPolicy {
                score: AtomicU32::new(SpinPolicy::ONE),
                waits: AtomicU32::new(0),
            },
        }
    }

    /// Size of the data area in bytes (a power of two).
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Writes all bytes of all `parts`, in order, as one contiguous piece of
    /// the stream.
    ///
    /// Blocks while the ring is full; pieces larger than the capacity stream
    /// through as the consumer drains them. The consumer is woken only if it
    /// announced that it is sleeping. After an error mid-write the stream is
    /// unusable ([`RingError::Desynchronized`]).
    pub fn write(&self, parts: &[&[u8]], peer: &dyn Liveness) -> Result<(), RingError> {
        self.write_waking(parts, peer, true)
    }

    /// Like [`Ring::write`], but a sleeping consumer is not woken for it (unless the ring
    /// fills): it finds the bytes when the next write wakes it, or at its next timeout. For
    /// messages whose effect only later messages observe; it spares the wake-up's syscall.
    pub fn write_quiet(&self, parts: &[&[u8]], peer: &dyn Liveness) -> Result<(), RingError> {
        self.write_waking(parts, peer, false)
    }

    fn write_waking(
        &self,
        parts: &[&[u8]],
        peer: &dyn Liveness,
        wake: bool,
    ) -> Result<(), RingError> {
        let mut side = lock(&self.producer);
        side.check_usable()?;
        let start = side.pos;
        let result = self.write_locked(&mut side, parts, peer, wake);
        if let Err(e) = &result {
            let moved = side.pos != start;
            side.latch(e, moved);
        }
        result
    }

    fn write_locked(
        &self,
        side: &mut Side,
        parts: &[&[u8]],
        peer: &dyn Liveness,
        wake: bool,
    ) -> Result<(), RingError> {
        let cap = self.cap as u64;
        let mut published = side.pos;
        for part in parts {
            let mut src: &[u8] = part;
            while !src.is_empty() {
                let mut free = cap - side.pos.wrapping_sub(side.seen);
                if free == 0 {
                    free = self.refresh_free(side)?;
                }
                if free == 0 {
                    // The consumer can only drain what it can see.
                    if side.pos != published {
                        self.publish_head(side.pos);
                        published = side.pos;
                    }
                    // Returns once space is free (it refreshed `side.seen`).
                    self.block_on(WaitSide::Space, None, peer, || self.refresh_free(side))?;
                    continue;
                }
                let n = src.len().min(usize::try_from(free).unwrap_or(usize::MAX));
                let (chunk, rest) = src.split_at(n);
                self.copy_in(side.pos, chunk);
                side.pos = side.pos.wrapping_add(n as u64);
                src = rest;
            }
        }
        if side.pos != published {
            if wake {
                self.publish_head(side.pos);
            } else {
                self.atomic_u64(HEAD_OFFSET)
                    .store(side.pos, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Fills `buf` completely, blocking while the ring is empty.
    ///
    /// After an error mid-read the stream is unusable
    /// ([`RingError::Desynchronized`]).
    pub fn read_exact(&self, buf: &mut [u8], peer: &dyn Liveness) -> Result<(), RingError> {
        self.read(buf, None, peer).map(|_| ())
    }

    /// Like [`Ring::read_exact`], but returns `Ok(false)` without consuming
    /// anything if no byte arrives within `timeout`. Once the first byte is
    /// available the read completes like `read_exact`.
    pub fn read_exact_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
        peer: &dyn Liveness,
    ) -> Result<bool, RingError> {
        // An unrepresentable deadline is as good as none.
        let deadline = Instant::now().checked_add(timeout);
        self.read(buf, Some(deadline), peer)
    }

    /// `deadline`: `None` blocks forever, `Some(None)` means "too far away".
    fn read(
        &self,
        buf: &mut [u8],
        deadline: Option<Option<Instant>>,
        peer: &dyn Liveness,
    ) -> Result<bool, RingError> {
        let mut side = lock(&self.consumer);
        side.check_usable()?;
        let start = side.pos;
        let result = self.read_locked(&mut side, buf, deadline.flatten(), peer);
        if let Err(e) = &result {
            let moved = side.pos != start;
            side.latch(e, moved);
        }
        result
    }

    fn read_locked(
        &self,
        side: &mut Side,
        buf: &mut [u8],
        deadline: Option<Instant>,
        peer: &dyn Liveness,
    ) -> Result<bool, RingError> {
        let mut filled = 0;
        while filled < buf.len() {
            let mut avail = side.seen.wrapping_sub(side.pos);
            if avail == 0 {
                avail = self.refresh_avail(side)?;
            }
            if avail == 0 {
                // The deadline only guards the first byte.
                let dl = if filled == 0 { deadline } else { None };
                match self.block_on(WaitSide::Data, dl, peer, || self.refresh_avail(side))? {
                    Some(n) => avail = n,
                    None => return Ok(false),
                }
            }
            let want = buf.len() - filled;
            let n = want.min(usize::try_from(avail).unwrap_or(usize::MAX));
            self.copy_out(side.pos, &mut buf[filled..filled + n]);
            filled += n;
            side.pos = side.pos.wrapping_add(n as u64);
            self.publish_tail(side.pos);
        }
        Ok(true)
    }

    /// Reloads `tail` and returns the free space, validating the peer value.
    fn refresh_free(&self, side: &mut Side) -> Result<u64, RingError> {
        let tail = self.atomic_u64(TAIL_OFFSET).load(Ordering::Acquire);
        let used = side.pos.wrapping_sub(tail);
        if used > self.cap as u64 {
            return Err(RingError::Corrupt(
                "tail ahead of head or more than capacity behind",
            ));
        }
        if tail.wrapping_sub(side.seen) > self.cap as u64 {
            return Err(RingError::Corrupt("tail went backwards"));
        }
        side.seen = tail;
        Ok(self.cap as u64 - used)
    }

    /// Reloads `head` and returns the readable bytes, validating the peer value.
    fn refresh_avail(&self, side: &mut Side) -> Result<u64, RingError> {
        let head = self.atomic_u64(HEAD_OFFSET).load(Ordering::Acquire);
        let avail = head.wrapping_sub(side.pos);
        if avail > self.cap as u64 {
            return Err(RingError::Corrupt(
                "head behind tail or more than capacity ahead",
            ));
        }
        if head.wrapping_sub(side.seen) > self.cap as u64 {
            return Err(RingError::Corrupt("head went backwards"));
        }
        side.seen = head;
        Ok(avail)
    }

    fn publish_head(&self, head: u64) {
        self.atomic_u64(HEAD_OFFSET).store(head, Ordering::Release);
        self.wake_if_waiting(DATA_WAITING_OFFSET);
    }

    fn publish_tail(&self, tail: u64) {
        self.atomic_u64(TAIL_OFFSET).store(tail, Ordering::Release);
        self.wake_if_waiting(SPACE_WAITING_OFFSET);
    }

    /// Second half of the lost-wake-up protocol: our counter store and the
    /// sleeper's flag store are each followed by a SeqCst fence, so either we
    /// see its flag here or it sees our counter before sleeping. The swap
    /// also changes the futex word, so a sleeper that has not entered
    /// `FUTEX_WAIT` yet returns immediately.
    fn wake_if_waiting(&self, word_offset: usize) {
        fence(Ordering::SeqCst);
        let word = self.atomic_u32(word_offset);
        if word.load(Ordering::Relaxed) != 0 && word.swap(0, Ordering::Relaxed) != 0 {
            // A failed wake only delays the sleeper until its timeout.
            let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
        }
    }

    /// Waits until `ready` reports a non-zero amount: spin, yield, then
    /// announce-recheck-sleep on a shared (cross-process) futex.
    /// Returns `Ok(None)` once `deadline` passes.
    fn block_on(
        &self,
        which: WaitSide,
        deadline: Option<Instant>,
        peer: &dyn Liveness,
        mut ready: impl FnMut() -> Result<u64, RingError>,
    ) -> Result<Option<u64>, RingError> {
        let n = ready()?;
        if n > 0 {
            return Ok(Some(n));
        }
        let policy = match which {
            WaitSide::Space => &self.space_spin,
            WaitSide::Data => &self.data_spin,
        };
        let budget = policy.budget();
        if !budget.is_zero() {
            let start = Instant::now();
            loop {
                hint::spin_loop();
                let n = ready()?;
                if n > 0 {
                    policy.record(true);
                    return Ok(Some(n));
                }
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return Ok(None);
                }
                if now.duration_since(start) >= budget {
                    policy.record(false);
                    break;
                }
            }
        }

        let word = self.atomic_u32(which.word_offset());
        let result = self.sleep_loop(word, deadline, peer, &mut ready);
        // Spare the peer a pointless wake syscall.
        word.store(0, Ordering::Relaxed);
        result
    }

    fn sleep_loop(
        &self,
        word: &AtomicU32,
        deadline: Option<Instant>,
        peer: &dyn Liveness,
        ready: &mut impl FnMut() -> Result<u64, RingError>,
    ) -> Result<Option<u64>, RingError> {
        peer.check()?;
        let mut last_check = Instant::now();
        loop {
            // Announce, then re-check: pairs with `wake_if_waiting`.
            word.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            let n = ready()?;
            if n > 0 {
                return Ok(Some(n));
            }
            let now = Instant::now();
            let mut wait = CHECK_INTERVAL;
            if let Some(d) = deadline {
                if now >= d {
                    return Ok(None);
                }
                wait = wait.min(d - now);
            }
            let ts = futex::Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_nanos()),
            };
            // Not PRIVATE: the peer wakes us from another process.
            match futex::wait(word, futex::Flags::empty(), 1, Some(&ts)) {
                Ok(()) | Err(Errno::AGAIN | Errno::TIMEDOUT | Errno::INTR) => {}
                Err(e) => return Err(RingError::Io(e.into())),
            }
            // Time-based so a peer spamming wake-ups cannot starve the check.
            if last_check.elapsed() >= CHECK_INTERVAL {
                peer.check()?;
                last_check = Instant::now();
            }
        }
    }

    /// Copies `src` into the data area at stream position `pos`.
    fn copy_in(&self, pos: u64, src: &[u8]) {
        let idx = (pos & (self.cap as u64 - 1)) as usize;
        let first = src.len().min(self.cap - idx);
        let data = self.data_ptr();
        // SAFETY: `idx + first <= cap` and `src.len() - first <= cap - first`
        // (callers never pass more than the free space, which is <= cap), so
        // both copies stay inside the data area, which the mapping (kept
        // alive by `self.mem`) covers. Shared memory never overlaps `src`.
        unsafe {
            ptr::copy_nonoverlapping(src.as_ptr(), data.add(idx), first);
            ptr::copy_nonoverlapping(src.as_ptr().add(first), data, src.len() - first);
        }
    }

    /// Copies bytes at stream position `pos` out of the data area into `dst`.
    fn copy_out(&self, pos: u64, dst: &mut [u8]) {
        let idx = (pos & (self.cap as u64 - 1)) as usize;
        let first = dst.len().min(self.cap - idx);
        let data = self.data_ptr();
        // SAFETY: as in `copy_in`, `dst.len() <= cap`. The peer might write
        // these bytes concurrently (only if it is misbehaving); copying them
        // out once, before anyone inspects them, is what keeps that harmless.
        unsafe {
            ptr::copy_nonoverlapping(data.add(idx), dst.as_mut_ptr(), first);
            ptr::copy_nonoverlapping(data, dst.as_mut_ptr().add(first), dst.len() - first);
        }
    }

    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: `check_geometry` proved `offset + RING_HEADER_SIZE + cap`
        // lies within the mapping.
        unsafe { self.mem.as_ptr().add(self.offset + RING_HEADER_SIZE) }
    }

    fn atomic_u64(&self, field: usize) -> &AtomicU64 {
        // SAFETY: `field + 8 <= RING_HEADER_SIZE`, the header lies inside the
        // mapping and is 64-byte aligned (`check_geometry`; mmap is page
        // aligned), and the mapping outlives `&self`. Memory mutated by
        // another process is exactly what atomics are for.
        unsafe { AtomicU64::from_ptr(self.header_field(field).cast()) }
    }

    fn atomic_u32(&self, field: usize) -> &AtomicU32 {
        // SAFETY: as for `atomic_u64`.
        unsafe { AtomicU32::from_ptr(self.header_field(field).cast()) }
    }

    fn header_field(&self, field: usize) -> *mut u8 {
        self.mem.as_ptr().wrapping_add(self.offset + field)
    }
}

/// Which futex word a blocked side sleeps on.
#[derive(Clone, Copy)]
enum WaitSide {
    /// Producer waiting for free space.
    Space,
    /// Consumer waiting for data.
    Data,
}

impl WaitSide {
    fn word_offset(self) -> usize {
        match self {
            WaitSide::Space => SPACE_WAITING_OFFSET,
            WaitSide::Data => DATA_WAITING_OFFSET,
        }
    }
}

/// Validates `mem[offset..offset + len]` as a ring region; returns capacity.
fn check_geometry(mem: &SharedMemory, offset: usize, len: usize) -> Result<usize, RingError> {
    if !offset.is_multiple_of(64) {
        return Err(RingError::Geometry("ring offset must be 64-byte aligned"));
    }
    let end = offset
        .checked_add(len)
        .ok_or(RingError::Geometry("ring region overflows"))?;
    if end > mem.len() {
        return Err(RingError::Geometry("ring region exceeds the mapping"));
    }
    let cap = len
        .checked_sub(RING_HEADER_SIZE)
        .ok_or(RingError::Geometry("ring region smaller than its header"))?;
    if !cap.is_power_of_two() || cap < MIN_RING_CAPACITY {
        return Err(RingError::Geometry(
            "ring capacity must be a power of two of at least 64 bytes",
        ));
    }
    if cap > MAX_RING_CAPACITY {
        return Err(RingError::TooLarge);
    }
    Ok(cap)
}

fn lock(m: &Mutex<Side>) -> MutexGuard<'_, Side> {
    // Side state is only updated after each step completes, so it stays
    // consistent even if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
