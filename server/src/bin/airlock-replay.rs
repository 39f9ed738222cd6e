//! `airlock-replay <stream>...`: plays streams recorded with `AIRLOCK_RECORD=<file>` against a
//! fresh server state each, in this process (no client, no sandbox), and prints what became of
//! their frames. `-v` prints every frame; `--fuzz` skips what the fuzz target skips, and
//! `--seeds DIR` names the seed streams whose shader modules it compiles (as the fuzz target
//! does with `fuzz/seeds/server_stream`; without it, `--fuzz` compiles none).
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
        "usage: airlock-replay [-v] [--fuzz [--seeds DIR]] <stream recorded with AIRLOCK_RECORD>..."
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
    let files: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with('-') && seeds_at.is_none_or(|s| *i != s + 1))
        .map(|(_, a)| a)
        .collect();
    if files.is_empty() {
        return usage();
    }
    let mut failed = false;
    for path in files {
        let stream = match std::fs::read(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
                continue;
            }
        };
        let mut index = 0u64;
        let tally = replay::play_with(&stream, policy, &known, |f, o| {
            match o {
                Outcome::Rejected(why) => {
                    println!("  #{index} {}: rejected: {why}", name(f.header.command))
                }
                o if verbose => println!("  #{index} {}: {o:?}", name(f.header.command)),
                _ => {}
            }
            index += 1;
        });
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
