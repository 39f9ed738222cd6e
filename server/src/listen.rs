//! `airlock-server --listen <socket>`: a launcher that starts one server per client that
//! connects (`AIRLOCK_SOCKET=<socket>` in the client).
//!
//! A client process that hardened itself with `PR_SET_MDWE` passes that restriction on to any
//! process it starts, and the host driver's JIT cannot run under it; a server started by this
//! launcher descends from the launcher instead. Each server is still one process per client
//! and exits when its client goes.

use std::os::fd::AsFd;
use std::path::Path;
use tracing::{info, warn};
use wire::control;

pub fn run(path: &Path) -> Result<(), String> {
    let listener = control::listen(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("finding airlock-server: {e}"))?;
    info!(socket = %path.display(), "listening");
    let mut servers: Vec<std::process::Child> = Vec::new();
    loop {
        let conn = control::accept(listener.as_fd()).map_err(|e| format!("accept: {e}"))?;
        // Reap the servers whose clients have gone.
        servers.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        match control::spawn_server(&exe, conn.as_fd()) {
            Ok(child) => {
                info!(server_pid = child.id(), "client connected");
                servers.push(child);
            }
            Err(e) => warn!("cannot start a server for a client: {e}"),
        }
    }
}
