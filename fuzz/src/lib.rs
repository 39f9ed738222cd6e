//! Harnesses of the fuzz targets in `fuzz_targets/`; see `fuzz/README.md`.

pub mod control;
pub mod decoder;
pub mod stream;

use std::collections::HashSet;
use std::sync::OnceLock;

/// The SPIR-V the `server_stream` target lets the host compile: the shader modules of the
/// committed seeds (`server::replay::fuzz_skips` says why), read once.
pub fn known_shaders() -> &'static HashSet<Vec<u8>> {
    static KNOWN: OnceLock<HashSet<Vec<u8>>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/server_stream");
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        server::replay::shader_modules(seeds.iter().map(|s| s.as_slice()))
    })
}

/// Runs one `server_stream` input: a command stream against a fresh server state on the host
/// driver (`server::replay`, fuzz policy). Panics only on what the server must never do.
pub fn run_stream(data: &[u8]) {
    // A crash that corrupted the heap can hang libFuzzer's handler before it saves the input;
    // `AIRLOCK_FUZZ_LAST=<file>` keeps every input there until the next one.
    if let Some(path) = std::env::var_os("AIRLOCK_FUZZ_LAST") {
        let _ = std::fs::write(path, data);
    }
    let policy = server::replay::Policy::Fuzz;
    if let Err(e) = server::replay::play_with(data, policy, known_shaders(), |_, _| {}) {
        // No host driver is a broken setup, not a finding: stop instead of reporting a crash.
        eprintln!("server_stream: {e}");
        std::process::exit(2);
    }
}
