//! Writes an ICD manifest for the library this build produces into the target directory
//! (`target/<profile>/airlock_icd.x86_64.json`), for tests and for running from the tree.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is target/<profile>/build/icd-<hash>/out.
    let Some(profile_dir) = out.ancestors().nth(3) else {
        return;
    };
    let template = include_str!("../manifests/airlock_icd.json.in");
    let lib = profile_dir.join("libvulkan_airlock.so");
    let manifest = template.replace("@LIBRARY_PATH@", &lib.display().to_string());
    let _ = std::fs::write(profile_dir.join("airlock_icd.x86_64.json"), manifest);
    println!("cargo:rerun-if-changed=../manifests/airlock_icd.json.in");
}
