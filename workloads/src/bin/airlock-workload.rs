//! `airlock-workload <scenario> --out <file> [--validate] [--mdwe]`: runs one scenario on the
//! Vulkan driver the loader picks (VK_DRIVER_FILES), checks it against the CPU and writes its
//! result bytes to `file`. Exits 1 with the failing call or the wrong value on stderr; 2 on bad
//! usage.
//!
//! `--mdwe` hardens the process first (`PR_SET_MDWE`, refusing memory that turns executable after
//! being writable) and afterwards fails if `/proc/self/maps` holds an LLVM library or executable
//! anonymous memory.

use std::path::PathBuf;
use std::process::ExitCode;
use workloads::context::validation_messages;
use workloads::{scenarios, Context, Options};

fn usage(message: &str) -> ExitCode {
    let names: Vec<_> = scenarios::ALL.iter().map(|(n, _)| *n).collect();
    eprintln!("airlock-workload: {message}");
    eprintln!("usage: airlock-workload <scenario> --out <file> [--validate] [--mdwe]");
    eprintln!("scenarios: {}", names.join(" "));
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut name, mut out, mut options) = (None, None, Options::default());
    let mut mdwe = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = args.next().map(PathBuf::from),
            "--validate" => options.validate = true,
            "--mdwe" => mdwe = true,
            _ if name.is_none() && !arg.starts_with('-') => name = Some(arg),
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }
    let (Some(name), Some(out)) = (name, out) else {
        return usage("a scenario and --out are required");
    };
    let Some(scenario) = scenarios::find(&name) else {
        return usage(&format!("unknown scenario {name:?}"));
    };

    if mdwe {
        match workloads::hardening::refuse_exec_gain() {
            Ok(flags) => eprintln!("airlock-workload: PR_GET_MDWE = {flags}"),
            Err(e) => {
                eprintln!("airlock-workload {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let ctx = match Context::new(options) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("airlock-workload {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match scenario(&ctx) {
        Ok(report) => report,
        Err(e) => {
            eprintln!(
                "airlock-workload {name} on {}: {e}",
                ctx.driver_description()
            );
            // Not dropping the context: work may still wait on a signal that will not come,
            // and tearing down would wait for it.
            std::process::exit(1);
        }
    };
    if mdwe {
        match workloads::hardening::forbidden_mappings() {
            Ok(lines) if lines.is_empty() => {}
            Ok(lines) => {
                eprintln!(
                    "airlock-workload {name}: the hardened process maps:\n{}",
                    lines.join("\n")
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("airlock-workload {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Destroys everything, the instance last (Airlock writes AIRLOCK_STATS then).
    drop(ctx);
    let messages = validation_messages();
    if messages > 0 {
        eprintln!("airlock-workload {name}: {messages} validation messages");
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::write(&out, report.into_bytes()) {
        eprintln!("airlock-workload {name}: writing {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
