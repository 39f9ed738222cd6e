//! Real Vulkan programs (ash, through the system's Vulkan loader) that run the same on any
//! conformant driver: native lavapipe, or lavapipe behind Airlock. Each scenario checks its own
//! results against the CPU and returns them in a fixed serialized form, so two runs on two drivers
//! can also be compared byte for byte.

pub mod context;
pub mod drivers;
pub mod error;
pub mod hardening;
pub mod memory;
pub mod pipeline;
pub mod present;
pub mod rect;
pub mod report;
pub mod scenarios;
pub mod scene;
pub mod shaders;

pub use context::{Context, Options};
pub use error::{Check, Error, Result};
pub use report::Report;
