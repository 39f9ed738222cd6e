//! One file per scenario. Each runs on a fresh [`Context`], checks its results against the CPU
//! and returns the deterministic part of them.

use crate::{Context, Report, Result};

pub mod allocator;
pub mod compute;
pub mod descriptor_pools;
pub mod dynamic_rendering;
pub mod external_memory;
pub mod ignored;
pub mod layout_lifetime;
pub mod math;
pub mod ordering;
pub mod pipeline_cache;
pub mod pipeline_creation;
pub mod private_data;
pub mod push_constants;
pub mod queries;
pub mod render;
pub mod rewritten;
pub mod secondary;
pub mod templates;
pub mod threads;
pub mod timeline;
pub mod zero_copy;

pub type Scenario = fn(&Context) -> Result<Report>;

pub const ALL: [(&str, Scenario); 21] = [
    ("compute", compute::run),
    ("render", render::run),
    ("dynamic_rendering", dynamic_rendering::run),
    ("timeline", timeline::run),
    ("queries", queries::run),
    ("templates", templates::run),
    ("secondary", secondary::run),
    ("push_constants", push_constants::run),
    ("pipeline_cache", pipeline_cache::run),
    ("threads", threads::run),
    ("ordering", ordering::run),
    ("layout_lifetime", layout_lifetime::run),
    ("zero_copy", zero_copy::run),
    ("external_memory", external_memory::run),
    ("private_data", private_data::run),
    ("math", math::run),
    ("ignored", ignored::run),
    ("rewritten", rewritten::run),
    ("descriptor_pools", descriptor_pools::run),
    ("allocator", allocator::run),
    ("pipeline_creation", pipeline_creation::run),
];

/// Runs `f(0)` … `f(n - 1)` on threads of their own, all at once; their results in that order.
pub fn on_threads<T: Send>(n: u32, f: impl Fn(u32) -> Result<T> + Sync) -> Result<Vec<T>> {
    std::thread::scope(|s| {
        let f = &f;
        let threads: Vec<_> = (0..n).map(|t| s.spawn(move || f(t))).collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

pub fn find(name: &str) -> Option<Scenario> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
