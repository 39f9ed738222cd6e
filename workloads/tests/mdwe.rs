//! A client that forbids itself W^X-violating memory (`PR_SET_MDWE`) before loading Vulkan:
//! through Airlock (its server started by `airlock-server --listen`, since a server the client
//! started would inherit the restriction) it compiles pipelines, dispatches and draws with the
//! same results as native lavapipe in an ordinary process, and afterwards maps no LLVM and no
//! executable anonymous memory; native lavapipe cannot work in that process at all.

mod common;

use common::*;

/// Scenarios that compile compute and graphics pipelines, dispatch and draw.
const SCENARIOS: &[&str] = &["compute", "render", "dynamic_rendering", "push_constants"];

fn workload_run(
    scenario: &str,
    manifest: &std::path::PathBuf,
    mdwe: bool,
    socket: Option<&std::path::Path>,
) -> (std::process::Output, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("result.bin");
    let mut c = with_driver(workload(), manifest);
    c.arg(scenario).arg("--out").arg(&out);
    if mdwe {
        c.arg("--mdwe");
    }
    if let Some(s) = socket {
        c.env("AIRLOCK_SOCKET", s);
    }
    let o = run(c);
    let bytes = std::fs::read(&out).unwrap_or_default();
    (o, bytes)
}

#[test]
fn hardened_client_works_through_airlock_as_native_works_unhardened() {
    let launcher = Launcher::start();
    for scenario in SCENARIOS {
        let (o, airlock) =
            workload_run(scenario, &airlock_manifest(), true, Some(&launcher.socket));
        assert!(
            o.status.success(),
            "{scenario} with PR_SET_MDWE through Airlock ({}):\n{}",
            o.status,
            stderr(&o)
        );
        assert!(
            stderr(&o).contains("PR_GET_MDWE = 1"),
            "the process was not hardened: {}",
            stderr(&o)
        );
        let (n, native) = workload_run(scenario, &native_manifest(), false, None);
        assert!(n.status.success(), "{scenario} natively: {}", stderr(&n));
        assert!(!native.is_empty());
        assert!(native == airlock, "{scenario}: results differ from native");
    }
}

#[test]
fn native_lavapipe_fails_in_a_hardened_client() {
    for scenario in SCENARIOS {
        let (o, _) = workload_run(scenario, &native_manifest(), true, None);
        assert!(
            !o.status.success(),
            "{scenario} with PR_SET_MDWE ran on native lavapipe; the JIT should have been refused"
        );
    }
}

/// Without a launcher, a hardened client is told why Airlock cannot start its own server,
/// instead of getting a server whose JIT fails later.
#[test]
fn hardened_client_without_a_launcher_gets_a_clear_error() {
    let (o, _) = workload_run("compute", &airlock_manifest(), true, None);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("ERROR_INITIALIZATION_FAILED") && err.contains("AIRLOCK_SOCKET"),
        "{err}"
    );
}

/// A hardened client with no `AIRLOCK_SOCKET` finds the per-user socket that the systemd units
/// of `make install` listen on (`$XDG_RUNTIME_DIR/airlock.sock`) and computes through it, with
/// the same results as natively. The test machine need not run a systemd user instance: the
/// installed units are run as systemd runs them, by `systemd-socket-activate --accept
/// --seqpacket` on the socket unit's path with the service unit's command, one server per
/// connection.
#[test]
fn hardened_client_uses_the_installed_per_user_socket() {
    let home = tempfile::tempdir().unwrap();
    let prefix = home.path().join(".local");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let make = std::process::Command::new("make")
        .args(["install", "PROFILE=debug"])
        .arg(format!("PREFIX={}", prefix.display()))
        .current_dir(&root)
        .output()
        .expect("make install");
    assert!(
        make.status.success(),
        "{}",
        String::from_utf8_lossy(&make.stderr)
    );
    let units = prefix.join("share/systemd/user");
    let socket_unit = std::fs::read_to_string(units.join("airlock.socket")).unwrap();
    let service = std::fs::read_to_string(units.join("airlock@.service")).unwrap();
    assert!(
        socket_unit.contains("ListenSequentialPacket=%t/airlock.sock"),
        "{socket_unit}"
    );
    assert!(socket_unit.contains("Accept=yes"), "{socket_unit}");
    let exec: Vec<&str> = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart")
        .split_whitespace()
        .collect();
    // %t: the runtime directory.
    let runtime = tempfile::tempdir().unwrap();
    let socket = runtime.path().join("airlock.sock");
    let mut activator = std::process::Command::new("systemd-socket-activate")
        .args(["--accept", "--seqpacket", "-l"])
        .arg(&socket)
        .args(&exec)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (package systemd)");
    for _ in 0..200 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("result.bin");
    let mut c = with_driver(workload(), &airlock_manifest());
    c.args(["compute", "--mdwe", "--out"])
        .arg(&out)
        .env_remove("AIRLOCK_SOCKET")
        .env("XDG_RUNTIME_DIR", runtime.path());
    let o = run(c);
    let _ = activator.kill();
    let _ = activator.wait();
    assert!(
        o.status.success(),
        "through the per-user socket: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("PR_GET_MDWE = 1"), "{}", stderr(&o));
    let (n, native) = workload_run("compute", &native_manifest(), false, None);
    assert!(n.status.success());
    assert!(
        std::fs::read(&out).unwrap() == native,
        "results differ from native"
    );
}
