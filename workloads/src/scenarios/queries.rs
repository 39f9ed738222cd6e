//! Precise occlusion queries around fully hidden, fully visible and partly hidden rectangles,
//! and two timestamps around the rendering; results read with 64-bit + WAIT, with and without
//! WITH_AVAILABILITY. Raw timestamps differ from run to run: only their order is reported.

use crate::error::{check_elements, ensure, Error};
use crate::rect::{expected_pixels, Offscreen, Rect};
use crate::{Check, Context, Report, Result};
use ash::vk;

const SIZE: u32 = 64;
const CLEAR: [u8; 4] = [0, 0, 0, 255];

fn query_pool(ctx: &Context, ty: vk::QueryType, count: u32) -> Result<vk::QueryPool> {
    let info = vk::QueryPoolCreateInfo::default()
        .query_type(ty)
        .query_count(count);
    unsafe { ctx.device.create_query_pool(&info, None) }
        .check("vkCreateQueryPool")
        .map(|p| ctx.own(p))
}

/// `vkGetQueryPoolResults` of all `count` queries, 64-bit, waiting; `T` is u64, or [u64; 2]
/// with WITH_AVAILABILITY.
fn results<T: Copy + Default>(
    ctx: &Context,
    pool: vk::QueryPool,
    count: usize,
    flags: vk::QueryResultFlags,
) -> Result<Vec<T>> {
    let mut out = vec![T::default(); count];
    let flags = flags | vk::QueryResultFlags::TYPE_64 | vk::QueryResultFlags::WAIT;
    unsafe { ctx.device.get_query_pool_results(pool, 0, &mut out, flags) }
        .check("vkGetQueryPoolResults")?;
    Ok(out)
}

/// Samples (one per pixel) that pass the depth test when `rect` is drawn after `before`.
fn visible_samples(rect: &Rect, before: &[Rect]) -> u64 {
    (0..SIZE)
        .flat_map(|y| (0..SIZE).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            rect.covers(SIZE, x, y)
                && before
                    .iter()
                    .filter(|b| b.covers(SIZE, x, y))
                    .all(|b| rect.depth < b.depth)
        })
        .count() as u64
}

pub fn run(ctx: &Context) -> Result<Report> {
    if !ctx.occlusion_query_precise {
        return Err(Error::Unsupported("occlusionQueryPrecise".into()));
    }
    if ctx.timestamp_valid_bits == 0 {
        return Err(Error::Unsupported("timestamps on the queue".into()));
    }
    let target = Offscreen::new(ctx, SIZE, true)?;
    let occluder = Rect::pixels(SIZE, [0, 0, 32, 64], [40, 40, 40, 255], 0.2);
    // Hidden, visible, partly hidden.
    let queried = [
        Rect::pixels(SIZE, [4, 4, 28, 28], [255, 0, 0, 255], 0.5),
        Rect::pixels(SIZE, [36, 4, 60, 28], [0, 255, 0, 255], 0.1),
        Rect::pixels(SIZE, [24, 40, 56, 56], [0, 0, 255, 255], 0.3),
    ];
    let occlusion = query_pool(ctx, vk::QueryType::OCCLUSION, queried.len() as u32)?;
    let timestamps = query_pool(ctx, vk::QueryType::TIMESTAMP, 2)?;
    ctx.run_commands(|cmd| {
        let d = &ctx.device;
        unsafe {
            d.cmd_reset_query_pool(cmd, occlusion, 0, queried.len() as u32);
            d.cmd_reset_query_pool(cmd, timestamps, 0, 2);
            d.cmd_write_timestamp(cmd, vk::PipelineStageFlags::TOP_OF_PIPE, timestamps, 0);
        }
        target.begin(ctx, cmd, CLEAR);
        target.draw(ctx, cmd, &occluder);
        for (i, rect) in queried.iter().enumerate() {
            unsafe { d.cmd_begin_query(cmd, occlusion, i as u32, vk::QueryControlFlags::PRECISE) };
            target.draw(ctx, cmd, rect);
            unsafe { d.cmd_end_query(cmd, occlusion, i as u32) };
        }
        target.end(ctx, cmd);
        unsafe {
            d.cmd_write_timestamp(cmd, vk::PipelineStageFlags::BOTTOM_OF_PIPE, timestamps, 1)
        };
        Ok(())
    })?;

    let drawn: Vec<Rect> = std::iter::once(occluder).chain(queried).collect();
    let expected: Vec<u64> = (1..drawn.len())
        .map(|i| visible_samples(&drawn[i], &drawn[..i]))
        .collect();
    let counts: Vec<u64> = results(ctx, occlusion, queried.len(), vk::QueryResultFlags::empty())?;
    check_elements("occlusion query results", &counts, |i| expected[i])?;
    // Availability is any non-zero value.
    let with_availability: Vec<[u64; 2]> = results::<[u64; 2]>(
        ctx,
        occlusion,
        queried.len(),
        vk::QueryResultFlags::WITH_AVAILABILITY,
    )?
    .into_iter()
    .map(|[count, available]| [count, (available != 0) as u64])
    .collect();
    check_elements(
        "occlusion results with availability",
        &with_availability,
        |i| [expected[i], 1],
    )?;

    let times: Vec<u64> = results(ctx, timestamps, 2, vk::QueryResultFlags::empty())?;
    let times_available: Vec<[u64; 2]> =
        results(ctx, timestamps, 2, vk::QueryResultFlags::WITH_AVAILABILITY)?;
    let timestamps_available = times_available.iter().all(|t| t[1] != 0);
    // Timestamps wrap at timestampValidBits; a wrap between two adjacent ones is not plausible.
    let ordered = times[1] >= times[0];
    ensure(ordered, || format!("timestamps out of order: {times:?}"))?;
    ensure(timestamps_available, || {
        format!("timestamps unavailable after WAIT: {times_available:?}")
    })?;
    ensure(times_available[1][0] >= times_available[0][0], || {
        format!("timestamps (WITH_AVAILABILITY) out of order: {times_available:?}")
    })?;

    let pixels = target.pixels();
    let want = expected_pixels(SIZE, CLEAR, &drawn, true);
    check_elements("pixels", &pixels, |i| want[i])?;

    let mut report = Report::new();
    report
        .values("occlusion", &counts)
        .values("occlusion_with_availability", &with_availability)
        .flag("timestamps_ordered", ordered)
        .flag("timestamps_available", timestamps_available)
        .values("rgba8", &pixels);
    Ok(report)
}
