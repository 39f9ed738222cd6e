//! Compiles the sandbox probe's compute shader (`shaders/probe.comp`) to SPIR-V in OUT_DIR with
//! glslang's `glslangValidator`, so the server embeds SPIR-V built from the source in the repo.

use std::path::Path;
use std::process::Command;

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let src = Path::new("shaders/probe.comp");
    println!("cargo:rerun-if-changed={}", src.display());
    let spv = Path::new(&out_dir).join("probe.comp.spv");
    let result = Command::new("glslangValidator")
        .arg("-V")
        .arg("--target-env")
        .arg("vulkan1.0")
        .arg("-o")
        .arg(&spv)
        .arg(src)
        .output();
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "glslangValidator not found: install glslang-tools (Debian/Ubuntu) to build the \
             server's probe shader"
        ),
        Err(e) => panic!("running glslangValidator on {}: {e}", src.display()),
        Ok(o) if !o.status.success() => panic!(
            "glslangValidator failed on {}:\n{}{}",
            src.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
}
