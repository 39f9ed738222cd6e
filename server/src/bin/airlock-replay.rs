//! `airlock-replay <stream>...`: plays streams recorded with `AIRLOCK_RECORD=<file>` against a
//! fresh server state each, in this process (no client, no sandbox), and prints what became of
//! their frames. `-v` prints every frame; `--fuzz` skips what the fuzz target skips.
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
        None => format!("#{command}"),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let policy = if args.iter().any(|a| a == "--fuzz") {
        Policy::Fuzz
    } else {
        Policy::Replay
    };
    let files: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if files.is_empty() {
        eprintln!("usage: airlock-replay [-v] [--fuzz] <stream recorded with AIRLOCK_RECORD>...");
        return ExitCode::from(2);
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
        let tally = replay::play(&stream, policy, |f, o| {
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
