//! Generated server code.
pub mod calls;
pub mod views;
