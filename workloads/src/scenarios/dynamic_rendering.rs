//! Two overlapping rectangles drawn inside vkCmdBeginRendering/vkCmdEndRendering (core 1.3
//! dynamic rendering, no render pass object); every pixel checked.

use crate::error::check_elements;
use crate::rect::{expected_pixels, Offscreen, Rect};
use crate::{Context, Report, Result};

const SIZE: u32 = 64;
const CLEAR: [u8; 4] = [25, 25, 38, 255];

pub fn run(ctx: &Context) -> Result<Report> {
    let target = Offscreen::new(ctx, SIZE, false)?;
    let rects = [
        Rect::pixels(SIZE, [0, 0, 32, 64], [255, 0, 0, 255], 0.5),
        Rect::pixels(SIZE, [16, 8, 48, 40], [0, 204, 51, 255], 0.5),
    ];
    ctx.run_commands(|cmd| {
        target.begin(ctx, cmd, CLEAR);
        for r in &rects {
            target.draw(ctx, cmd, r);
        }
        target.end(ctx, cmd);
        Ok(())
    })?;
    let pixels = target.pixels();
    let want = expected_pixels(SIZE, CLEAR, &rects, false);
    check_elements("pixels", &pixels, |i| want[i])?;
    let mut report = Report::new();
    report.values("rgba8", &pixels);
    Ok(report)
}
