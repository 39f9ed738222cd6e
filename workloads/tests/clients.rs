//! Real clients, unchanged: wgpu for Python (wgpu-native, the Rust wgpu under it) computing and
//! rendering offscreen, and Kompute computing, once natively and once through Airlock. Each
//! script checks its own result and prints a digest of it; the two drivers must print the same.
//!
//! `scripts/clients.sh` installs the clients into target/clients-venv (the test command runs
//! it); `AIRLOCK_CLIENTS_PYTHON` names another interpreter that has them.

use std::path::{Path, PathBuf};
use workloads::drivers::{
    airlock_manifest, native_manifest, run, stderr, stdout, target_dir, with_driver,
};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("AIRLOCK_CLIENTS_PYTHON") {
        return PathBuf::from(p);
    }
    let p = target_dir().join("../clients-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/clients.sh (or set AIRLOCK_CLIENTS_PYTHON)",
        p.display()
    );
    p
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(name)
}

/// Runs `name` on the driver of `manifest`; its stdout, after checking from the ICD's log line
/// that it ran through Airlock exactly when `through_airlock`.
fn run_client(name: &str, manifest: &PathBuf, through_airlock: bool) -> String {
    let mut c = with_driver(python(), manifest);
    c.arg(script(name)).env("AIRLOCK_LOG", "info");
    let o = run(c);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        o.status.success(),
        "{name} on {}: {}\n--- stdout\n{out}--- stderr\n{err}",
        manifest.display(),
        o.status
    );
    assert_eq!(
        err.contains("airlock: connected"),
        through_airlock,
        "{name} on {}: through Airlock or not?\n{err}",
        manifest.display()
    );
    out
}

fn compare(name: &str) {
    let native = run_client(name, &native_manifest(), false);
    let airlock = run_client(name, &airlock_manifest(), true);
    assert!(!native.trim().is_empty(), "{name} printed nothing");
    assert_eq!(native, airlock, "{name}: native, then through Airlock");
}

#[test]
fn wgpu_python_compute() {
    compare("wgpu_compute.py");
}

#[test]
fn wgpu_python_offscreen_render() {
    compare("wgpu_render.py");
}

#[test]
fn kompute_compute() {
    compare("kompute_compute.py");
}
