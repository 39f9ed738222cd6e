//! What one client may make its server hold: device memory and live objects.
//!
//! The address-space limit of the sandbox (`sandbox::limits`) only stops the server itself;
//! hitting it mid-call would fail whatever allocation happened to come next, in the driver or
//! in the server, perhaps fatally. These limits are checked before the host driver is called,
//! so the client that exceeds them gets the error Vulkan has for it, and a log line says
//! which limit and its value:
//!
//! - device memory (the sum of `allocationSize` of live `vkAllocateMemory` allocations):
//!   `AIRLOCK_MAX_DEVICE_MEMORY` (bytes, or with a K, M, G or T suffix, or `unlimited`), by
//!   default three quarters of the machine's memory; beyond it `VK_ERROR_OUT_OF_DEVICE_MEMORY`.
//!   The heaps the client is told about are no larger, so a client that sizes its allocations
//!   by the heap stays within it.
//! - live objects: `AIRLOCK_MAX_OBJECTS`, by default 1,000,000; a creation beyond it is
//!   `VK_ERROR_OUT_OF_HOST_MEMORY`. The client may ask for room ahead (`wire::private::CREDIT`)
//!   for a device's creations it posts without waiting (fences, semaphores, events, command
//!   buffers, descriptor sets): a grant is at most half the room left and [`CREDIT_GRANT`],
//!   and until posted creations on that device spend it (or the device is destroyed), other
//!   creations see that much less room. A posted creation with room set aside
//!   cannot meet the limit, so its refusal never has to reach the application late.
//!
//! Message sizes are bounded elsewhere: `wire::frame::MAX_MESSAGE` per request and the decode
//! arena's limit (`conn::ARENA_LIMIT`).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::warn;

pub const DEFAULT_MAX_OBJECTS: u64 = 1_000_000;

/// Most objects one `CREDIT` request is granted: few requests for a program that allocates
/// thousands of descriptor sets a frame, and at most this much room held back from the calls.
pub const CREDIT_GRANT: u64 = 1 << 16;

/// Most descriptors one descriptor set layout may declare (inline uniform block bytes count as
/// descriptors). Drivers and the validation layer keep state per descriptor of every set
/// allocated with a layout; Vulkan has no limit on a layout by itself, only on the pipeline
/// layouts using it, where lavapipe's largest per-type limit is 65,536. A layout beyond this
/// could never be used and gets `VK_ERROR_OUT_OF_HOST_MEMORY` (the fuzzer's 151 million
/// descriptors took 6 GiB in the validation layer).
pub const MAX_LAYOUT_DESCRIPTORS: u64 = 1 << 20;

/// Highest binding number a descriptor set layout may use, plus one. Vulkan sets no limit, but
/// Mesa's layouts (lavapipe's) and the validation layer keep an entry for every number up to
/// the highest: binding 134,217,729 took 14 GiB (found by the fuzzer). Real layouts number
/// their bindings from 0 up. Beyond this, `VK_ERROR_OUT_OF_HOST_MEMORY`.
pub const MAX_LAYOUT_BINDING: u32 = 1 << 16;

/// Most queries one query pool may hold. Vulkan sets no limit; the host and the validation
/// layer keep state per query (the fuzzer's pool of 2^31 queries made the layer throw
/// `std::bad_alloc` through the server, which aborts it). Beyond this,
/// `VK_ERROR_OUT_OF_HOST_MEMORY`, which `vkCreateQueryPool` may return.
pub const MAX_POOL_QUERIES: u64 = 1 << 24;

pub struct Limits {
    /// Most bytes of device memory the client may hold; `None`: unlimited.
    pub max_device_memory: Option<u64>,
    /// Most live objects (client-created and host-reported) the client may hold.
    pub max_objects: Option<u64>,
    memory: Mutex<Accounts>,
    /// Objects granted to posted creations and not yet spent, in all and by host device (a
    /// destroyed device's grant goes with it).
    credit: AtomicU64,
    credit_by_device: Mutex<HashMap<u64, u64>>,
}

#[derive(Default)]
struct Accounts {
    used: u64,
    /// Client memory id → (bytes, host device).
    by_id: HashMap<u64, (u64, u64)>,
}

impl Limits {
    /// The limits the environment asks for; a malformed value is logged and the default used.
    pub fn from_env() -> Limits {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let max_device_memory = match var("AIRLOCK_MAX_DEVICE_MEMORY").map(|v| parse_size(&v)) {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                warn!("AIRLOCK_MAX_DEVICE_MEMORY: {e}; using the default");
                default_device_memory()
            }
            None => default_device_memory(),
        };
        let max_objects = match var("AIRLOCK_MAX_OBJECTS").map(|v| parse_size(&v)) {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                warn!("AIRLOCK_MAX_OBJECTS: {e}; using the default");
                Some(DEFAULT_MAX_OBJECTS)
            }
            None => Some(DEFAULT_MAX_OBJECTS),
        };
        Limits::new(max_device_memory, max_objects)
    }

    pub fn new(max_device_memory: Option<u64>, max_objects: Option<u64>) -> Limits {
        Limits {
            max_device_memory,
            max_objects,
            memory: Mutex::new(Accounts::default()),
            credit: AtomicU64::new(0),
            credit_by_device: Mutex::default(),
        }
    }

    /// Whether `size` more bytes of device memory fit; logs the refusal.
    pub fn memory_fits(&self, size: u64) -> bool {
        let Some(max) = self.max_device_memory else {
            return true;
        };
        let used = self.memory.lock().used;
        if used.checked_add(size).is_some_and(|total| total <= max) {
            return true;
        }
        warn!(
            requested = size,
            in_use = used,
            "vkAllocateMemory refused: VK_ERROR_OUT_OF_DEVICE_MEMORY, over the device memory \
             limit of {max} bytes (AIRLOCK_MAX_DEVICE_MEMORY)"
        );
        false
    }

    /// Counts an allocation the host driver made.
    pub fn allocated(&self, memory_id: u64, size: u64, device: u64) {
        let mut a = self.memory.lock();
        a.used = a.used.saturating_add(size);
        if let Some((old, _)) = a.by_id.insert(memory_id, (size, device)) {
            a.used -= old;
        }
    }

    /// Stops counting freed memory.
    pub fn freed(&self, memory_id: u64) {
        let mut a = self.memory.lock();
        if let Some((size, _)) = a.by_id.remove(&memory_id) {
            a.used -= size;
        }
    }

    /// Stops counting the memory and the unspent grant of a destroyed device.
    pub fn device_gone(&self, device: u64) {
        if let Some(left) = self.credit_by_device.lock().remove(&device) {
            self.credit.fetch_sub(left, Ordering::AcqRel);
        }
        let mut a = self.memory.lock();
        let mut gone = 0;
        a.by_id.retain(|_, (size, d)| {
            let keep = *d != device;
            if !keep {
                gone += *size;
            }
            keep
        });
        a.used -= gone;
    }

    /// Bytes of device memory the client holds.
    pub fn memory_in_use(&self) -> u64 {
        self.memory.lock().used
    }

    /// Whether `live + new` objects fit beside the room granted to posted creations; logs the
    /// refusal.
    pub fn objects_fit(&self, cmd: &str, live: usize, new: usize) -> bool {
        let Some(max) = self.max_objects else {
            return true;
        };
        let credit = self.credit.load(Ordering::Acquire);
        if (live as u64)
            .saturating_add(new as u64)
            .saturating_add(credit)
            <= max
        {
            return true;
        }
        warn!(
            live,
            set_aside = credit,
            "{cmd} refused: VK_ERROR_OUT_OF_HOST_MEMORY, over the limit of {max} live objects \
             (AIRLOCK_MAX_OBJECTS)"
        );
        false
    }

    /// Sets aside room for up to `wanted` posted creations on host device `device` beside
    /// `live` objects: what is granted (`wire::private::CREDIT`).
    pub fn grant(&self, device: u64, live: usize, wanted: u64) -> u64 {
        let wanted = wanted.min(CREDIT_GRANT);
        let Some(max) = self.max_objects else {
            return wanted;
        };
        let mut by_device = self.credit_by_device.lock();
        let credit = self.credit.load(Ordering::Acquire);
        let room = max.saturating_sub(live as u64).saturating_sub(credit);
        // Half the room at most: the calls that cannot be posted keep the other half.
        let granted = wanted.min(room / 2);
        *by_device.entry(device).or_default() += granted;
        self.credit.fetch_add(granted, Ordering::AcqRel);
        granted
    }

    /// `wire::private::CREDIT`: the request is a device id and the number wanted, the reply
    /// the number granted beside `live` objects; `device` finds the host device of an id.
    pub fn credit_request(
        &self,
        live: usize,
        payload: &[u8],
        device: impl FnOnce(u64) -> Option<u64>,
    ) -> Result<u64, String> {
        let word = |k: usize| {
            payload
                .get(k * 8..k * 8 + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        let (Some(id), Some(wanted), 16) = (word(0), word(1), payload.len()) else {
            return Err(format!(
                "CREDIT: expected a device id and a count, got {} bytes",
                payload.len()
            ));
        };
        let host = device(id).ok_or_else(|| format!("CREDIT: no device {id}"))?;
        Ok(self.grant(host, live, wanted))
    }

    /// Spends room set aside for `n` posted creations; false when not that much was granted
    /// (the creation is then checked against the limit like any other).
    pub fn spend(&self, device: u64, n: usize) -> bool {
        if self.max_objects.is_none() {
            return true;
        }
        let mut by_device = self.credit_by_device.lock();
        match by_device.get_mut(&device) {
            Some(left) if *left >= n as u64 => {
                *left -= n as u64;
                self.credit.fetch_sub(n as u64, Ordering::AcqRel);
                true
            }
            _ => false,
        }
    }
}

/// Three quarters of the machine's memory: what lavapipe would hand out is the machine's
/// memory itself, which leaves nothing for anybody else once the client touches it.
fn default_device_memory() -> Option<u64> {
    physical_memory().ok().map(|total| total / 4 * 3)
}

/// The machine's memory in bytes.
pub fn physical_memory() -> Result<u64, String> {
    // SAFETY: sysinfo fills the struct it is given.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return Err(format!("sysinfo: {}", std::io::Error::last_os_error()));
    }
    // c_ulong: u64 here, u32 on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(info.totalram).saturating_mul(u64::from(info.mem_unit.max(1))))
}

/// A count or size: digits with an optional K, M, G or T suffix (powers of 1024), or
/// `unlimited`.
pub fn parse_size(v: &str) -> Result<Option<u64>, String> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let (digits, shift) = match v.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&v[..v.len() - 1], 10),
        Some(b'M') => (&v[..v.len() - 1], 20),
        Some(b'G') => (&v[..v.len() - 1], 30),
        Some(b'T') => (&v[..v.len() - 1], 40),
        _ => (v, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a number (with K, M, G or T) nor `unlimited`"))?;
    n.checked_mul(1 << shift)
        .map(Some)
        .ok_or_else(|| format!("{v:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_room_is_kept_from_calls_and_spent_by_posts() {
        let l = Limits::new(None, Some(100));
        // 10 live: 90 left, half of it granted.
        assert_eq!(l.grant(7, 10, 1000), 45);
        assert!(l.objects_fit("call", 10, 45));
        assert!(
            !l.objects_fit("call", 10, 46),
            "the grant is kept from calls"
        );
        assert!(!l.spend(8, 1), "another device's grant");
        assert!(l.spend(7, 40));
        assert!(!l.spend(7, 6), "only what was granted");
        assert!(l.spend(7, 5));
        assert!(!l.spend(7, 1));
        // 55 live now, nothing set aside: 45 left.
        assert!(l.objects_fit("call", 55, 45));
        assert_eq!(l.grant(7, 55, 3), 3);
        assert!(l.spend(7, 3));
        assert_eq!(l.grant(7, 58, 1000), 21);
        assert_eq!(l.grant(8, 58, 1000), 10, "half of what is left");
        assert_eq!(l.grant(7, 69, 1000), 0, "the room left is the calls'");
        assert!(l.objects_fit("call", 69, 0) && !l.objects_fit("call", 69, 1));
        // A destroyed device's grant goes with it.
        l.device_gone(7);
        assert!(l.objects_fit("call", 69, 21) && !l.objects_fit("call", 69, 22));
        assert!(!l.spend(7, 1));
        assert_eq!(
            l.credit_request(69, &[8u8; 15], |_| Some(8)),
            Err("CREDIT: expected a device id and a count, got 15 bytes".into())
        );
        let mut req = 5u64.to_le_bytes().to_vec();
        req.extend_from_slice(&4u64.to_le_bytes());
        assert!(
            l.credit_request(69, &req, |_| None).is_err(),
            "no such device"
        );
        assert_eq!(l.credit_request(69, &req, |id| Some(id + 3)), Ok(4));
        assert!(l.spend(8, 14), "10 and 4 for device 8");
        let unlimited = Limits::new(None, None);
        assert_eq!(unlimited.grant(1, 0, u64::MAX), CREDIT_GRANT);
        assert!(unlimited.spend(2, usize::MAX));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64M"), Ok(Some(64 << 20)));
        assert_eq!(parse_size("1000"), Ok(Some(1000)));
        assert_eq!(parse_size(" 2g "), Ok(Some(2 << 30)));
        assert_eq!(parse_size("unlimited"), Ok(None));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn memory_is_counted_until_freed_or_its_device_goes() {
        let l = Limits::new(Some(100), None);
        assert!(l.memory_fits(100));
        assert!(!l.memory_fits(101));
        assert!(!l.memory_fits(u64::MAX), "no overflow");
        l.allocated(1, 60, 7);
        assert!(!l.memory_fits(41));
        assert!(l.memory_fits(40));
        l.allocated(2, 40, 8);
        assert_eq!(l.memory_in_use(), 100);
        l.freed(1);
        l.freed(1);
        assert_eq!(l.memory_in_use(), 40);
        l.device_gone(8);
        assert_eq!(l.memory_in_use(), 0);
        assert!(l.memory_fits(100));
    }

    #[test]
    fn objects_are_capped() {
        let l = Limits::new(None, Some(10));
        assert!(l.objects_fit("vkCreateFence", 9, 1));
        assert!(!l.objects_fit("vkCreateFence", 10, 1));
        assert!(!l.objects_fit("vkAllocateCommandBuffers", 5, 6));
        assert!(Limits::new(None, None).objects_fit("x", usize::MAX, 1));
    }
}
