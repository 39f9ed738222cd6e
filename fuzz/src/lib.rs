//! Harnesses of the fuzz targets in `fuzz_targets/`; see `fuzz/README.md`.

pub mod control;
pub mod decoder;
pub mod stream;

use server::replay::Kept;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

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
///
/// Host instances and devices outlive their input (`server::replay::Kept`): made once, handed to
/// the next input that creates one from the same bytes, their children destroyed in between,
/// all destroyed every `Kept::GENERATION` inputs. `AIRLOCK_FUZZ_FRESH=1` makes every input
/// create its own, as `airlock-replay` does without `--kept`.
pub fn run_stream(data: &[u8]) {
    let policy = server::replay::Policy::Fuzz;
    // No host driver is a broken setup, not a finding: stop instead of reporting a crash.
    let no_host = |e: server::host::HostError| -> ! {
        eprintln!("server_stream: {e}");
        std::process::exit(2)
    };
    // A crash that corrupted the heap can hang libFuzzer's handler before it saves the input:
    // `AIRLOCK_FUZZ_LAST=<file>` keeps the inputs there as they run, each after its length
    // (u32, little-endian): the last one alone when fresh, else those of the current
    // generation, which `airlock-replay --fuzz --history <file>` plays again in order.
    let last = std::env::var_os("AIRLOCK_FUZZ_LAST");
    if std::env::var_os("AIRLOCK_FUZZ_FRESH").is_some_and(|v| v == "1") {
        if let Some(path) = last {
            let _ = std::fs::write(
                path,
                [&(data.len() as u32).to_le_bytes()[..], data].concat(),
            );
        }
        if let Err(e) = server::replay::play_with(data, policy, known_shaders(), |_, _| {}) {
            no_host(e);
        }
        return;
    }
    static KEPT: Mutex<Option<(Kept, Option<std::fs::File>)>> = Mutex::new(None);
    let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    let (kept, history) = kept.get_or_insert_with(|| {
        let kept = Kept::new(policy).unwrap_or_else(|e| no_host(e));
        (kept, last.and_then(|p| std::fs::File::create(p).ok()))
    });
    if kept.streams >= Kept::GENERATION {
        kept.renew();
    }
    if let Some(f) = history {
        use std::io::{Seek, Write};
        if kept.streams == 0 {
            let _ = f.set_len(0).and_then(|()| f.rewind());
        }
        let _ = f.write_all(&[&(data.len() as u32).to_le_bytes()[..], data].concat());
    }
    server::replay::play_kept(kept, data, known_shaders(), |_, _| {});
}
