//! Mesa's on-disk shader cache, one per application.
//!
//! The cache holds machine code that lavapipe loads and runs. One cache shared by every server
//! would let a compromised server plant code that another application's server then runs, so
//! each application gets a directory of its own, named by a SHA-256 of its executable's path,
//! which the server learns from the kernel (the peer credentials of its control socket, then
//! `/proc/<pid>/exe`), not from anything the client says. Landlock grants the server that one
//! directory (`filesystem.rs`), and seccomp lets it open files only when landlock confines them
//! (`policy.rs`). A compromised server can poison its own application's cache, nothing else.
//!
//! `AIRLOCK_SHADER_CACHE=off` (or Mesa's `MESA_SHADER_CACHE_DISABLE=true`) turns it off;
//! `AIRLOCK_SHADER_CACHE_DIR` moves the directories' parent from `$XDG_CACHE_HOME/airlock` (or
//! `~/.cache/airlock`).

use sha2::{Digest, Sha256};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// An application's cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub dir: PathBuf,
    pub exe: PathBuf,
}

/// The executable of the process at the other end of `control`, or this process's own when
/// there is no client (the self-test).
fn client_exe(control: Option<BorrowedFd<'_>>) -> Result<PathBuf, String> {
    let Some(fd) = control else {
        return std::env::current_exe().map_err(|e| format!("own executable: {e}"));
    };
    let cred = rustix::net::sockopt::socket_peercred(fd)
        .map_err(|e| format!("the client's credentials: {e}"))?;
    let pid = cred.pid.as_raw_nonzero();
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(|e| format!("the client's executable (pid {pid}): {e}"))
}

/// Where the applications' directories go.
fn base() -> Result<PathBuf, String> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("AIRLOCK_SHADER_CACHE_DIR") {
        return Ok(d);
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return Ok(d.join("airlock"));
    }
    var("HOME")
        .map(|h| h.join(".cache/airlock"))
        .ok_or_else(|| "neither XDG_CACHE_HOME nor HOME is set".into())
}

/// The directory of the application at the other end of `control`, made (mode 0700) if need
/// be; `Err` says why there is none.
pub fn prepare(control: Option<BorrowedFd<'_>>) -> Result<Cache, String> {
    if std::env::var("AIRLOCK_SHADER_CACHE").is_ok_and(|v| v == "off" || v == "0") {
        return Err("AIRLOCK_SHADER_CACHE=off".into());
    }
    // Mesa's own switch, as a program run natively would have it (the benchmarks set it on
    // both sides).
    if let Ok(v) = std::env::var("MESA_SHADER_CACHE_DISABLE") {
        if matches!(v.as_str(), "true" | "1" | "yes") {
            return Err(format!("MESA_SHADER_CACHE_DISABLE={v}"));
        }
    }
    let exe = client_exe(control)?;
    let dir = base()?.join(key(&exe));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    // For whoever looks at the directory: which program it belongs to.
    let _ = std::fs::write(dir.join("application"), format!("{}\n", exe.display()));
    Ok(Cache { dir, exe })
}

/// An application's directory name: the first 32 hex digits of the SHA-256 of its
/// executable's path.
fn key(exe: &Path) -> String {
    let digest = Sha256::digest(exe.as_os_str().as_encoded_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_executable_has_its_own_directory() {
        let a = key(Path::new("/usr/bin/vkcube"));
        assert_eq!(a, key(Path::new("/usr/bin/vkcube")));
        assert_ne!(a, key(Path::new("/usr/bin/vkcube2")));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
