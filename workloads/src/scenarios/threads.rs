//! Eight threads, each with its own command pool, record 1000 commands at the same time (fills,
//! and every tenth a dispatch), each into its own part of one buffer; one submission runs them.

use crate::error::check_elements;
use crate::memory::{Access, Buffer, Location};
use crate::pipeline::Kernel;
use crate::shaders::Pattern;
use crate::{Context, Report, Result};
use ash::vk;
use std::sync::Barrier;

const THREADS: u32 = 8;
const COMMANDS: u32 = 1000;
/// Words each command writes.
const CHUNK: u32 = 64;
const DISPATCH_EVERY: u32 = 10;

/// What chunk `chunk` (of thread `thread`) holds: a fill value, or a pattern.
enum Chunk {
    Fill(u32),
    Dispatch(Pattern),
}

fn chunk(thread: u32, command: u32) -> Chunk {
    let index = thread * COMMANDS + command;
    if command % DISPATCH_EVERY == DISPATCH_EVERY - 1 {
        Chunk::Dispatch(Pattern {
            offset: index * CHUNK,
            count: CHUNK,
            mul: thread + 1,
            add: index,
        })
    } else {
        Chunk::Fill(index.wrapping_mul(0x0101_0101) ^ thread)
    }
}

fn record(
    ctx: &Context,
    kernel: &Kernel,
    set: vk::DescriptorSet,
    buffer: &Buffer,
    thread: u32,
    start: &Barrier,
) -> Result<vk::CommandBuffer> {
    let pool = ctx.command_pool()?;
    let cmd = ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    start.wait();
    ctx.begin(cmd, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
    kernel.bind(ctx, cmd, set);
    for command in 0..COMMANDS {
        match chunk(thread, command) {
            Chunk::Fill(value) => {
                let offset = u64::from((thread * COMMANDS + command) * CHUNK) * 4;
                unsafe {
                    ctx.device.cmd_fill_buffer(
                        cmd,
                        buffer.handle,
                        offset,
                        u64::from(CHUNK) * 4,
                        value,
                    )
                };
            }
            Chunk::Dispatch(p) => {
                kernel.push(ctx, cmd, 0, bytemuck::bytes_of(&p));
                unsafe { ctx.device.cmd_dispatch(cmd, 1, 1, 1) };
            }
        }
    }
    let writes = Access(
        vk::PipelineStageFlags::TRANSFER | vk::PipelineStageFlags::COMPUTE_SHADER,
        vk::AccessFlags::TRANSFER_WRITE | vk::AccessFlags::SHADER_WRITE,
    );
    ctx.memory_barrier(cmd, writes, Access::HOST_READ);
    ctx.end(cmd)?;
    Ok(cmd)
}

pub fn run(ctx: &Context) -> Result<Report> {
    let words = THREADS * COMMANDS * CHUNK;
    let usage = vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_DST;
    let buffer = ctx.buffer(u64::from(words) * 4, usage, Location::Host)?;
    let kernel = Pattern::kernel(ctx, vk::PipelineCache::null())?;
    let set = ctx.kernel_set(&kernel, &[&buffer])?;
    // All threads start recording together.
    let start = Barrier::new(THREADS as usize);
    let cmds = super::on_threads(THREADS, |t| record(ctx, &kernel, set, &buffer, t, &start))?;
    ctx.submit_and_wait(&cmds)?;

    let got: Vec<u32> = buffer.read();
    check_elements("buffer", &got, |i| {
        let (index, j) = (i as u32 / CHUNK, i as u32 % CHUNK);
        match chunk(index / COMMANDS, index % COMMANDS) {
            Chunk::Fill(value) => value,
            Chunk::Dispatch(p) => p.value(j),
        }
    })?;
    let mut report = Report::new();
    report.values("buffer", &got);
    Ok(report)
}
