//! Generated server code.
pub mod calls;
