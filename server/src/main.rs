//! `airlock-server`: runs the host Vulkan driver for one client process.
//!
//! Started by the ICD with the control socket as an inherited descriptor (`--fd N`); serves that
//! one client and exits when it goes away. Or, with `--listen <socket>`, a launcher that starts
//! such a server for every client connecting there.

use server::{conn, listen, sandbox};

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;
use tracing::error;

fn main() -> ExitCode {
    let filter = std::env::var("AIRLOCK_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args: Vec<String> = std::env::args().collect();
    // `--sandbox-selftest`, `--sandbox-policy`: see SECURITY.md.
    if let Some(code) = sandbox::command(&args) {
        return code;
    }
    if let Some(path) = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
    {
        return match listen::run(std::path::Path::new(path)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("airlock-server --listen: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let fd = match args
        .iter()
        .position(|a| a == "--fd")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<i32>().ok())
    {
        Some(fd) if fd > 2 => fd,
        _ => {
            eprintln!("usage: airlock-server --fd <control socket descriptor>   (as libvulkan_airlock.so starts it)\n       airlock-server --listen <socket path>   (then AIRLOCK_SOCKET=<socket path> in the client)");
            return ExitCode::from(2);
        }
    };
    // No PR_SET_PDEATHSIG: it fires when the client *thread* that started us exits. The
    // socket's hang-up, seen by the reader loop, ends the server when the client goes.
    // SAFETY: the ICD passed us this descriptor, open and ours alone.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // Before any thread exists: namespaces, and the environment the host driver will read.
    if let Err(e) = sandbox::early(Some(std::os::fd::AsFd::as_fd(&sock))) {
        error!("airlock-server: {e}");
        return ExitCode::FAILURE;
    }
    match conn::serve(sock) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("airlock-server: {e}");
            ExitCode::FAILURE
        }
    }
}
