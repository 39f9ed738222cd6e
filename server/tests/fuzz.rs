//! The fuzz targets' inputs as regression tests, in the normal `cargo test`: every committed
//! seed (`fuzz/seeds/<target>/`) and every input a fuzzer ever crashed on
//! (`fuzz/regressions/<target>/`) goes through the same harness as in `fuzz/`, each in a child
//! process of its own, so that a crash names its input instead of killing the test binary.
//!
//! `AIRLOCK_WRITE_FUZZ_SEEDS=1 cargo test -p server --test fuzz control_seeds` rewrites the
//! control seeds from the messages the ICD and the server really send; `... decoder_seeds`, the
//! decoder seeds from the recorded streams (`fuzz/seeds/server_stream/`).

use server::replay::{self, Policy};
use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)]
#[path = "../../fuzz/src/control.rs"]
mod control;

#[allow(dead_code)]
#[path = "../../fuzz/src/decoder.rs"]
mod decoder;

const INPUT: &str = "AIRLOCK_FUZZ_INPUT";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && p.file_name().is_none_or(|n| n != ".gitkeep"));
    v.sort();
    v
}

/// Runs `test` of this binary on `input` in a child process; panics naming the input if the
/// child fails (a panic, or a signal: what the fuzzer calls a crash).
fn isolated(test: &str, input: &Path) {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INPUT, input)
        .output()
        .expect("run the test binary");
    assert!(
        out.status.success(),
        "{}: {} ({})\n{}",
        test,
        input.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The input a parent handed to this child, if this is one.
fn child_input() -> Option<Vec<u8>> {
    let path = std::env::var_os(INPUT)?;
    Some(std::fs::read(&path).expect("fuzz input"))
}

/// One `server_stream` input, as the fuzz target runs it (`fuzz/src/lib.rs`).
#[test]
fn server_stream_one() {
    if let Some(data) = child_input() {
        let seeds: Vec<Vec<u8>> = inputs("seeds", "server_stream")
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        let known = replay::shader_modules(seeds.iter().map(|s| s.as_slice()));
        let tally = replay::play_with(&data, Policy::Fuzz, &known, |_, _| {}).expect("host driver");
        eprintln!("{tally:?}");
    }
}

/// One `control` input, as the fuzz target runs it.
#[test]
fn control_one() {
    if let Some(data) = child_input() {
        control::run(&data);
    }
}

#[test]
fn server_stream_seeds_and_regressions() {
    if std::env::var_os(INPUT).is_some() {
        return;
    }
    let seeds = inputs("seeds", "server_stream");
    assert!(!seeds.is_empty(), "no server_stream seeds");
    for p in seeds.iter().chain(&inputs("regressions", "server_stream")) {
        isolated("server_stream_one", p);
    }
}

/// The seeds are streams the current ICD and server agree on: every frame whole and accepted
/// (or skipped by the fuzz policy).
/// A change of the wire format fails here: record the seeds again (`fuzz/README.md`).
#[test]
fn server_stream_seeds_are_current() {
    if std::env::var_os(INPUT).is_some() {
        return;
    }
    let seeds = inputs("seeds", "server_stream");
    let all: Vec<Vec<u8>> = seeds.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let known = replay::shader_modules(all.iter().map(|s| s.as_slice()));
    for (p, data) in seeds.iter().zip(&all) {
        // The fuzz policy: the real one would wait for what the recording client's other
        // threads signalled (timeline.bin).
        let t = replay::play_with(data, Policy::Fuzz, &known, |_, _| {}).expect("host driver");
        assert!(
            t.rejected == 0 && t.unsupported == 0 && t.trailing == 0 && t.executed > 0,
            "{}: {t:?}",
            p.display()
        );
    }
}

/// The fuzz target's kept instances and devices (`replay::Kept`) change nothing a stream sees:
/// every seed, played twice over through one `Kept` (each stream a neighbour's kept objects),
/// gets the outcome of every frame it gets from a fresh server state; and the second round
/// takes its instances and devices from the first.
#[test]
fn kept_objects_give_what_fresh_ones_give() {
    if std::env::var_os(INPUT).is_some() {
        return;
    }
    let all: Vec<Vec<u8>> = inputs("seeds", "server_stream")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let known = replay::shader_modules(all.iter().map(|s| s.as_slice()));
    let fresh: Vec<Vec<replay::Outcome>> = all
        .iter()
        .map(|d| {
            let mut v = Vec::new();
            replay::play_with(d, Policy::Fuzz, &known, |_, o| v.push(o.clone()))
                .expect("host driver");
            v
        })
        .collect();
    let mut kept = replay::Kept::new(Policy::Fuzz).expect("host driver");
    for round in 0..2 {
        let before = kept.reused;
        for (d, want) in all.iter().zip(&fresh) {
            let mut got = Vec::new();
            replay::play_kept(&mut kept, d, &known, |_, o| got.push(o.clone()));
            assert_eq!(
                &got, want,
                "round {round}: outcomes differ from a fresh state's"
            );
        }
        if round == 1 {
            assert!(
                kept.reused >= before + all.len() as u64,
                "the second round made its own instances ({} reused of {} streams)",
                kept.reused - before,
                all.len()
            );
        }
    }
}

#[test]
fn control_seeds_and_regressions() {
    if std::env::var_os(INPUT).is_some() {
        return;
    }
    let seeds = inputs("seeds", "control");
    assert!(!seeds.is_empty(), "no control seeds");
    for p in seeds.iter().chain(&inputs("regressions", "control")) {
        isolated("control_one", p);
    }
}

/// The committed control seeds are the encodings `control::seeds` makes now.
#[test]
fn control_seeds() {
    if std::env::var_os(INPUT).is_some() {
        return;
    }
    let dir = fuzz_dir().join("seeds/control");
    let write = std::env::var_os("AIRLOCK_WRITE_FUZZ_SEEDS").is_some();
    for (name, bytes) in control::seeds() {
        let path = dir.join(format!("{name}.bin"));
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == bytes,
                "{} is stale: AIRLOCK_WRITE_FUZZ_SEEDS=1 cargo test -p server --test fuzz \
                 control_seeds",
                path.display()
            );
        }
    }
}

/// One `decoder` input, as the fuzz target runs it.
#[test]
fn decoder_one() {
    if let Some(data) = child_input() {
        decoder::run(&data);
    }
}

/// The committed decoder seeds are what `decoder::seeds` makes of the recorded streams now.
#[test]
fn decoder_seeds() {
    if std::env::var_os(INPUT).is_some() {
        return;
    }
    let streams: Vec<(String, Vec<u8>)> = inputs("seeds", "server_stream")
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(p).unwrap())
        })
        .collect();
    let seeds = decoder::seeds(&streams);
    assert!(seeds.len() > 50, "{} decoder seeds", seeds.len());
    let dir = fuzz_dir().join("seeds/decoder");
    if std::env::var_os("AIRLOCK_WRITE_FUZZ_SEEDS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
        }
    }
    let committed = inputs("seeds", "decoder");
    assert_eq!(
        committed.len(),
        seeds.len(),
        "fuzz/seeds/decoder is stale: AIRLOCK_WRITE_FUZZ_SEEDS=1 cargo test -p server --test \
         fuzz decoder_seeds"
    );
    for (name, bytes) in &seeds {
        let p = dir.join(format!("{name}.bin"));
        assert!(
            std::fs::read(&p).ok().as_ref() == Some(bytes),
            "{} is stale",
            p.display()
        );
        // Decoded in this process: a seed is a request the server accepts.
        decoder::run(bytes);
    }
}

#[test]
fn decoder_regressions() {
    if std::env::var_os(INPUT).is_some() {
        return;
    }
    for p in inputs("regressions", "decoder") {
        isolated("decoder_one", &p);
    }
}
