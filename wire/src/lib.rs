//! The Airlock wire protocol: what crosses between the ICD and the server, and how.
//!
//! - [`shm`], [`ring`], [`channel`]: the shared-memory byte rings that carry commands and replies.
//! - [`control`]: the Unix socket for the handshake and file descriptors.
//! - [`codec`], [`desc`], [`interp`]: how Vulkan calls become bytes and back, driven by the
//!   tables in [`generated`].
//! - [`ignored`]: the members Vulkan says are ignored, which the client's encoder never sends.
//! - [`feedback`]: status words the server writes and the client reads (fences, events …).
//! - [`private`]: the few requests Airlock adds (memory handover, recorded command batches).

pub mod channel;
pub mod codec;
pub mod control;
pub mod desc;
pub mod feedback;
pub mod frame;
pub mod generated;
pub mod ignored;
pub mod interp;
pub mod private;
pub mod ring;
pub mod shm;
