//! A 128-byte push-constant block filled piecewise by vkCmdPushConstants calls at several offsets
//! and sizes, then partly overwritten between dispatches: the parts not pushed again must keep
//! their values. A CPU copy of the block receives the same writes.

use crate::error::check_elements;
use crate::memory::{Access, Location};
use crate::{shaders, Context, Report, Result};
use ash::vk;
use bytemuck::{Pod, Zeroable};
use std::mem::offset_of;

const GROUP_SIZE: u32 = 64;

/// push_constants.comp's block.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    base: u32,
    mul: u32,
    add: [u32; 2],
    scale: [f32; 4],
    table: [u32; 24],
}

impl Params {
    fn expected(&self, i: u32) -> u32 {
        let j = i as usize;
        i.wrapping_mul(self.mul)
            .wrapping_add(self.add[0])
            .wrapping_add(self.add[1].wrapping_mul(self.table[j % 24]))
            .wrapping_add((self.scale[j % 4] * i as f32) as u32)
    }
}

/// Byte ranges pushed before each dispatch, as (offset, bytes).
fn updates() -> Vec<Vec<(usize, Vec<u8>)>> {
    let full = Params {
        base: 0,
        mul: 3,
        add: [17, 5],
        scale: [0.5, 1.25, 3.0, 0.75],
        table: std::array::from_fn(|i| (i * i) as u32 + 1),
    };
    let bytes = bytemuck::bytes_of(&full);
    let piece = |start: usize, end: usize| (start, bytes[start..end].to_vec());
    let value = |offset: usize, v: &[u32]| (offset, bytemuck::cast_slice(v).to_vec());
    vec![
        vec![piece(0, 8), piece(8, 16), piece(16, 32), piece(32, 128)],
        vec![
            value(offset_of!(Params, base), &[GROUP_SIZE]),
            value(offset_of!(Params, add), &[1000]),
        ],
        vec![
            value(offset_of!(Params, base), &[2 * GROUP_SIZE]),
            value(offset_of!(Params, table) + 10 * 4, &[77, 78]),
            (
                offset_of!(Params, scale) + 4,
                bytemuck::bytes_of(&2.5f32).to_vec(),
            ),
        ],
    ]
}

pub fn run(ctx: &Context) -> Result<Report> {
    let updates = updates();
    let words = GROUP_SIZE as usize * updates.len();
    let out = ctx.buffer(
        words as u64 * 4,
        vk::BufferUsageFlags::STORAGE_BUFFER,
        Location::Host,
    )?;
    let kernel = ctx.kernel(
        shaders::PUSH_CONSTANTS,
        1,
        std::mem::size_of::<Params>() as u32,
        vk::PipelineCache::null(),
    )?;
    let set = ctx.kernel_set(&kernel, &[&out])?;
    let mut mirror = Params::zeroed();
    let mut snapshots = Vec::new();
    ctx.run_commands(|cmd| {
        kernel.bind(ctx, cmd, set);
        for pushes in &updates {
            for (offset, bytes) in pushes {
                kernel.push(ctx, cmd, *offset as u32, bytes);
                bytemuck::bytes_of_mut(&mut mirror)[*offset..*offset + bytes.len()]
                    .copy_from_slice(bytes);
            }
            snapshots.push(mirror);
            unsafe { ctx.device.cmd_dispatch(cmd, 1, 1, 1) };
        }
        ctx.memory_barrier(cmd, Access::COMPUTE_WRITE, Access::HOST_READ);
        Ok(())
    })?;
    let got: Vec<u32> = out.read();
    check_elements("push-constant results", &got, |i| {
        let params = &snapshots[i / GROUP_SIZE as usize];
        params.expected(i as u32 % GROUP_SIZE)
    })?;
    let mut report = Report::new();
    report.values("out", &got);
    Ok(report)
}
