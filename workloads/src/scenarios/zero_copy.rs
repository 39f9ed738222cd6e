//! 32 MiB of HOST_VISIBLE | HOST_COHERENT memory written only through vkMapMemory's pointer (no
//! flush, no transfer command) and unmapped, then reduced by a compute shader; every reduction
//! checked.

use crate::error::check_elements;
use crate::memory::{Access, Location};
use crate::{shaders, Context, Report, Result};
use ash::vk;

const SIZE: u64 = 32 << 20;
/// Words each invocation of zero_copy.comp reduces, and its workgroup size.
const CHUNK: usize = 1024;
const GROUP_SIZE: u32 = 64;

fn word(i: usize) -> u32 {
    (i as u32).wrapping_mul(0x2545_F491) ^ (i as u32 >> 7)
}

/// zero_copy.comp's sum, xor and position-weighted sum of one chunk.
fn reduce(chunk: usize) -> [u32; 3] {
    (0..CHUNK).fold([0, 0, 0], |[sum, xor, weighted], j| {
        let x = word(chunk * CHUNK + j);
        [
            sum.wrapping_add(x),
            xor ^ x,
            weighted.wrapping_add(x.wrapping_mul(j as u32 + 1)),
        ]
    })
}

pub fn run(ctx: &Context) -> Result<Report> {
    let chunks = SIZE as usize / 4 / CHUNK;
    let usage = vk::BufferUsageFlags::STORAGE_BUFFER;
    let mut input = ctx.buffer(SIZE, usage, Location::Host)?;
    let output = ctx.buffer(chunks as u64 * 3 * 4, usage, Location::Host)?;
    let kernel = ctx.kernel(shaders::ZERO_COPY, 2, 0, vk::PipelineCache::null())?;
    let set = ctx.kernel_set(&kernel, &[&input, &output])?;
    // vkQueueSubmit makes these host writes visible to the device: coherent memory needs no
    // flush and no barrier.
    input.fill_words(word);
    // Unmapping must not lose what was written.
    input.unmap(ctx);
    ctx.run_commands(|cmd| {
        kernel.dispatch(ctx, cmd, set, &(), [chunks as u32 / GROUP_SIZE, 1, 1]);
        ctx.memory_barrier(cmd, Access::COMPUTE_WRITE, Access::HOST_READ);
        Ok(())
    })?;
    let got: Vec<[u32; 3]> = output.read();
    check_elements("chunk reductions", &got, reduce)?;
    let mut report = Report::new();
    report.values("reductions", &got);
    Ok(report)
}
