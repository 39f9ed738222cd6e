//! The landlock layer: a ruleset that handles every access right the kernel knows and grants
//! none, so no path can be opened, read, written, executed or created; where the kernel has
//! them (ABI 4 and 6), no TCP bind or connect, no abstract unix socket and no signal outside
//! the sandbox. Descriptors already open (the control socket, the memfds) keep working:
//! landlock checks paths when they are opened, not descriptors.
//!
//! Under `AIRLOCK_VALIDATE=1` the Vulkan loader reads the host driver's manifest and scans the
//! validation layer's manifest directory again at every `vkCreateInstance`: those stay
//! readable, nothing else (the libraries are already loaded for good, see `host.rs`).

use super::SandboxError;
use ::landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus,
    RestrictSelfAttr, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use std::path::Path;

fn unavailable(why: &str) -> SandboxError {
    SandboxError::Unavailable(why.into())
}

/// Every right of the newest ABI this crate knows; the kernel's subset is what gets enforced.
const NEWEST: ABI = ABI::V9;

/// Gives up the file system but for reading `readable` and for keeping a shader cache in
/// `writable` (reading, writing, making and removing files and directories there; nothing
/// executable, no links out).
pub fn restrict(readable: &[&Path], writable: Option<&Path>) -> Result<String, SandboxError> {
    let threads = threads();
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(NEWEST))
        .and_then(|r| r.handle_access(AccessNet::from_all(NEWEST)))
        .and_then(|r| r.scope(Scope::from_all(NEWEST)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(readable, AccessFs::from_read(NEWEST))))
        .and_then(|r| {
            let cache = AccessFs::ReadFile
                | AccessFs::ReadDir
                | AccessFs::WriteFile
                | AccessFs::Truncate
                | AccessFs::MakeReg
                | AccessFs::MakeDir
                | AccessFs::RemoveFile
                | AccessFs::RemoveDir;
            r.add_rules(path_beneath_rules(writable, cache))
        })
        // ABI 8: every thread at once. Older kernels confine the calling thread and the
        // threads it starts later; the server has no other thread at this point (checked
        // below).
        .and_then(|r| r.all_threads(true))
        .and_then(|r| r.restrict_self())
        .map_err(SandboxError::call("landlock"))?;
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi,
        LandlockStatus::NotEnabled => return Err(unavailable("not enabled in this kernel (lsm=)")),
        LandlockStatus::NotImplemented => return Err(unavailable("not built into this kernel")),
    };
    if threads > 1 && !status.all_threads {
        return Err(SandboxError::Unavailable(format!(
            "{threads} threads at lock-down and no ABI 8 to confine them all; only one is"
        )));
    }
    let what = match abi {
        _ if abi >= ABI::V6 => "no file system, no TCP, no signals or abstract sockets outside",
        _ if abi >= ABI::V4 => "no file system, no TCP",
        _ => "no file system",
    };
    let mut what = if readable.is_empty() {
        what.to_string()
    } else {
        let paths: Vec<String> = readable.iter().map(|p| p.display().to_string()).collect();
        format!("{what} (but for reading {})", paths.join(", "))
    };
    if let Some(w) = writable {
        what = format!("{what} (but for the shader cache in {})", w.display());
    }
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(format!("ABI {}: {what}", abi as i32)),
        // The kernel lacks some rights of NEWEST (e.g. ABI 9's unix socket resolution): it
        // enforces all those it has.
        RulesetStatus::PartiallyEnforced => Ok(format!(
            "ABI {}: {what} (every right this kernel has)",
            abi as i32
        )),
        RulesetStatus::NotEnforced => Err(SandboxError::Unavailable(format!(
            "ABI {}: not enforced",
            abi as i32
        ))),
    }
}

/// Threads of this process, from /proc/self/status (1 if unreadable: the caller then relies on
/// the ABI's own answer).
pub fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(1)
}
