use clap::Parser;
use cts::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Run(args) => cts::run::run(args),
        Command::Compare(args) => cts::run::compare(args),
        Command::Merge(args) => cts::run::merge(args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("airlock-cts: {err:#}");
            ExitCode::from(2)
        }
    }
}
