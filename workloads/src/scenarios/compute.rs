//! A compute shader over a 64 MiB storage buffer; every element checked.

use crate::error::check_elements;
use crate::memory::{Access, Location};
use crate::{shaders, Context, Report, Result};
use ash::vk;

const COUNT: u32 = 16 << 20;
const GROUP_SIZE: u32 = 256;
/// 16M / 256 workgroups exceed the guaranteed maxComputeWorkGroupCount[0] (65535): use a 2D grid.
const GROUPS_X: u32 = 256;

fn input(i: u32) -> u32 {
    i.wrapping_mul(2_654_435_761).rotate_left(13) ^ 0xA5A5_5A5A
}

/// What compute.comp computes.
pub fn expected(x: u32, i: u32) -> u32 {
    (x ^ i.wrapping_mul(0x9E37_79B9)).wrapping_add(x.rotate_left(7))
}

pub fn run(ctx: &Context) -> Result<Report> {
    let size = u64::from(COUNT) * 4;
    let usage = vk::BufferUsageFlags::STORAGE_BUFFER;
    let src = ctx.buffer(size, usage, Location::Host)?;
    let dst = ctx.buffer(size, usage, Location::Host)?;
    src.fill_words(|i| input(i as u32));
    let kernel = ctx.kernel(shaders::COMPUTE, 2, 4, vk::PipelineCache::null())?;
    let set = ctx.kernel_set(&kernel, &[&src, &dst])?;
    ctx.run_commands(|cmd| {
        let groups = [GROUPS_X, COUNT / (GROUP_SIZE * GROUPS_X), 1];
        kernel.dispatch(ctx, cmd, set, &COUNT, groups);
        ctx.memory_barrier(cmd, Access::COMPUTE_WRITE, Access::HOST_READ);
        Ok(())
    })?;
    let out: Vec<u32> = dst.read();
    check_elements("compute output", &out, |i| {
        expected(input(i as u32), i as u32)
    })?;
    let mut report = Report::new();
    report.values("out", &out);
    Ok(report)
}
