//! Harnesses of the fuzz targets in `fuzz_targets/`; see `fuzz/README.md`.

pub mod control;
pub mod stream;

/// Runs one `server_stream` input: a command stream against a fresh server state on the host
/// driver (`server::replay`, fuzz policy). Panics only on what the server must never do.
pub fn run_stream(data: &[u8]) {
    if let Err(e) = server::replay::play(data, server::replay::Policy::Fuzz, |_, _| {}) {
        // No host driver is a broken setup, not a finding: stop instead of reporting a crash.
        eprintln!("server_stream: {e}");
        std::process::exit(2);
    }
}
