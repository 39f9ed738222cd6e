//! Namespaces, entered at the start of `main` while the process has one thread (the kernel
//! refuses a new user namespace to a multithreaded process).
//!
//! - user: the server's capabilities, if any, now count only inside namespaces it owns, which
//!   hold nothing; its own uid and gid are mapped to themselves, so files and logs look the same.
//! - network: an empty one (a loopback interface that is down): no route anywhere, even if a
//!   socket could be made.
//! - IPC: no SysV IPC objects or POSIX message queues of other processes.
//! - mount, UTS, cgroup: the server's own copies of the mount table, host name and cgroup root,
//!   so nothing done to them could reach the host (seccomp refuses those calls anyway).
//! - PID: not entered. `unshare(CLONE_NEWPID)` moves only future children into the new
//!   namespace, and the kernel then refuses `CLONE_THREAD` to the caller, so the server could
//!   start no threads; the seccomp policy refuses new processes and signals to others anyway.

use super::SandboxError;
use std::io;

/// Enters the namespaces; which ones, or why none could be.
pub fn enter() -> Result<String, SandboxError> {
    let (uid, gid) = (rustix::process::getuid(), rustix::process::getgid());
    let others = libc::CLONE_NEWNS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    const OTHERS: &str = "mount, network, IPC, UTS, cgroup";
    match unshare(libc::CLONE_NEWUSER | others) {
        Ok(()) => {
            let mapped = map_ids(uid.as_raw(), gid.as_raw());
            Ok(match mapped {
                Ok(()) => format!("user, {OTHERS}"),
                Err(e) => format!("user (ids not mapped: {e}), {OTHERS}"),
            })
        }
        // No unprivileged user namespaces here (sysctl, AppArmor, a container's seccomp). A
        // privileged server can still leave the host's network and the rest.
        Err(user_err) => match unshare(others) {
            Ok(()) => Ok(format!("{OTHERS} (no user namespace: {user_err})")),
            Err(_) => Err(SandboxError::Call {
                call: "unshare",
                err: format!("{user_err} (unprivileged user namespaces are disabled here?)"),
            }),
        },
    }
}

fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare changes only this process's namespaces.
    if unsafe { libc::unshare(flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Maps our uid and gid to themselves in the new user namespace (`setgroups` must be denied
/// before an unprivileged process may write a gid map).
fn map_ids(uid: u32, gid: u32) -> io::Result<()> {
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}
