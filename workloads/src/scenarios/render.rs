//! The MSAA scene of [`crate::scene`] at 256x256, checked against the CPU.

use crate::{scene, Context, Report, Result};

const SIZE: u32 = 256;

pub fn run(ctx: &Context) -> Result<Report> {
    let pixels = scene::render(ctx, SIZE)?;
    scene::check(SIZE, &pixels)?;
    let mut report = Report::new();
    report.u64("size", SIZE.into()).values("rgba8", &pixels);
    Ok(report)
}
