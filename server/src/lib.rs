//! The server's modules as a library: `airlock-server` (`main.rs`), and what runs the request
//! path without a client: the fuzz targets (`fuzz/`), `airlock-replay` and the fuzz regression
//! tests.

pub mod command_buffer;
pub mod conn;
pub mod descriptor;
pub mod device;
pub mod dispatch;
pub mod external;
mod generated;
pub mod host;
pub mod image;
pub mod indices;
pub mod instance;
pub mod limits;
pub mod listen;
pub mod memory;
pub mod objects;
pub mod pipeline;
pub mod private_data;
pub mod query;
pub mod queue;
pub mod replay;
pub mod sampler;
pub mod sandbox;
pub mod tables;
pub mod util;
pub mod validation;
