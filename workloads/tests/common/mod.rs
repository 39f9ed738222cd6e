//! The driver helpers of `workloads::drivers`, and where `airlock-workload` is.
#![allow(dead_code)]

pub use workloads::drivers::*;

use std::path::PathBuf;

/// The `airlock-workload` binary.
pub fn workload() -> PathBuf {
    let p = target_dir().join("airlock-workload");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --all-targets`",
        p.display()
    );
    p
}
