//! Compiles every GLSL source in `shaders/` to SPIR-V in OUT_DIR (`<name>.<stage>.spv`), with
//! glslang's `glslangValidator`, so the programs embed SPIR-V built from the sources in the repo.
//! Vulkan 1.2 SPIR-V (1.5): 1.3's (1.6) declares workgroup sizes with LocalSizeId, which needs the
//! maintenance4 feature enabled.

use std::path::Path;
use std::process::Command;

const STAGES: [&str; 3] = ["comp", "vert", "frag"];

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let shaders = Path::new("shaders");
    println!("cargo:rerun-if-changed=shaders");
    let mut sources: Vec<_> = std::fs::read_dir(shaders)
        .expect("workloads/shaders is missing")
        .map(|e| e.expect("reading workloads/shaders").path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| STAGES.iter().any(|s| e == *s))
        })
        .collect();
    sources.sort();
    for src in sources {
        let name = src.file_name().unwrap().to_string_lossy();
        let spv = Path::new(&out_dir).join(format!("{name}.spv"));
        let result = Command::new("glslangValidator")
            .arg("-V")
            .arg("--target-env")
            .arg("vulkan1.2")
            .arg("-o")
            .arg(&spv)
            .arg(&src)
            .output();
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "glslangValidator not found: install glslang-tools (Debian/Ubuntu) to build the \
                 workloads' shaders"
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
}
