//! airlock-cts: runs the Khronos Vulkan CTS through Airlock and on native lavapipe with
//! deqp-runner, and reports where the two differ.

pub mod caselist;
pub mod cli;
pub mod compare;
pub mod env;
pub mod expectations;
pub mod report;
pub mod results;
pub mod run;
