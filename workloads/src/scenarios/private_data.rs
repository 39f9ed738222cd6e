//! Private data (core in Vulkan 1.3): 64-bit values the application attaches to objects of every
//! kind, dispatchable (device, queue, command buffers) or not (a fence, a slot itself), under
//! several slots. Values start at 0, go with a destroyed slot, and do not pass from a freed
//! command buffer to the next one even where it gets the freed one's handle. Threads tag objects
//! of their own at once.

use crate::error::{check_elements, ensure};
use crate::{Check, Context, Report, Result};
use ash::vk::{self, Handle};

const THREADS: u32 = 4;
const ROUNDS: u64 = 500;

fn slot(ctx: &Context) -> Result<vk::PrivateDataSlot> {
    let info = vk::PrivateDataSlotCreateInfo::default();
    unsafe { ctx.device.create_private_data_slot(&info, None) }.check("vkCreatePrivateDataSlot")
}

fn set<T: Handle>(ctx: &Context, object: T, slot: vk::PrivateDataSlot, value: u64) -> Result<()> {
    unsafe { ctx.device.set_private_data(object, slot, value) }.check("vkSetPrivateData")
}

fn get<T: Handle>(ctx: &Context, object: T, slot: vk::PrivateDataSlot) -> u64 {
    unsafe { ctx.device.get_private_data(object, slot) }
}

pub fn run(ctx: &Context) -> Result<Report> {
    let device = ctx.device.handle();
    let queue = unsafe { ctx.device.get_device_queue(ctx.queue_family, 0) };
    let fence = ctx.fence(false)?;
    let pool = ctx.command_pool()?;
    let cmds = ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, 2)?;
    let (a, b) = (slot(ctx)?, slot(ctx)?);

    // Every object under slot a, then slot b as an object itself.
    let unset = [
        get(ctx, device, a),
        get(ctx, queue, a),
        get(ctx, fence, a),
        get(ctx, cmds[0], a),
        get(ctx, b, a),
    ];
    check_elements("values never set", &unset, |_| 0)?;
    set(ctx, device, a, 1)?;
    set(ctx, queue, a, 2)?;
    set(ctx, fence, a, 3)?;
    set(ctx, cmds[0], a, 4)?;
    set(ctx, cmds[1], a, 5)?;
    set(ctx, b, a, 6)?;
    set(ctx, device, b, 11)?;
    set(ctx, fence, b, u64::MAX)?;
    set(ctx, fence, a, 33)?;
    set(ctx, queue, b, 12)?;
    set(ctx, queue, b, 0)?;
    let values = [
        get(ctx, device, a),
        get(ctx, queue, a),
        get(ctx, fence, a),
        get(ctx, cmds[0], a),
        get(ctx, cmds[1], a),
        get(ctx, b, a),
        get(ctx, device, b),
        get(ctx, queue, b),
        get(ctx, fence, b),
    ];
    let want = [1, 2, 33, 4, 5, 6, 11, 0, u64::MAX];
    check_elements("values set", &values, |i| want[i])?;

    // A freed command buffer's value is not the next one's, whatever handle that one gets.
    unsafe { ctx.device.free_command_buffers(pool, &cmds[..1]) };
    let next = ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    let after_free = [get(ctx, next, a), get(ctx, cmds[1], a)];
    check_elements("after a free", &after_free, |i| [0, 5][i])?;

    // A destroyed slot takes its values along; a new slot starts empty.
    unsafe { ctx.device.destroy_private_data_slot(a, None) };
    let c = slot(ctx)?;
    let after_destroy = [
        get(ctx, device, c),
        get(ctx, fence, c),
        get(ctx, device, b),
        get(ctx, fence, b),
    ];
    check_elements("after destroying a slot", &after_destroy, |i| {
        [0, 0, 11, u64::MAX][i]
    })?;

    let threaded = super::on_threads(THREADS, |t| tag(ctx, [b, c], t.into()))?;
    unsafe {
        ctx.device.destroy_private_data_slot(b, None);
        ctx.device.destroy_private_data_slot(c, None);
    }

    let mut report = Report::new();
    report
        .values("unset", &unset)
        .values("values", &values)
        .values("after_free", &after_free)
        .values("after_destroy", &after_destroy)
        .values("threaded", &threaded.concat());
    Ok(report)
}

/// Thread `t` sets and reads back values on a fence of its own under both slots; returns the
/// last values.
fn tag(ctx: &Context, slots: [vk::PrivateDataSlot; 2], t: u64) -> Result<Vec<u64>> {
    let fence = ctx.fence(false)?;
    for i in 0..ROUNDS {
        let values = [t << 32 | i, !(t << 32 | i)];
        for (slot, v) in slots.iter().zip(values) {
            set(ctx, fence, *slot, v)?;
        }
        for (slot, v) in slots.iter().zip(values) {
            let got = get(ctx, fence, *slot);
            ensure(got == v, || {
                format!("thread {t}, round {i}: read {got:#x}, set {v:#x}")
            })?;
        }
    }
    Ok(slots.iter().map(|s| get(ctx, fence, *s)).collect())
}
