//! `airlock-server --sandbox-selftest [--skip LAYER]...`: the server's own sandbox set-up
//! (the same [`super::early`] and lock-down as a served client gets, on a socket pair standing
//! in for the client's), then things the sandbox must refuse, then a compute job on the host
//! driver that must still work. Prints `key=value` lines: each layer's outcome, `compute=`,
//! one line per attempt (`refused (ERRNO)` or `allowed`), and last `result=pass` or
//! `result=fail`; exits 0 on pass. An attempt fails the test when a layer that should refuse it
//! was applied and it was allowed anyway.
//!
//! The `execve` attempt comes last and runs `/bin/false`: if the sandbox let it through, the
//! process becomes that program, prints no result and exits 1.
//!
//! `--skip seccomp` (or another layer's name) leaves that layer out, to see what the others
//! refuse on their own.

use super::{lock_down, probe, Outcome};
use crate::host::HostDriver;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::process::ExitCode;

/// What happened to one attempt.
enum Attempt {
    Allowed,
    Refused(i32),
    /// Not made (what it needs was refused before).
    NotTried(&'static str),
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Allowed => write!(f, "allowed"),
            Attempt::Refused(e) => write!(f, "refused ({})", errno_name(*e)),
            Attempt::NotTried(why) => write!(f, "not tried ({why})"),
        }
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::ENETUNREACH => "ENETUNREACH".into(),
        libc::EAFNOSUPPORT => "EAFNOSUPPORT".into(),
        libc::ENOMEM => "ENOMEM".into(),
        libc::ENOTTY => "ENOTTY".into(),
        e => format!("errno {e}"),
    }
}

pub fn run(args: &[String]) -> ExitCode {
    let skip: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--skip")
        .map(|w| w[1].clone())
        .collect();
    let mode = match super::early(None) {
        Ok(m) => m,
        Err(e) => {
            println!("error={e}");
            return ExitCode::from(2);
        }
    };
    println!("mode={}", mode.name());
    let host = match HostDriver::load_default() {
        Ok(h) => h,
        Err(e) => {
            println!("error={e}");
            return ExitCode::from(2);
        }
    };
    // The client's control socket: the server may send and receive on it, and on nothing else.
    let (control, other) = match rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    ) {
        Ok(p) => p,
        Err(e) => {
            println!("error=socketpair: {e}");
            return ExitCode::from(2);
        }
    };
    let parent = std::os::unix::process::parent_id() as libc::pid_t;
    let report = match lock_down(&host, control.as_fd(), &skip) {
        Ok(r) => r,
        Err(e) => {
            println!("refused={e}");
            println!("result=fail");
            return ExitCode::FAILURE;
        }
    };
    for l in &report.layers {
        match &l.outcome {
            Outcome::Applied(d) => println!("layer.{}=applied: {d}", l.name),
            Outcome::Failed(e) => println!("layer.{}=failed: {e}", l.name),
            Outcome::Skipped => println!("layer.{}=skipped", l.name),
        }
    }
    for n in &report.notes {
        println!("note={n}");
    }
    let applied = |name: &str| report.layer(name).is_some_and(|l| l.applied());
    let mut pass = true;

    match probe::run(&host, probe::Stage::Dispatch) {
        Ok(t) => println!("compute=ok ({} ms)", t.as_millis()),
        Err(e) => {
            println!("compute=failed: {e}");
            pass = false;
        }
    }

    // What the server needs after lock-down: its control socket.
    let needed = send_on(control.as_fd());
    println!("sendmsg_control_socket={needed}");
    pass &= matches!(needed, Attempt::Allowed);

    let socket = try_socket();
    let connect = match &socket {
        Ok(fd) => try_connect(fd.as_fd()),
        Err(_) => Attempt::NotTried("no socket"),
    };
    let attempts: [(&str, Attempt, &[&str]); 7] = [
        ("open", try_open(c"/etc/passwd"), &["seccomp", "landlock"]),
        (
            "socket",
            match socket {
                Ok(_) => Attempt::Allowed,
                Err(e) => Attempt::Refused(e),
            },
            &["seccomp"],
        ),
        ("connect_tcp", connect, &["landlock", "namespaces"]),
        ("sendmsg_other_socket", send_on(other.as_fd()), &["seccomp"]),
        ("fork", try_fork(), &["seccomp"]),
        ("mmap_write_exec", try_wx_mapping(), &["seccomp"]),
        ("signal_parent", try_signal(parent), &["seccomp"]),
    ];
    for (name, attempt, refusers) in &attempts {
        println!("{name}={attempt}");
        if matches!(attempt, Attempt::Allowed) && refusers.iter().any(|l| applied(l)) {
            pass = false;
        }
    }
    // The shader cache: its own directory writable, another application's not.
    if let Some(dir) = super::cache_dir() {
        let other = dir.with_file_name("selftest-another-application");
        let own = try_create(&dir.join("selftest-file"));
        let theirs = try_create(&other);
        println!("cache_write={own}");
        println!("cache_write_other_application={theirs}");
        pass &= matches!(own, Attempt::Allowed);
        if applied("landlock") {
            pass &= !matches!(theirs, Attempt::Allowed);
        }
    }
    println!("trapped={}", super::trapped());

    let exec = try_exec(c"/bin/false");
    println!("execve={exec}");
    if applied("seccomp") || applied("landlock") {
        pass &= !matches!(exec, Attempt::Allowed);
    }
    println!("result={}", if pass { "pass" } else { "fail" });
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Creates (then removes) a file at `path`.
fn try_create(path: &std::path::Path) -> Attempt {
    match std::fs::write(path, b"selftest") {
        Ok(()) => {
            let _ = std::fs::remove_file(path);
            Attempt::Allowed
        }
        Err(e) => Attempt::Refused(e.raw_os_error().unwrap_or(0)),
    }
}

fn try_open(path: &CStr) -> Attempt {
    // SAFETY: a valid path; the descriptor, if any, is closed at once.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        unsafe { libc::close(fd) };
        Attempt::Allowed
    } else {
        Attempt::Refused(last_errno())
    }
}

fn try_socket() -> Result<std::os::fd::OwnedFd, i32> {
    // SAFETY: plain integer arguments; the descriptor is owned by the result.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd >= 0 {
        Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
    } else {
        Err(last_errno())
    }
}

/// A TCP connection to 127.0.0.1 port 1, where nothing listens: "connection refused" means
/// the attempt reached the host's loopback, which counts as allowed.
fn try_connect(sock: BorrowedFd<'_>) -> Attempt {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 1u16.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr_in and its size.
    let r = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    match (r, last_errno()) {
        (0, _) | (_, libc::ECONNREFUSED) => Attempt::Allowed,
        (_, e) => Attempt::Refused(e),
    }
}

/// One byte with sendmsg(2), as the server sends its replies and memfds.
fn send_on(sock: BorrowedFd<'_>) -> Attempt {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: a zeroed msghdr is valid; it points at one live iovec.
    let r = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        libc::sendmsg(
            sock.as_raw_fd(),
            &msg,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if r >= 0 {
        Attempt::Allowed
    } else {
        Attempt::Refused(last_errno())
    }
}

fn try_fork() -> Attempt {
    // SAFETY: the child only calls _exit.
    match unsafe { libc::fork() } {
        0 => unsafe { libc::_exit(0) },
        -1 => Attempt::Refused(last_errno()),
        pid => {
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            Attempt::Allowed
        }
    }
}

fn try_wx_mapping() -> Attempt {
    // SAFETY: a fresh anonymous mapping, unmapped at once.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            Attempt::Refused(last_errno())
        } else {
            libc::munmap(p, 4096);
            Attempt::Allowed
        }
    }
}

/// Signal 0 (a permission check, nothing delivered) to `pid`, the process that started us.
fn try_signal(pid: libc::pid_t) -> Attempt {
    // SAFETY: signal 0 has no effect on the target.
    if unsafe { libc::kill(pid, 0) } == 0 {
        Attempt::Allowed
    } else {
        Attempt::Refused(last_errno())
    }
}

fn try_exec(path: &CStr) -> Attempt {
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    // SAFETY: NULL-terminated argument and environment arrays of valid strings.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Attempt::Refused(last_errno())
}
