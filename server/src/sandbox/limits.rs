//! Resource limits: descriptors, address space, core dumps.

use super::SandboxError;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Open files when the hard limit is unlimited (the kernel's default `fs.nr_open`).
const NOFILE_IF_UNLIMITED: u64 = 1 << 20;
/// The smallest default address-space limit, for machines with little memory: lavapipe with
/// LLVM, the rings and a few worker stacks take about 1 GiB of address space before any
/// allocation of the client's.
const MIN_DEFAULT_AS: u64 = 16 << 30;

/// Applies the limits; the description for the log, or why it could not.
pub fn apply() -> Result<String, SandboxError> {
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
    .map_err(SandboxError::call("RLIMIT_NOFILE"))?;

    // No core dumps: they would write the client's data (its buffers are mapped here) to disk.
    // Not dumpable also keeps other processes of the user from attaching to the server.
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(SandboxError::call("RLIMIT_CORE"))?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(SandboxError::call("PR_SET_DUMPABLE"))?;

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
            .map_err(SandboxError::call("RLIMIT_AS"))?;
            format!("address space {}", human(bytes))
        }
        None => "address space unlimited (AIRLOCK_MAX_MEMORY=unlimited)".into(),
    };
    Ok(format!("open files {hard}, core dumps off, {detail}"))
}

/// `AIRLOCK_MAX_MEMORY` (bytes, or with a K, M, G or T suffix, or `unlimited`), else twice the
/// machine's memory and at least [`MIN_DEFAULT_AS`]: what lavapipe advertises as its heap is
/// the machine's memory, and the CTS allocates that much.
pub fn address_space_limit() -> Result<Option<u64>, SandboxError> {
    match std::env::var("AIRLOCK_MAX_MEMORY") {
        Ok(v) if !v.is_empty() => parse_size(&v),
        _ => Ok(Some(
            crate::limits::physical_memory()
                .map_err(SandboxError::Unavailable)?
                .saturating_mul(2)
                .max(MIN_DEFAULT_AS),
        )),
    }
}

/// A size for the address-space limit: [`crate::limits::parse_size`], at least 1 GiB.
fn parse_size(v: &str) -> Result<Option<u64>, SandboxError> {
    let setting = |why| SandboxError::Setting {
        var: "AIRLOCK_MAX_MEMORY",
        why,
    };
    let Some(bytes) = crate::limits::parse_size(v).map_err(setting)? else {
        return Ok(None);
    };
    if bytes < 1 << 30 {
        return Err(setting(format!(
            "{v:?} is below 1G, less than the host driver needs to start"
        )));
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
