//! Confinement of the server process once the host driver is initialised.
//!
//! This issue applies the first layer only; seccomp, landlock, namespaces and resource limits
//! are the sandbox work that follows (see the README).

use tracing::{info, warn};

/// Applied after the handshake, when the host driver is loaded.
pub fn after_init() {
    match rustix::thread::set_no_new_privs(true) {
        Ok(()) => info!("sandbox: no-new-privs set"),
        Err(e) => warn!("sandbox: no-new-privs failed: {e}"),
    }
}
