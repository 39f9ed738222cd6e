//! Fill, update, dispatch, barrier and copy commands recorded in secondary command buffers and
//! run from a primary with vkCmdExecuteCommands.

use crate::error::check_elements;
use crate::memory::{Access, Location};
use crate::shaders::Pattern;
use crate::{Check, Context, Report, Result};
use ash::vk;

/// Words in each of the buffer's four regions.
const REGION: u32 = 1024;
const FILL: u32 = 0xA5A5_A5A5;

fn updated(i: u32) -> u32 {
    i.wrapping_mul(i) ^ 0xDEAD
}

pub fn run(ctx: &Context) -> Result<Report> {
    let bytes = |words: u32| u64::from(words) * 4;
    let usage = vk::BufferUsageFlags::STORAGE_BUFFER
        | vk::BufferUsageFlags::TRANSFER_SRC
        | vk::BufferUsageFlags::TRANSFER_DST;
    let buffer = ctx.buffer(bytes(4 * REGION), usage, Location::Host)?;
    let kernel = Pattern::kernel(ctx, vk::PipelineCache::null())?;
    let set = ctx.kernel_set(&kernel, &[&buffer])?;
    let pattern = Pattern {
        offset: 2 * REGION,
        count: REGION,
        mul: 3,
        add: 7,
    };
    let half = REGION / 2;

    let pool = ctx.command_pool()?;
    let secondaries = ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::SECONDARY, 3)?;
    let inheritance = vk::CommandBufferInheritanceInfo::default();
    let begin_info = vk::CommandBufferBeginInfo::default().inheritance_info(&inheritance);
    let d = &ctx.device;
    for &s in &secondaries {
        unsafe { d.begin_command_buffer(s, &begin_info) }.check("vkBeginCommandBuffer")?;
    }
    let update: Vec<u32> = (0..REGION).map(updated).collect();
    unsafe {
        d.cmd_fill_buffer(secondaries[0], buffer.handle, 0, bytes(REGION), FILL);
        d.cmd_update_buffer(
            secondaries[0],
            buffer.handle,
            bytes(REGION),
            bytemuck::cast_slice(&update),
        );
    }
    kernel.dispatch(ctx, secondaries[1], set, &pattern, pattern.groups());
    // Ordered after the other two secondaries by this barrier, recorded in the secondary itself.
    let writes = Access(
        vk::PipelineStageFlags::TRANSFER | vk::PipelineStageFlags::COMPUTE_SHADER,
        vk::AccessFlags::TRANSFER_WRITE | vk::AccessFlags::SHADER_WRITE,
    );
    ctx.memory_barrier(secondaries[2], writes, Access::TRANSFER_READ);
    let copies = [
        vk::BufferCopy::default()
            .src_offset(0)
            .dst_offset(bytes(3 * REGION))
            .size(bytes(half)),
        vk::BufferCopy::default()
            .src_offset(bytes(2 * REGION + half))
            .dst_offset(bytes(3 * REGION + half))
            .size(bytes(half)),
    ];
    unsafe { d.cmd_copy_buffer(secondaries[2], buffer.handle, buffer.handle, &copies) };
    ctx.memory_barrier(secondaries[2], Access::TRANSFER_WRITE, Access::HOST_READ);
    for &s in &secondaries {
        ctx.end(s)?;
    }

    let primary = ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    ctx.begin(primary, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
    unsafe {
        d.cmd_execute_commands(primary, &secondaries[..2]);
        d.cmd_execute_commands(primary, &secondaries[2..]);
    }
    ctx.end(primary)?;
    ctx.submit_and_wait(&[primary])?;

    let got: Vec<u32> = buffer.read();
    check_elements("buffer", &got, |i| {
        let (region, j) = (i as u32 / REGION, i as u32 % REGION);
        match region {
            0 => FILL,
            1 => updated(j),
            2 => pattern.value(j),
            _ if j < half => FILL,
            _ => pattern.value(j),
        }
    })?;
    let mut report = Report::new();
    report.values("buffer", &got);
    Ok(report)
}
