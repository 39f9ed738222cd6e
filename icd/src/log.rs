//! The ICD's own log, filtered by `AIRLOCK_LOG` (default `warn`), written to stderr.
//!
//! A driver must not take over the application's global `tracing` subscriber, so the ICD keeps
//! a dispatcher of its own and logs through it.

use std::sync::OnceLock;
use tracing::Dispatch;

pub fn dispatch() -> &'static Dispatch {
    static D: OnceLock<Dispatch> = OnceLock::new();
    D.get_or_init(|| {
        let filter = std::env::var("AIRLOCK_LOG").unwrap_or_else(|_| "warn".into());
        let sub = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .finish();
        Dispatch::new(sub)
    })
}

macro_rules! log {
    ($level:ident, $($arg:tt)*) => {
        tracing::dispatcher::with_default($crate::log::dispatch(), || tracing::$level!($($arg)*))
    };
}
pub(crate) use log;
