//! Resource limits: descriptors, address space, core dumps.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Open files when the hard limit is unlimited (the kernel's default `fs.nr_open`).
const NOFILE_IF_UNLIMITED: u64 = 1 << 20;
/// The smallest default address-space limit, for machines with little memory: lavapipe with
/// LLVM, the rings and a few worker stacks take about 1 GiB of address space before any
/// allocation of the client's.
const MIN_DEFAULT_AS: u64 = 16 << 30;

/// Applies the limits; the description for the log, or why it could not.
pub fn apply() -> Result<String, String> {
    // Open files: as many as allowed. The server holds one memfd per host-visible allocation,
    // so a low limit would turn into allocation failures, not safety.
    let nofile = getrlimit(Resource::Nofile);
    let hard = nofile.maximum.unwrap_or(NOFILE_IF_UNLIMITED);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    )
    .map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;

    // No core dumps: they would write the client's data (its buffers are mapped here) to disk.
    // Not dumpable also keeps other processes of the user from attaching to the server.
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| format!("RLIMIT_CORE: {e}"))?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;

    // Address space: bounded, so a client cannot make the server take the machine's memory.
    let limit = address_space_limit()?;
    let detail = match limit {
        Some(bytes) => {
            setrlimit(
                Resource::As,
                Rlimit {
                    current: Some(bytes),
                    maximum: Some(bytes),
                },
            )
            .map_err(|e| format!("RLIMIT_AS: {e}"))?;
            format!("address space {}", human(bytes))
        }
        None => "address space unlimited (AIRLOCK_MAX_MEMORY=unlimited)".into(),
    };
    Ok(format!("open files {hard}, core dumps off, {detail}"))
}

/// `AIRLOCK_MAX_MEMORY` (bytes, or with a K, M, G or T suffix, or `unlimited`), else twice the
/// machine's memory and at least [`MIN_DEFAULT_AS`]: what lavapipe advertises as its heap is
/// the machine's memory, and the CTS allocates that much.
pub fn address_space_limit() -> Result<Option<u64>, String> {
    match std::env::var("AIRLOCK_MAX_MEMORY") {
        Ok(v) if !v.is_empty() => parse_size(&v).map_err(|e| format!("AIRLOCK_MAX_MEMORY: {e}")),
        _ => {
            // SAFETY: sysinfo fills the struct it is given.
            let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
            if unsafe { libc::sysinfo(&mut info) } != 0 {
                return Err(format!("sysinfo: {}", std::io::Error::last_os_error()));
            }
            // c_ulong: u64 here, u32 on 32-bit targets.
            #[allow(clippy::useless_conversion)]
            let total = u64::from(info.totalram).saturating_mul(u64::from(info.mem_unit.max(1)));
            Ok(Some(total.saturating_mul(2).max(MIN_DEFAULT_AS)))
        }
    }
}

fn parse_size(v: &str) -> Result<Option<u64>, String> {
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
        .map_err(|_| format!("{v:?} is not a size (bytes, or a number with K, M, G or T)"))?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{v:?} is too large"))?;
    if bytes < 1 << 30 {
        return Err(format!(
            "{v:?} is below 1G, less than the host driver needs to start"
        ));
    }
    Ok(Some(bytes))
}

fn human(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("8G"), Ok(Some(8 << 30)));
        assert_eq!(parse_size("4096m"), Ok(Some(4 << 30)));
        assert_eq!(parse_size("2147483648"), Ok(Some(2 << 30)));
        assert_eq!(parse_size("unlimited"), Ok(None));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("10M").is_err(), "too small to run the driver");
        assert!(parse_size("99999999999T").is_err());
    }
}
