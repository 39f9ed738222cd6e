//! One file per scenario. Each runs on a fresh [`Context`], checks its results against the CPU
//! and returns the deterministic part of them.

use crate::{Context, Report, Result};

pub mod compute;
pub mod dynamic_rendering;
pub mod external_memory;
pub mod layout_lifetime;
pub mod ordering;
pub mod pipeline_cache;
pub mod push_constants;
pub mod queries;
pub mod render;
pub mod secondary;
pub mod templates;
pub mod threads;
pub mod timeline;
pub mod zero_copy;

pub type Scenario = fn(&Context) -> Result<Report>;

pub const ALL: [(&str, Scenario); 14] = [
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
];

pub fn find(name: &str) -> Option<Scenario> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
