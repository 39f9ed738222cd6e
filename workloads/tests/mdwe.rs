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
