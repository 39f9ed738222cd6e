//! Generated ICD code.
pub mod entry;
