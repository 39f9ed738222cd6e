//! Kept answers of physical devices: what the host says of one never changes while the instance lives
//! (properties, features, formats, memory and queue families, sparse and external
//! capabilities), so each answer is asked once and kept with the physical device's wrapper.
//!
//! An answer is keyed by the whole request as it would travel: the command, the physical
//! device, every input (format, type, tiling, usage, flags, the input chain) and the shape of
//! the output chain the application passed (which structures, which counts). Two queries that
//! would reach the server as the same bytes get the same reply bytes, decoded into the
//! application's structures as a reply from the server would be.
//!
//! The most asked of them, an image format query with no structure chained on either side, is
//! kept apart by the physical-device family (`physical_device.rs`).

use crate::objects::header;
use parking_lot::RwLock;
use rustc_hash::{FxHashMap, FxHasher};
use std::hash::{Hash, Hasher};
use wire::generated::commands::id;

/// Most bytes of answers kept per physical device (requests and replies); past it, answers
/// are asked again.
const LIMIT: usize = 16 << 20;

/// Whether `cmd`'s answer depends only on its physical device and its inputs.
pub fn immutable(cmd: u32) -> bool {
    matches!(
        cmd,
        id::vkGetPhysicalDeviceProperties
            | id::vkGetPhysicalDeviceProperties2
            | id::vkGetPhysicalDeviceFeatures
            | id::vkGetPhysicalDeviceFeatures2
            | id::vkGetPhysicalDeviceFormatProperties
            | id::vkGetPhysicalDeviceFormatProperties2
            | id::vkGetPhysicalDeviceImageFormatProperties
            | id::vkGetPhysicalDeviceImageFormatProperties2
            | id::vkGetPhysicalDeviceMemoryProperties
            | id::vkGetPhysicalDeviceMemoryProperties2
            | id::vkGetPhysicalDeviceQueueFamilyProperties
            | id::vkGetPhysicalDeviceQueueFamilyProperties2
            | id::vkGetPhysicalDeviceSparseImageFormatProperties
            | id::vkGetPhysicalDeviceSparseImageFormatProperties2
            | id::vkGetPhysicalDeviceExternalBufferProperties
            | id::vkGetPhysicalDeviceExternalFenceProperties
            | id::vkGetPhysicalDeviceExternalSemaphoreProperties
    )
}

type Kept = Vec<(u32, Box<[u8]>, Box<[u8]>)>;

/// The answers kept for one physical device: (command, request bytes) → reply bytes, by a hash
/// of the pair, and the bytes kept.
#[derive(Default)]
pub struct Answers {
    map: RwLock<(FxHashMap<u64, Kept>, usize)>,
}

fn key(cmd: u32, request: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    cmd.hash(&mut h);
    request.hash(&mut h);
    h.finish()
}

impl Answers {
    /// The answers of the physical device `physical_device` (a wrapper).
    ///
    /// # Safety
    /// `physical_device` is a live physical device wrapper.
    pub unsafe fn of<'a>(physical_device: u64) -> &'a Answers {
        header(physical_device).families.get::<Answers>()
    }

    /// `with(reply)` on the kept reply to `request`, if there is one (under the read lock: no
    /// reference count is taken on the hot path).
    pub fn with<R>(&self, cmd: u32, request: &[u8], with: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let m = self.map.read();
        let kept = m.0.get(&key(cmd, request))?;
        let (_, _, reply) = kept.iter().find(|(c, r, _)| *c == cmd && **r == *request)?;
        Some(with(reply))
    }

    pub fn keep(&self, cmd: u32, request: &[u8], reply: &[u8]) {
        let mut m = self.map.write();
        let size = request.len() + reply.len();
        if m.1 + size > LIMIT {
            return;
        }
        let kept = m.0.entry(key(cmd, request)).or_default();
        if kept.iter().any(|(c, r, _)| *c == cmd && **r == *request) {
            return;
        }
        kept.push((cmd, request.into(), reply.into()));
        m.1 += size;
    }
}
