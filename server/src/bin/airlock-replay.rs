//! `airlock-replay <stream>...`: plays streams recorded with `AIRLOCK_RECORD=<file>` against a
//! fresh server state each, in this process (no client, no sandbox), and prints what became of
//! their frames. `-v` prints every frame; `--fuzz` skips what the fuzz target skips, and
//! `--seeds DIR` names the seed streams whose shader modules it compiles (as the fuzz target
//! does with `fuzz/seeds/server_stream`; without it, `--fuzz` compiles none). `--kept` plays the
//! streams in order with host instances and devices kept from one to the next, as the fuzz
//! target does (`server::replay::Kept`); `--history FILE` plays, that way, the inputs a fuzz run
//! kept in `AIRLOCK_FUZZ_LAST` (a crash found after many inputs may need those before it):
//! `airlock-replay --fuzz --seeds fuzz/seeds/server_stream --history <file>`.
//! See `server::replay` for how this differs from a real connection.

use server::replay::{self, Outcome, Policy};
use std::process::ExitCode;
use wire::generated::commands::COMMANDS;
use wire::private;

fn name(command: u32) -> String {
    match COMMANDS.get(command as usize) {
        Some(c) => c.name.to_string(),
        None if command == private::RECORDED => "RECORDED".into(),
        None if command == private::MAP_MEMORY => "MAP_MEMORY".into(),
        None if command == private::IMPORT_MEMORY => "IMPORT_MEMORY".into(),
        None => format!("#{command}"),
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: airlock-replay [-v] [--fuzz [--seeds DIR]] [--kept] <stream recorded with AIRLOCK_RECORD>...\n       airlock-replay [-v] --fuzz [--seeds DIR] --history <AIRLOCK_FUZZ_LAST file of a fuzz run>"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // What the server would log (refusals, validation reports) goes to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("AIRLOCK_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let policy = if args.iter().any(|a| a == "--fuzz") {
        Policy::Fuzz
    } else {
        Policy::Replay
    };
    let seeds_at = args.iter().position(|a| a == "--seeds");
    let seeds = match seeds_at.map(|i| args.get(i + 1)) {
        None => Vec::new(),
        Some(None) => return usage(),
        Some(Some(dir)) => match std::fs::read_dir(dir) {
            Ok(d) => d
                .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .collect(),
            Err(e) => {
                eprintln!("{dir}: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let known = replay::shader_modules(seeds.iter().map(|s| s.as_slice()));
    let history_at = args.iter().position(|a| a == "--history");
    let named = |i: &usize| {
        [seeds_at, history_at]
            .iter()
            .all(|at| at.is_none_or(|s| *i != s + 1))
    };
    let files: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with('-') && named(i))
        .map(|(_, a)| a)
        .collect();
    // (name, stream): the files, or the records of a fuzz run's history.
    let mut streams: Vec<(String, Vec<u8>)> = Vec::new();
    let mut failed = false;
    match history_at.map(|i| args.get(i + 1)) {
        Some(None) => return usage(),
        Some(Some(path)) => match std::fs::read(path) {
            Ok(h) => streams.extend(
                replay::history(&h)
                    .into_iter()
                    .enumerate()
                    .map(|(n, s)| (format!("{path}#{n}"), s.to_vec())),
            ),
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None if files.is_empty() => return usage(),
        None => {
            for path in files {
                match std::fs::read(path) {
                    Ok(s) => streams.push((path.clone(), s)),
                    Err(e) => {
                        eprintln!("{path}: {e}");
                        failed = true;
                    }
                }
            }
        }
    }
    let mut kept = None;
    if history_at.is_some() || args.iter().any(|a| a == "--kept") {
        match replay::Kept::new(policy) {
            Ok(k) => kept = Some(k),
            Err(e) => {
                eprintln!("airlock-replay: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    for (path, stream) in streams {
        let mut index = 0u64;
        let each = |f: &replay::Frame<'_>, o: &Outcome| {
            match o {
                Outcome::Rejected(why) => {
                    println!("  #{index} {}: rejected: {why}", name(f.header.command))
                }
                o if verbose => println!("  #{index} {}: {o:?}", name(f.header.command)),
                _ => {}
            }
            index += 1;
        };
        let tally = match kept.as_mut() {
            Some(k) => Ok(replay::play_kept(k, &stream, &known, each)),
            None => replay::play_with(&stream, policy, &known, each),
        };
        match tally {
            Ok(t) => println!(
                "{path}: {} frames: {} executed, {} rejected, {} unsupported, {} skipped{}",
                t.frames,
                t.executed,
                t.rejected,
                t.unsupported,
                t.skipped,
                if t.trailing > 0 {
                    format!(", {} trailing bytes (truncated or bad frame)", t.trailing)
                } else {
                    String::new()
                }
            ),
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
