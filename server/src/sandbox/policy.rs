//! The seccomp policy of `airlock-server`: every system call it may make once locked down.
//!
//! This file is data. [`super::seccomp`] compiles it into BPF with `seccompiler`; nothing else
//! decides what the server may call. A change here is a change to the sandbox: review it as one,
//! and say in the group's `why` what needs the call.
//!
//! How the list was derived: the device tests (`cargo test -p workloads --test device`) and
//! `--sandbox-selftest` were run with the server under `strace -f` and Mesa's shader cache off,
//! and every call made after lock-down was recorded; each one is here, with the narrowest
//! argument checks that still let lavapipe, LLVM's JIT, glibc and Rust's std work. About 1,200
//! CTS cases (api, memory, compute, draw, pipeline, synchronization, query groups) then ran
//! through the sandboxed server with no call trapped. A call that
//! is not listed is not fatal: the filter traps it, the server logs `sandbox refused system
//! call N` on stderr and the call fails with `EPERM` (see [`super::seccomp`]), so an omission
//! shows up as a log line and a Vulkan error rather than a dead server.
//!
//! Refused on purpose, among others (they fall to that default, and are logged when tried):
//! `socket`, `socketpair`, `connect`, `bind`, `listen`, `accept4`, `sendto` (no new sockets or
//! connections; only `sendmsg`/`recvmsg` on the client's control socket), `execve`,
//! `execveat`, `fork`, `vfork` and `clone` without `CLONE_THREAD` (no new programs or
//! processes), `kill`, `tgkill` to another process, `ptrace`, `process_vm_writev`
//! (no touching other processes), `mount`, `unshare`, `setns`, `pivot_root`, `chroot`
//! (no changing the sandbox), `bpf`, `perf_event_open`, `io_uring_setup`, `userfaultfd`,
//! `keyctl`, `add_key` (kernel attack surface the server never needs); and, answered quietly
//! below, any path, `ioctl`, and any mapping that is writable and executable at once.

use super::seccomp::{Action, Call, Cond, Group, ALWAYS};
use libc::{EACCES, ENOSYS, ENOTTY, EPERM};

/// `call!(SYS_name)`: always; `call!(SYS_name, WHEN)`: when one of the alternatives holds.
macro_rules! call {
    ($sys:ident) => {
        Call {
            ident: stringify!($sys),
            nr: libc::$sys,
            when: ALWAYS,
        }
    };
    ($sys:ident, $when:expr) => {
        Call {
            ident: stringify!($sys),
            nr: libc::$sys,
            when: $when,
        }
    };
}

/// W^X: `prot` (argument 2) not both writable and executable. LLVM's JIT maps code RW, writes
/// it, then makes it RX with `mprotect`; nothing in the server needs RWX.
const NOT_WRITE_AND_EXEC: &[&[Cond]] = &[
    &[Cond::bits_clear(2, libc::PROT_EXEC as u64)],
    &[Cond::bits_clear(2, libc::PROT_WRITE as u64)],
];

/// A new thread of this process (`CLONE_VM | CLONE_THREAD`), never a new process.
const THREAD_ONLY: &[&[Cond]] = &[&[Cond::bits_set(
    0,
    (libc::CLONE_VM | libc::CLONE_THREAD) as u64,
)]];

/// Only on the control socket the client handed us (argument 0).
const CONTROL_SOCKET: &[&[Cond]] = &[&[Cond::is_control_socket(0)]];

/// Only to a thread of this process (thread group id, argument 0).
const OWN_PROCESS: &[&[Cond]] = &[&[Cond::is_own_pid(0)]];

/// `fstat` on a descriptor already held (`AT_EMPTY_PATH` in the flags, argument 3).
const EMPTY_PATH: &[&[Cond]] = &[&[Cond::bits_set(3, libc::AT_EMPTY_PATH as u64)]];
/// Writable and executable at once.
const WRITE_AND_EXEC: &[&[Cond]] = &[&[Cond::bits_set(
    2,
    (libc::PROT_WRITE | libc::PROT_EXEC) as u64,
)]];

/// The same call with a path: a file system probe.
const WITH_PATH: &[&[Cond]] = &[&[Cond::bits_clear(3, libc::AT_EMPTY_PATH as u64)]];

/// `PR_GET_AUXV` (Linux 6.4): not in the libc crate yet.
const PR_GET_AUXV: u64 = 0x4155_5856;
/// Thread names (threads name themselves, `llvmpipe-0`, `airlock-worker-3`) and the auxiliary
/// vector (lavapipe's CPU feature detection asks for `AT_HWCAP`).
const PRCTL_OPTIONS: &[&[Cond]] = &[
    &[Cond::equals(0, libc::PR_SET_NAME as u64)],
    &[Cond::equals(0, libc::PR_GET_NAME as u64)],
    &[Cond::equals(0, PR_GET_AUXV)],
];

/// Descriptor flags, and sealing the memfds handed to the client so it cannot resize them.
const FCNTL_COMMANDS: &[&[Cond]] = &[
    &[Cond::equals(1, libc::F_GETFD as u64)],
    &[Cond::equals(1, libc::F_SETFD as u64)],
    &[Cond::equals(1, libc::F_GETFL as u64)],
    &[Cond::equals(1, libc::F_DUPFD_CLOEXEC as u64)],
    &[Cond::equals(1, libc::F_ADD_SEALS as u64)],
    &[Cond::equals(1, libc::F_GET_SEALS as u64)],
];

pub const POLICY: &[Group] = &[
    Group {
        why: "Memory: the allocator, thread stacks, the memfds that back the client's \
              allocations, and LLVM's JIT, W^X.",
        action: Action::Allow,
        calls: &[
            call!(SYS_mmap, NOT_WRITE_AND_EXEC),
            call!(SYS_mprotect, NOT_WRITE_AND_EXEC),
            call!(SYS_munmap),
            call!(SYS_mremap),
            call!(SYS_madvise),
            call!(SYS_brk),
        ],
    },
    Group {
        why: "Threads: worker threads for blocking calls and compiles, lavapipe's rasteriser and \
              compute threads, their locks and their exit.",
        action: Action::Allow,
        calls: &[
            call!(SYS_clone, THREAD_ONLY),
            call!(SYS_futex),
            call!(SYS_set_robust_list),
            call!(SYS_rseq),
            call!(SYS_sigaltstack),
            call!(SYS_sched_getaffinity),
            call!(SYS_sched_yield),
            call!(SYS_nanosleep),
            call!(SYS_clock_nanosleep),
            call!(SYS_gettid),
            call!(SYS_getpid),
            call!(SYS_prctl, PRCTL_OPTIONS),
            call!(SYS_exit),
            call!(SYS_exit_group),
        ],
    },
    Group {
        why: "Signals: glibc's and Rust's own handlers (and this sandbox's SIGSYS handler), \
              signal masks of new threads, abort() on a fatal error, to this process only.",
        action: Action::Allow,
        calls: &[
            call!(SYS_rt_sigaction),
            call!(SYS_rt_sigprocmask),
            call!(SYS_rt_sigreturn),
            call!(SYS_restart_syscall),
            call!(SYS_tgkill, OWN_PROCESS),
        ],
    },
    Group {
        why: "The client: the control socket (liveness, memfds passed with SCM_RIGHTS), the \
              memfds of host-visible allocations, and the descriptors the server holds.",
        action: Action::Allow,
        calls: &[
            call!(SYS_sendmsg, CONTROL_SOCKET),
            call!(SYS_recvmsg, CONTROL_SOCKET),
            call!(SYS_ppoll),
            call!(SYS_poll),
            call!(SYS_memfd_create),
            call!(SYS_ftruncate),
            call!(SYS_fcntl, FCNTL_COMMANDS),
            call!(SYS_close),
            call!(SYS_read),
            call!(SYS_write),
            call!(SYS_writev),
            call!(SYS_lseek),
            call!(SYS_fstat),
            call!(SYS_newfstatat, EMPTY_PATH),
        ],
    },
    Group {
        why: "Time and facts about the machine: timestamps (when the vDSO cannot answer), \
              random seeds for hash maps, memory size (LLVM, lavapipe), ids (Mesa checks that \
              it is not set-uid before reading its environment).",
        action: Action::Allow,
        calls: &[
            call!(SYS_clock_gettime),
            call!(SYS_clock_getres),
            call!(SYS_gettimeofday),
            call!(SYS_getrandom),
            call!(SYS_sysinfo),
            call!(SYS_getuid),
            call!(SYS_geteuid),
            call!(SYS_getgid),
            call!(SYS_getegid),
        ],
    },
    Group {
        why: "The file system, refused quietly with EACCES, as landlock refuses it: glibc reads \
              /proc/sys/vm/overcommit_memory the first time it trims a heap, and libraries probe \
              for optional files; they all take 'permission denied' for an answer. Quiet \
              because these are expected: the server would otherwise log on every probe.",
        action: Action::Refuse(EACCES),
        calls: &[
            call!(SYS_open),
            call!(SYS_openat),
            call!(SYS_openat2),
            call!(SYS_creat),
            call!(SYS_newfstatat, WITH_PATH),
            call!(SYS_stat),
            call!(SYS_lstat),
            call!(SYS_statx),
            call!(SYS_access),
            call!(SYS_faccessat),
            call!(SYS_faccessat2),
            call!(SYS_readlink),
            call!(SYS_readlinkat),
        ],
    },
    Group {
        why: "W^X, refused quietly with EACCES (what SELinux's execmem denial answers): Mesa's \
              rtasm asks once per process for a 10 MiB RWX heap for its SSE vertex translation, \
              and uses its portable C path when refused; LLVM's JIT never asks for RWX.",
        action: Action::Refuse(EACCES),
        calls: &[
            call!(SYS_mmap, WRITE_AND_EXEC),
            call!(SYS_mprotect, WRITE_AND_EXEC),
        ],
    },
    Group {
        why: "clone3 passes its flags in memory, where seccomp cannot check them; ENOSYS makes \
              glibc (and so Rust's std) fall back to clone, whose flags are checked above.",
        action: Action::Refuse(ENOSYS),
        calls: &[call!(SYS_clone3)],
    },
    Group {
        why: "ioctl: the server has no device to talk to; 'not a terminal' is what isatty() \
              callers (LLVM's error output) expect to hear.",
        action: Action::Refuse(ENOTTY),
        calls: &[call!(SYS_ioctl)],
    },
];

/// Opened for reading only: no write access, no creation, no truncation.
const READ_ONLY_OPENAT: &[&[Cond]] = &[&[Cond::bits_clear(
    2,
    (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u64,
)]];

/// Under `AIRLOCK_VALIDATE=1` only, replacing the quiet refusals of the same calls: the Vulkan
/// loader reads the host driver's manifest and lists the validation layer's manifest directory
/// at every `vkCreateInstance`. Landlock leaves exactly those two paths readable
/// (`filesystem.rs`), so these calls reach nothing else.
pub const LOADER_READS: &[Group] = &[Group {
    why: "The Vulkan loader in front of the validation layer (AIRLOCK_VALIDATE=1): opening \
          its manifests for reading, listing the layer directory, and stat-ing them; landlock \
          confines the paths it may open (stat and access still see whether a path exists).",
    action: Action::Allow,
    calls: &[
        call!(SYS_openat, READ_ONLY_OPENAT),
        call!(SYS_getdents64),
        call!(SYS_newfstatat, WITH_PATH),
        call!(SYS_statx),
        call!(SYS_access, EXISTS_OR_READABLE),
        // The layer looks for vk_layer_settings.txt in the working directory.
        call!(SYS_getcwd),
    ],
}];

/// `access(path, F_OK | R_OK)`: the loader checks that each manifest it listed exists.
const EXISTS_OR_READABLE: &[&[Cond]] = &[&[Cond::bits_clear(1, (libc::W_OK | libc::X_OK) as u64)]];

/// Mesa's on-disk shader cache, in the application's own directory (`shader_cache.rs`): only
/// when landlock confines the server's files to that directory (and the validation layer's
/// manifests, read-only), which is then what decides which paths open.
pub const SHADER_CACHE: &[Group] = &[
    Group {
        why: "Mesa's shader cache in the application's directory, the only one landlock leaves \
          writable: files opened, made, renamed into place, locked, read and written at offsets, \
          directories made and listed, old entries removed when the cache is full.",
        action: Action::Allow,
        calls: &[
            call!(SYS_openat),
            call!(SYS_mkdir),
            call!(SYS_mkdirat),
            call!(SYS_rename),
            call!(SYS_renameat),
            call!(SYS_renameat2),
            call!(SYS_unlink),
            call!(SYS_unlinkat),
            call!(SYS_flock),
            call!(SYS_pread64),
            call!(SYS_pwrite64),
            call!(SYS_getdents64),
            call!(SYS_newfstatat, WITH_PATH),
            call!(SYS_statx),
        ],
    },
    Group {
        why: "Mesa's shader-cache writer thread asks for a low priority and an idle scheduling \
          class; refused quietly with EPERM, which it takes for an answer (the calls could \
          also name other processes of the user).",
        action: Action::Refuse(EPERM),
        calls: &[
            call!(SYS_setpriority),
            call!(SYS_sched_setscheduler),
            call!(SYS_sched_setaffinity),
        ],
    },
];

/// The policy in force: [`POLICY`], with [`SHADER_CACHE`] (when the application has a cache
/// that landlock confines) and [`LOADER_READS`] (when the host driver is validated) taking the
/// place of the refusals of the same calls; a call both allow is allowed as the first says.
pub fn policy(validated: bool, cache: bool) -> Vec<Group> {
    let mut extra: Vec<Group> = Vec::new();
    let mut seen: Vec<i64> = Vec::new();
    let chosen = [(cache, SHADER_CACHE), (validated, LOADER_READS)];
    for (on, groups) in chosen {
        for g in groups.iter().filter(|_| on) {
            let calls: Vec<Call> = g
                .calls
                .iter()
                .filter(|c| !seen.contains(&c.nr))
                .copied()
                .collect();
            seen.extend(calls.iter().map(|c| c.nr));
            extra.push(Group {
                calls: Vec::leak(calls),
                ..g.clone()
            });
        }
    }
    if extra.is_empty() {
        return POLICY.iter().map(Group::clone).collect();
    }
    let allowed = seen;
    let mut groups: Vec<Group> = POLICY
        .iter()
        .map(|g| match g.action {
            Action::Refuse(_) => Group {
                calls: Vec::leak(
                    g.calls
                        .iter()
                        .filter(|c| !allowed.contains(&c.nr))
                        .copied()
                        .collect(),
                ),
                ..g.clone()
            },
            Action::Allow => g.clone(),
        })
        .collect();
    groups.extend(extra);
    groups
}
