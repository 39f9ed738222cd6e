//! Paths and runners shared by the integration tests. Every device test runs the same thing
//! natively on lavapipe and through Airlock.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// target/<profile>, where the ICD, its manifest, the server and the examples are built.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub fn airlock_manifest() -> PathBuf {
    let dir = target_dir();
    let server = dir.join("airlock-server");
    assert!(
        server.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        server.display()
    );
    let m = dir.join("airlock_icd.x86_64.json");
    assert!(
        m.exists(),
        "{} is missing: the icd build script writes it",
        m.display()
    );
    m
}

/// Native lavapipe's manifest: `AIRLOCK_NATIVE_ICD`, else the system's.
pub fn native_manifest() -> PathBuf {
    if let Some(p) = std::env::var_os("AIRLOCK_NATIVE_ICD") {
        return PathBuf::from(p);
    }
    for dir in [
        "/usr/share/vulkan/icd.d",
        "/usr/local/share/vulkan/icd.d",
        "/etc/vulkan/icd.d",
    ] {
        let p = PathBuf::from(dir).join("lvp_icd.x86_64.json");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "lavapipe's ICD manifest not found: install mesa-vulkan-drivers or set AIRLOCK_NATIVE_ICD"
    );
}

/// A command with only the chosen driver visible.
pub fn with_driver(program: impl AsRef<std::ffi::OsStr>, manifest: &PathBuf) -> Command {
    let mut c = Command::new(program);
    c.env("VK_DRIVER_FILES", manifest)
        .env("VK_ICD_FILENAMES", manifest)
        .env_remove("VK_INSTANCE_LAYERS")
        .env_remove("VK_LOADER_LAYERS_ENABLE")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("AIRLOCK_LOG", "warn");
    c
}

pub fn run(mut c: Command) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("running {c:?}: {e}"));
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The probe example, run as its own process.
pub fn probe(manifest: &PathBuf, args: &[&str]) -> Command {
    let p = target_dir().join("examples/airlock_probe");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --all-targets`",
        p.display()
    );
    let mut c = with_driver(p, manifest);
    c.args(args);
    c
}

/// `key=value` lines of the probe's output.
pub fn values(o: &Output) -> std::collections::HashMap<String, String> {
    stdout(o)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
