//! The seccomp-bpf layer: [`super::policy::POLICY`] compiled with `seccompiler` and installed
//! on every thread of the process.
//!
//! `seccompiler` gives a filter one action on a match and one otherwise, so the policy becomes
//! several filters, which the kernel runs all of, taking the strictest answer:
//!
//! - the allow-list: every call of the policy (allowed or refused with an errno) passes, any
//!   other call traps (`SECCOMP_RET_TRAP`);
//! - one filter per errno of the policy's refusal groups: those calls get that errno, anything
//!   else passes.
//!
//! The trap raises SIGSYS in the calling thread; [`on_sigsys`] writes the call's number to
//! stderr and makes the call return `EPERM`. The server then logs and goes on (the client sees
//! a Vulkan error) instead of dying with no word of what it tried; a sandbox that killed the
//! process would protect no more, since the call is refused either way.

use super::SandboxError;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// What the filter answers when a [`Group`]'s call matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    /// Fails the call with this errno, silently.
    Refuse(i32),
}

/// System calls with one reason to be allowed or refused.
#[derive(Clone)]
pub struct Group {
    pub why: &'static str,
    pub action: Action,
    pub calls: &'static [Call],
}

#[derive(Clone, Copy)]
pub struct Call {
    /// `SYS_name`, as libc spells it.
    pub ident: &'static str,
    pub nr: i64,
    /// Alternatives, each a set of conditions that must all hold; [`ALWAYS`] if none.
    pub when: &'static [&'static [Cond]],
}

impl Call {
    pub fn name(&self) -> &'static str {
        self.ident.trim_start_matches("SYS_")
    }
}

pub const ALWAYS: &[&[Cond]] = &[];

/// A check of one argument, compared as 32 bits (the kernel's `int` arguments: descriptors,
/// pids, flags) or 64.
#[derive(Clone, Copy, Debug)]
pub struct Cond {
    pub arg: u8,
    pub wide: bool,
    pub op: Op,
    pub value: Value,
}

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Eq,
    /// `arg & mask == value & mask`.
    MaskedEq(u64),
}

/// Values known only when the filter is built.
#[derive(Clone, Copy, Debug)]
pub enum Value {
    Const(u64),
    /// This process's id.
    OwnPid,
    /// The descriptor of the client's control socket.
    ControlSocket,
}

impl Cond {
    pub const fn equals(arg: u8, v: u64) -> Cond {
        Cond {
            arg,
            wide: true,
            op: Op::Eq,
            value: Value::Const(v),
        }
    }
    /// Every bit of `bits` set.
    pub const fn bits_set(arg: u8, bits: u64) -> Cond {
        Cond {
            arg,
            wide: true,
            op: Op::MaskedEq(bits),
            value: Value::Const(bits),
        }
    }
    /// No bit of `bits` set.
    pub const fn bits_clear(arg: u8, bits: u64) -> Cond {
        Cond {
            arg,
            wide: true,
            op: Op::MaskedEq(bits),
            value: Value::Const(0),
        }
    }
    pub const fn is_own_pid(arg: u8) -> Cond {
        Cond {
            arg,
            wide: false,
            op: Op::Eq,
            value: Value::OwnPid,
        }
    }
    pub const fn is_control_socket(arg: u8) -> Cond {
        Cond {
            arg,
            wide: false,
            op: Op::Eq,
            value: Value::ControlSocket,
        }
    }
}

/// Installs the policy on every thread (`SECCOMP_FILTER_FLAG_TSYNC`). `no_new_privs` must be
/// set already. Returns a description for the log.
pub fn install(policy: &[Group], control: BorrowedFd<'_>) -> Result<String, SandboxError> {
    let programs = compile(policy, control)?;
    install_sigsys_handler()?;
    // The errno filters first: a failure part way leaves refusals without the allow-list, never
    // the allow-list without its refusals (which would trap calls meant to fail quietly).
    for p in programs.iter().rev() {
        seccompiler::apply_filter_all_threads(p)
            .map_err(SandboxError::call("installing the filter"))?;
    }
    let allowed = policy
        .iter()
        .filter(|g| g.action == Action::Allow)
        .flat_map(|g| g.calls)
        .count();
    let refused = policy
        .iter()
        .filter(|g| g.action != Action::Allow)
        .flat_map(|g| g.calls)
        .count();
    Ok(format!(
        "{allowed} system call rules allowed, {refused} refused quietly, any other refused with \
         EPERM and logged"
    ))
}

/// The policy as text: each group's reason, action and calls with their conditions.
pub fn describe(policy: &[Group]) -> String {
    let mut out = String::new();
    for g in policy {
        let action = match g.action {
            Action::Allow => "allow".to_string(),
            Action::Refuse(e) => format!("refuse with errno {e}"),
        };
        out += &format!("# {}\n{action}:\n", g.why);
        for c in g.calls {
            let when: Vec<String> = c
                .when
                .iter()
                .map(|alt| {
                    alt.iter()
                        .map(|k| {
                            let v = match k.value {
                                Value::Const(v) => format!("{v:#x}"),
                                Value::OwnPid => "own pid".into(),
                                Value::ControlSocket => "control socket".into(),
                            };
                            match k.op {
                                Op::Eq => format!("arg{} == {v}", k.arg),
                                Op::MaskedEq(m) => format!("arg{} & {m:#x} == {v}", k.arg),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" && ")
                })
                .collect();
            if when.is_empty() {
                out += &format!("  {}\n", c.name());
            } else {
                out += &format!("  {} if {}\n", c.name(), when.join(" || "));
            }
        }
    }
    out += "# anything else: trapped, logged, refused with EPERM\n";
    out
}

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;

/// The BPF programs: the allow-list first, then one per errno.
fn compile(policy: &[Group], control: BorrowedFd<'_>) -> Result<Vec<BpfProgram>, SandboxError> {
    let pid = std::process::id() as u64;
    let sock = control.as_raw_fd() as u64;
    let rules_of = |calls: &mut dyn Iterator<Item = &Call>| {
        let mut map: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
        for c in calls {
            let entry = map.entry(c.nr).or_insert_with(|| Some(Vec::new()));
            if c.when.is_empty() {
                // Unconditional wins over any condition on the same call.
                *entry = None;
                continue;
            }
            if let Some(rules) = entry {
                for alt in c.when {
                    let conds = alt
                        .iter()
                        .map(|k| condition(k, pid, sock))
                        .collect::<Result<Vec<_>, _>>()?;
                    rules.push(SeccompRule::new(conds).map_err(|e| SandboxError::Call {
                        call: "a seccomp rule",
                        err: format!("{}: {e}", c.name()),
                    })?);
                }
            }
        }
        // seccompiler: an empty rule list matches the call whatever its arguments.
        Ok::<_, SandboxError>(
            map.into_iter()
                .map(|(nr, r)| (nr, r.unwrap_or_default()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    let build = |rules, mismatch, matched| {
        let filter = SeccompFilter::new(rules, mismatch, matched, ARCH)
            .map_err(SandboxError::call("building the filter"))?;
        BpfProgram::try_from(filter).map_err(SandboxError::call("compiling the filter"))
    };
    let mut programs = vec![build(
        rules_of(&mut policy.iter().flat_map(|g| g.calls))?,
        SeccompAction::Trap,
        SeccompAction::Allow,
    )?];
    let mut errnos: Vec<i32> = policy
        .iter()
        .filter_map(|g| match g.action {
            Action::Refuse(e) => Some(e),
            Action::Allow => None,
        })
        .collect();
    errnos.sort_unstable();
    errnos.dedup();
    for e in errnos {
        let mut calls = policy
            .iter()
            .filter(|g| g.action == Action::Refuse(e))
            .flat_map(|g| g.calls);
        programs.push(build(
            rules_of(&mut calls)?,
            SeccompAction::Allow,
            SeccompAction::Errno(e as u32),
        )?);
    }
    Ok(programs)
}

fn condition(c: &Cond, pid: u64, sock: u64) -> Result<SeccompCondition, SandboxError> {
    let value = match c.value {
        Value::Const(v) => v,
        Value::OwnPid => pid,
        Value::ControlSocket => sock,
    };
    let len = if c.wide {
        SeccompCmpArgLen::Qword
    } else {
        SeccompCmpArgLen::Dword
    };
    let op = match c.op {
        Op::Eq => SeccompCmpOp::Eq,
        Op::MaskedEq(m) => SeccompCmpOp::MaskedEq(m),
    };
    SeccompCondition::new(c.arg, len, op, value).map_err(|e| SandboxError::Call {
        call: "a seccomp condition",
        err: format!("{c:?}: {e}"),
    })
}

/// Trapped calls so far (all threads).
static TRAPPED: AtomicU32 = AtomicU32::new(0);
/// Trapped calls logged one by one; after that one line says the rest are not.
const LOGGED: u32 = 64;

/// How many calls the filter has trapped (and refused with `EPERM`) in this process.
pub fn trapped() -> u32 {
    TRAPPED.load(Ordering::Relaxed)
}

fn install_sigsys_handler() -> Result<(), SandboxError> {
    // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe (below).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(SandboxError::call("sigaction(SIGSYS)")(
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// SIGSYS from `SECCOMP_RET_TRAP`: log the call's number and make it return `-EPERM`.
/// Async-signal-safe: atomics, a stack buffer and write(2) only; errno is preserved.
extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler; for
    // SIGSYS, siginfo's union holds `{ void *call_addr; int syscall; unsigned arch; }`.
    unsafe {
        let saved_errno = *libc::__errno_location();
        let nr = *((info as *const u8).add(SI_SYSCALL_OFFSET) as *const i32);
        let n = TRAPPED.fetch_add(1, Ordering::Relaxed);
        if n < LOGGED {
            let mut buf = [0u8; 128];
            let mut len = 0;
            let name = NAMES
                .iter()
                .find(|(k, _)| *k == i64::from(nr))
                .map_or(&[][..], |(_, n)| n.as_bytes());
            for part in [
                b"airlock-server: sandbox refused system call ".as_slice(),
                decimal(i64::from(nr), &mut [0u8; 20]),
                if name.is_empty() { b"" } else { b" (" },
                name,
                if name.is_empty() { b"" } else { b")" },
                b" with EPERM\n",
            ] {
                buf[len..len + part.len()].copy_from_slice(part);
                len += part.len();
            }
            libc::write(2, buf.as_ptr().cast(), len);
        } else if n == LOGGED {
            let msg = b"airlock-server: sandbox refused more system calls; not logging them\n";
            libc::write(2, msg.as_ptr().cast(), msg.len());
        }
        set_return(ctx, -(libc::EPERM as i64));
        *libc::__errno_location() = saved_errno;
    }
}

/// Names of the calls most likely to be refused, for the log line (others show as a number:
/// `ausyscall NUMBER`, or /usr/include/x86_64-linux-gnu/asm/unistd_64.h, names it).
const NAMES: &[(i64, &str)] = &[
    (libc::SYS_socket, "socket"),
    (libc::SYS_socketpair, "socketpair"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_bind, "bind"),
    (libc::SYS_listen, "listen"),
    (libc::SYS_accept4, "accept4"),
    (libc::SYS_sendto, "sendto"),
    (libc::SYS_recvfrom, "recvfrom"),
    (libc::SYS_sendmsg, "sendmsg"),
    (libc::SYS_recvmsg, "recvmsg"),
    (libc::SYS_execve, "execve"),
    (libc::SYS_execveat, "execveat"),
    (libc::SYS_clone, "clone"),
    (libc::SYS_fork, "fork"),
    (libc::SYS_vfork, "vfork"),
    (libc::SYS_kill, "kill"),
    (libc::SYS_tgkill, "tgkill"),
    (libc::SYS_ptrace, "ptrace"),
    (libc::SYS_mmap, "mmap"),
    (libc::SYS_mprotect, "mprotect"),
    (libc::SYS_prctl, "prctl"),
    (libc::SYS_fcntl, "fcntl"),
    (libc::SYS_uname, "uname"),
    (libc::SYS_prlimit64, "prlimit64"),
    (libc::SYS_getppid, "getppid"),
    (libc::SYS_wait4, "wait4"),
    (libc::SYS_unshare, "unshare"),
    (libc::SYS_setns, "setns"),
    (libc::SYS_mount, "mount"),
    (libc::SYS_dup, "dup"),
    (libc::SYS_dup3, "dup3"),
    (libc::SYS_pread64, "pread64"),
    (libc::SYS_pwrite64, "pwrite64"),
    (libc::SYS_membarrier, "membarrier"),
    (libc::SYS_sched_setaffinity, "sched_setaffinity"),
    (libc::SYS_eventfd2, "eventfd2"),
];

/// Offset of `si_syscall` in `siginfo_t` on 64-bit Linux: three ints and padding, then the
/// union, whose SIGSYS member starts with an 8-byte address.
const SI_SYSCALL_OFFSET: usize = 16 + 8;

#[cfg(target_arch = "x86_64")]
unsafe fn set_return(ctx: *mut libc::c_void, value: i64) {
    let uc = ctx as *mut libc::ucontext_t;
    (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = value;
}

/// `v` in decimal, in `buf`.
fn decimal(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_formats_numbers() {
        assert_eq!(decimal(0, &mut [0; 20]), b"0");
        assert_eq!(decimal(41, &mut [0; 20]), b"41");
        assert_eq!(decimal(-1, &mut [0; 20]), b"-1");
        assert_eq!(
            decimal(i64::MIN, &mut [0; 20]).len(),
            "-9223372036854775808".len()
        );
    }

    #[test]
    fn the_policy_compiles() {
        let (a, _b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        use std::os::fd::AsFd;
        let programs = compile(super::super::policy::POLICY, a.as_fd()).unwrap();
        // The allow-list and one filter per errno (EACCES, ENOSYS, ENOTTY).
        assert_eq!(programs.len(), 4);
        assert!(programs.iter().all(|p| !p.is_empty() && p.len() < 4096));
    }

    #[test]
    fn no_call_is_both_allowed_unconditionally_and_refused() {
        use super::super::policy::POLICY;
        for g in POLICY.iter().filter(|g| g.action == Action::Allow) {
            for c in g.calls.iter().filter(|c| c.when.is_empty()) {
                let refused = POLICY
                    .iter()
                    .filter(|g| g.action != Action::Allow)
                    .flat_map(|g| g.calls)
                    .any(|r| r.nr == c.nr);
                assert!(!refused, "{} is both allowed and refused", c.name());
            }
        }
    }
}
