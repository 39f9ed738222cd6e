//! Counters of what crossed to the server, for `AIRLOCK_STATS=<file>`.
//!
//! They show where the bytes go: memory contents never enter the ring (they live in shared
//! pages), recorded commands travel in batches. The file is written, as one JSON object, when
//! the application destroys an instance.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static MESSAGES: AtomicU64 = AtomicU64::new(0);
static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);
static RING_BYTES: AtomicU64 = AtomicU64::new(0);
static BATCHES: AtomicU64 = AtomicU64::new(0);
static BATCHED_COMMANDS: AtomicU64 = AtomicU64::new(0);
static MEMORY_MAPS: AtomicU64 = AtomicU64::new(0);
static MAPPED_BYTES: AtomicU64 = AtomicU64::new(0);
static PRESENTED: AtomicU64 = AtomicU64::new(0);
static PRESENT_RING_BYTES: AtomicU64 = AtomicU64::new(0);
static PRESENT_COPIED_BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread is acquiring or presenting a swapchain image: what it sends counts
    /// as the bytes those frames cost.
    static PRESENTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with what this thread sends counted as a frame's (acquire, present).
pub fn for_frames<R>(f: impl FnOnce() -> R) -> R {
    PRESENTING.with(|p| p.set(true));
    let r = f();
    PRESENTING.with(|p| p.set(false));
    r
}

/// Pixels of `bytes` copied into a window's X connection (no MIT-SHM).
pub fn present_copied(bytes: u64) {
    PRESENT_COPIED_BYTES.fetch_add(bytes, Relaxed);
}

/// One swapchain image presented.
pub fn presented() {
    PRESENTED.fetch_add(1, Relaxed);
}

/// One message of `bytes` (header included) written into the command ring; `replied`: the
/// caller waits for its reply (a round trip).
pub fn sent(bytes: usize, replied: bool) {
    MESSAGES.fetch_add(1, Relaxed);
    if replied {
        ROUND_TRIPS.fetch_add(1, Relaxed);
    }
    RING_BYTES.fetch_add(bytes as u64, Relaxed);
    if PRESENTING.with(|p| p.get()) {
        PRESENT_RING_BYTES.fetch_add(bytes as u64, Relaxed);
    }
}

/// One batch of `commands` recorded commands shipped.
pub fn batch(commands: u64) {
    BATCHES.fetch_add(1, Relaxed);
    BATCHED_COMMANDS.fetch_add(commands, Relaxed);
}

/// Device memory of `bytes` mapped into the application.
pub fn mapped(bytes: u64) {
    MEMORY_MAPS.fetch_add(1, Relaxed);
    MAPPED_BYTES.fetch_add(bytes, Relaxed);
}

/// The counters as a JSON object.
pub fn json() -> String {
    format!(
        "{{\"messages\": {}, \"round_trips\": {}, \"ring_bytes\": {}, \"batches\": {}, \"batched_commands\": {}, \"memory_maps\": {}, \"mapped_bytes\": {}, \"presented\": {}, \"present_ring_bytes\": {}, \"present_copied_bytes\": {}}}\n",
        MESSAGES.load(Relaxed),
        ROUND_TRIPS.load(Relaxed),
        RING_BYTES.load(Relaxed),
        BATCHES.load(Relaxed),
        BATCHED_COMMANDS.load(Relaxed),
        MEMORY_MAPS.load(Relaxed),
        MAPPED_BYTES.load(Relaxed),
        PRESENTED.load(Relaxed),
        PRESENT_RING_BYTES.load(Relaxed),
        PRESENT_COPIED_BYTES.load(Relaxed),
    )
}

/// Writes the counters where `AIRLOCK_STATS` says, if it is set.
pub fn dump() {
    if let Some(path) = std::env::var_os("AIRLOCK_STATS") {
        if let Err(e) = std::fs::write(&path, json()) {
            crate::log::log!(warn, "airlock: AIRLOCK_STATS: cannot write {path:?}: {e}");
        }
    }
}
