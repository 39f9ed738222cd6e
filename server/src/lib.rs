//! The server's modules as a library, for what runs the request path without a client: the fuzz
//! targets (`fuzz/`), `airlock-replay` and the fuzz regression tests. `airlock-server`
//! (`main.rs`) declares the same modules itself; keep the two lists alike.

pub mod conn;
pub mod deferred;
pub mod dispatch;
mod generated;
pub mod host;
pub mod indices;
pub mod limits;
pub mod listen;
pub mod memory;
pub mod objects;
pub mod recorded;
pub mod replay;
pub mod sandbox;
pub mod validation;
