//! The driver helpers shared with the device tests (`workloads::drivers`), and the probe
//! (`workloads/src/bin/airlock-probe.rs`). Every device test runs the same thing natively on
//! lavapipe and through Airlock.
#![allow(dead_code)]

pub use workloads::drivers::*;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The probe, run as its own process.
pub fn probe(manifest: &PathBuf, args: &[&str]) -> Command {
    let p = target_dir().join("airlock-probe");
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
