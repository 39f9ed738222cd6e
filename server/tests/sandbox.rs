//! The server's sandbox, seen from outside: `airlock-server --sandbox-selftest` (the server's
//! own set-up in a process of its own, then attempts it must refuse and a compute job it must
//! still run), and a server started by a real client through the ICD, inspected in /proc.
//!
//! The client tests need the ICD and its probe example built: `cargo build --workspace
//! --all-targets`, as for the device tests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use workloads::drivers::{airlock_manifest, target_dir, with_driver};

const SERVER: &str = env!("CARGO_BIN_EXE_airlock-server");

/// `airlock-server --sandbox-selftest` with `args`, in the default environment plus `env`.
fn selftest(args: &[&str], env: &[(&str, &str)]) -> (Output, HashMap<String, String>) {
    let mut c = Command::new(SERVER);
    c.arg("--sandbox-selftest")
        .args(args)
        .env_remove("AIRLOCK_SANDBOX")
        .env_remove("AIRLOCK_MAX_MEMORY")
        .env_remove("MESA_SHADER_CACHE_DISABLE")
        .env("AIRLOCK_SHADER_CACHE_DIR", cache_base())
        .env("AIRLOCK_LOG", "info");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c
        .output()
        .expect("running airlock-server --sandbox-selftest");
    let values = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (o, values)
}

/// Where the tests' servers keep their shader caches, instead of the user's.
fn cache_base() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("airlock-sandbox-test-{}", std::process::id()))
}

fn show(o: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn get<'a>(v: &'a HashMap<String, String>, k: &str, o: &Output) -> &'a str {
    v.get(k)
        .unwrap_or_else(|| panic!("no {k}= line:\n{}", show(o)))
}

#[test]
fn default_sandbox_refuses_files_sockets_and_exec_and_still_computes() {
    let (o, v) = selftest(&[], &[]);
    assert!(o.status.success(), "{}", show(&o));
    // The shader cache: the server's own application directory is writable after lock-down,
    // another application's is not (where landlock applies).
    assert_eq!(get(&v, "cache_write", &o), "allowed");
    if get(&v, "layer.landlock", &o).starts_with("applied") {
        assert!(
            get(&v, "cache_write_other_application", &o).starts_with("refused"),
            "{}",
            show(&o)
        );
    }
    assert_eq!(get(&v, "mode", &o), "best-effort");
    // What the issue requires of the default mode on any kernel with seccomp.
    for layer in ["layer.seccomp", "layer.no-new-privs", "layer.limits"] {
        assert!(
            get(&v, layer, &o).starts_with("applied"),
            "{layer}:\n{}",
            show(&o)
        );
    }
    for attempt in [
        "open",
        "socket",
        "execve",
        "fork",
        "mmap_write_exec",
        "sendmsg_other_socket",
        "signal_parent",
    ] {
        assert!(
            get(&v, attempt, &o).starts_with("refused"),
            "{attempt} was not refused:\n{}",
            show(&o)
        );
    }
    // File access is refused quietly (EACCES, as landlock would); a socket and execve are
    // trapped, logged and refused with EPERM.
    assert_eq!(get(&v, "open", &o), "refused (EACCES)");
    assert_eq!(get(&v, "socket", &o), "refused (EPERM)");
    assert_eq!(get(&v, "execve", &o), "refused (EPERM)");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("sandbox refused system call 41 (socket) with EPERM")
            && stderr.contains("(execve) with EPERM"),
        "trapped calls are logged:\n{}",
        show(&o)
    );
    // What the server needs afterwards still works: its control socket, and the driver: an
    // instance, a device, the process's first pipeline compile (LLVM's JIT) and a dispatch.
    assert_eq!(get(&v, "sendmsg_control_socket", &o), "allowed");
    assert!(get(&v, "compute", &o).starts_with("ok"), "{}", show(&o));
    assert_eq!(get(&v, "result", &o), "pass");
    assert!(
        stderr.contains("INFO sandbox (best-effort): namespaces: "),
        "one info line with every layer:\n{}",
        show(&o)
    );
}

#[test]
fn landlock_alone_refuses_files_exec_and_tcp() {
    let (o, v) = selftest(&["--skip", "seccomp"], &[]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(get(&v, "layer.seccomp", &o), "skipped");
    let landlock = get(&v, "layer.landlock", &o);
    if !landlock.starts_with("applied") {
        eprintln!("landlock is not available on this kernel ({landlock}); nothing to check");
        return;
    }
    assert_eq!(get(&v, "open", &o), "refused (EACCES)", "{}", show(&o));
    assert_eq!(get(&v, "execve", &o), "refused (EACCES)", "{}", show(&o));
    // landlock does not govern making a socket, only what it may reach.
    assert_eq!(get(&v, "socket", &o), "allowed");
    assert!(
        get(&v, "connect_tcp", &o).starts_with("refused"),
        "{}",
        show(&o)
    );
    assert!(get(&v, "compute", &o).starts_with("ok"), "{}", show(&o));
}

/// The self-test's attempts do detect an unconfined process: with the sandbox off they all
/// succeed, up to the execve of /bin/false, which replaces the process and exits 1.
#[test]
fn with_the_sandbox_off_nothing_is_refused() {
    let (o, v) = selftest(&[], &[("AIRLOCK_SANDBOX", "off")]);
    assert_eq!(get(&v, "mode", &o), "off");
    for attempt in ["open", "socket", "fork", "mmap_write_exec", "signal_parent"] {
        assert_eq!(get(&v, attempt, &o), "allowed", "{}", show(&o));
    }
    assert!(!v.contains_key("result"), "{}", show(&o));
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
}

#[test]
fn strict_mode_refuses_when_a_layer_fails() {
    // An address-space limit that cannot be parsed fails the limits layer.
    let (o, v) = selftest(
        &[],
        &[
            ("AIRLOCK_SANDBOX", "strict"),
            ("AIRLOCK_MAX_MEMORY", "lots"),
        ],
    );
    assert!(!o.status.success(), "{}", show(&o));
    let refused = get(&v, "refused", &o);
    assert!(
        refused.contains("sandbox (strict) refuses to serve: limits failed"),
        "{}",
        show(&o)
    );
    assert_eq!(get(&v, "result", &o), "fail");
    // The same with every layer applicable passes.
    let (o, v) = selftest(&[], &[("AIRLOCK_SANDBOX", "strict")]);
    if o.status.success() {
        assert_eq!(get(&v, "result", &o), "pass");
    } else {
        // A kernel without landlock or user namespaces: strict must say which layer failed.
        assert!(get(&v, "refused", &o).contains("failed"), "{}", show(&o));
    }
}

#[test]
fn a_malformed_mode_is_an_error() {
    let (o, v) = selftest(&[], &[("AIRLOCK_SANDBOX", "maybe")]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(get(&v, "error", &o).contains("expected strict, best-effort or off"));
}

/// The probe (`workloads/src/bin/airlock-probe.rs`), through Airlock.
fn probe(scenario: &str) -> Command {
    let p = target_dir().join("airlock-probe");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --all-targets`",
        p.display()
    );
    let mut c = with_driver(p, &airlock_manifest());
    c.arg(scenario)
        .env("AIRLOCK_SERVER", SERVER)
        .env_remove("AIRLOCK_SANDBOX")
        .env_remove("AIRLOCK_MAX_MEMORY")
        // With a shader cache, as a user runs it (in the tests' directory).
        .env_remove("MESA_SHADER_CACHE_DISABLE")
        .env("AIRLOCK_SHADER_CACHE_DIR", cache_base());
    c
}

/// A server that a client started is confined while it serves: the kernel's own view of it.
#[test]
fn a_served_server_runs_under_seccomp_and_no_new_privs() {
    let mut child = probe("make-and-hang")
        .env("AIRLOCK_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the probe");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The server's stderr is the probe's: it ends when both have exited.
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut server = 0;
    let mut lines = Vec::new();
    loop {
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                panic!("the probe did not get ready ({e}): {lines:?}");
            }
        };
        if let Some(p) = line.strip_prefix("server=") {
            server = p.parse().unwrap_or(0);
        }
        let ready = line == "ready=yes";
        lines.push(line);
        if ready {
            break;
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{server}/status"));
    let limits = std::fs::read_to_string(format!("/proc/{server}/limits"));
    // Readable by root only (the server is not dumpable); unreadable is no evidence either way.
    let namespaces: Vec<_> = ["user", "net", "mnt"]
        .iter()
        .map(|ns| {
            let theirs = std::fs::read_link(format!("/proc/{server}/ns/{ns}")).ok();
            let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).ok();
            (*ns, theirs, ours)
        })
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let log = err_reader.join().unwrap();
    assert!(server > 0, "no server pid from the probe: {lines:?}\n{log}");
    let status = status.unwrap_or_else(|e| panic!("/proc/{server}/status: {e}"));
    assert!(
        status.contains("\nSeccomp:\t2\n"),
        "not in seccomp filter mode:\n{status}"
    );
    assert!(
        status.contains("\nNoNewPrivs:\t1\n"),
        "no-new-privs not set:\n{status}"
    );
    let limits = limits.unwrap_or_else(|e| panic!("/proc/{server}/limits: {e}"));
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_default();
    assert!(
        core.split_whitespace().filter(|w| *w == "0").count() == 2,
        "core dumps not off: {core:?}"
    );
    assert!(
        log.contains("INFO sandbox (best-effort): namespaces: ")
            && log.contains("seccomp: ")
            && log.contains(&format!("shader cache: {}", cache_base().display())),
        "the server logs its layers in one line:\n{log}"
    );
    assert!(
        !log.contains("sandbox refused system call"),
        "serving the probe needed a refused call:\n{log}"
    );
    if log.contains("namespaces: user, mount, network") {
        for (ns, theirs, ours) in namespaces {
            if let (Some(theirs), Some(ours)) = (theirs, ours) {
                assert_ne!(theirs, ours, "the server shares our {ns} namespace");
            }
        }
    }
}

/// Strict mode with a layer that cannot be applied: the client sees the refusal at instance
/// creation, not a server that dies later.
#[test]
fn a_strict_server_that_cannot_lock_down_fails_instance_creation() {
    let o = probe("enumerate")
        .env("AIRLOCK_SANDBOX", "strict")
        .env("AIRLOCK_MAX_MEMORY", "lots")
        .output()
        .expect("running the probe");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        stdout.contains("error=vkCreateInstance: ERROR_INITIALIZATION_FAILED"),
        "{}",
        show(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refuses to serve: limits failed"),
        "the reason is logged:\n{}",
        show(&o)
    );
}
