//! Solid rectangles drawn with dynamic rendering (`vkCmdBeginRendering`) into an offscreen
//! colour image with an optional depth image, read back to the host, and the same picture
//! computed on the CPU.

use crate::context::Context;
use crate::error::Result;
use crate::memory::{Access, Buffer, Image, Location};
use crate::pipeline::{GraphicsDesc, Target};
use crate::shaders;
use ash::vk;
use bytemuck::{Pod, Zeroable};

pub const COLOR_FORMAT: vk::Format = vk::Format::R8G8B8A8_UNORM;
pub const DEPTH_FORMAT: vk::Format = vk::Format::D32_SFLOAT;

/// The push constants of rect.vert/rect.frag: an axis-aligned rectangle in normalized device
/// coordinates, at one depth, in one colour.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Rect {
    /// x0, y0, x1, y1.
    pub bounds: [f32; 4],
    pub color: [f32; 4],
    pub depth: f32,
}

impl Rect {
    /// Bounds in pixels of an image `size` wide and high, so that coverage is exact.
    pub fn pixels(size: u32, [x0, y0, x1, y1]: [u32; 4], rgba: [u8; 4], depth: f32) -> Self {
        let ndc = |p: u32| p as f32 / size as f32 * 2.0 - 1.0;
        Rect {
            bounds: [ndc(x0), ndc(y0), ndc(x1), ndc(y1)],
            color: rgba.map(|c| c as f32 / 255.0),
            depth,
        }
    }

    /// Whether the rectangle covers the centre of pixel (x, y) of a `size`-square image.
    pub fn covers(&self, size: u32, x: u32, y: u32) -> bool {
        let centre = |p: u32| (p as f32 + 0.5) / size as f32 * 2.0 - 1.0;
        let (cx, cy) = (centre(x), centre(y));
        let [x0, y0, x1, y1] = self.bounds;
        cx > x0 && cx < x1 && cy > y0 && cy < y1
    }

    pub fn rgba8(&self) -> [u8; 4] {
        self.color.map(|c| (c * 255.0).round() as u8)
    }

    /// Pixels covered in a `size`-square image.
    pub fn area(&self, size: u32) -> u64 {
        (0..size)
            .flat_map(|y| (0..size).map(move |x| (x, y)))
            .filter(|&(x, y)| self.covers(size, x, y))
            .count() as u64
    }
}

/// The rectangle pipeline for dynamic rendering into [`COLOR_FORMAT`] (and [`DEPTH_FORMAT`]),
/// and its layout, whose push constants are one [`Rect`].
pub fn pipeline(ctx: &Context, with_depth: bool) -> Result<(vk::Pipeline, vk::PipelineLayout)> {
    pipeline_for(ctx, COLOR_FORMAT, with_depth)
}

/// [`pipeline`] for colour attachments of `format`.
pub fn pipeline_for(
    ctx: &Context,
    format: vk::Format,
    with_depth: bool,
) -> Result<(vk::Pipeline, vk::PipelineLayout)> {
    let push = vk::PushConstantRange::default()
        .stage_flags(vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT)
        .size(std::mem::size_of::<Rect>() as u32);
    let layout = ctx.pipeline_layout(&[], &[push])?;
    let pipeline = ctx.graphics_pipeline(&GraphicsDesc {
        vertex: shaders::RECT_VERT,
        fragment: shaders::RECT_FRAG,
        layout,
        bindings: &[],
        attributes: &[],
        samples: vk::SampleCountFlags::TYPE_1,
        depth_test: with_depth,
        blend: false,
        target: Target::Dynamic {
            color: format,
            depth: with_depth.then_some(DEPTH_FORMAT),
        },
    })?;
    Ok((pipeline, layout))
}

/// A square single-sample colour target (plus depth, when asked for), the rectangle pipeline for
/// it, and a host buffer the colour is copied to.
pub struct Offscreen {
    pub size: u32,
    pub color: Image,
    pub depth: Option<Image>,
    pub readback: Buffer,
    pipeline: vk::Pipeline,
    layout: vk::PipelineLayout,
}

impl Offscreen {
    pub fn new(ctx: &Context, size: u32, with_depth: bool) -> Result<Self> {
        let extent = vk::Extent2D {
            width: size,
            height: size,
        };
        let color = ctx.image(
            extent,
            COLOR_FORMAT,
            vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
            vk::SampleCountFlags::TYPE_1,
        )?;
        let depth = with_depth
            .then(|| {
                ctx.image(
                    extent,
                    DEPTH_FORMAT,
                    vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT,
                    vk::SampleCountFlags::TYPE_1,
                )
            })
            .transpose()?;
        let readback = ctx.buffer(
            u64::from(size * size * 4),
            vk::BufferUsageFlags::TRANSFER_DST,
            Location::Host,
        )?;
        let (pipeline, layout) = pipeline(ctx, with_depth)?;
        Ok(Self {
            size,
            color,
            depth,
            readback,
            pipeline,
            layout,
        })
    }

    /// Starts rendering: colour cleared to `clear`, depth to 1.0.
    pub fn begin(&self, ctx: &Context, cmd: vk::CommandBuffer, clear: [u8; 4]) {
        ctx.image_barrier(
            cmd,
            &self.color,
            (vk::ImageLayout::UNDEFINED, Access::NONE),
            (
                vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                Access::COLOR_WRITE,
            ),
        );
        if let Some(depth) = &self.depth {
            ctx.image_barrier(
                cmd,
                depth,
                (vk::ImageLayout::UNDEFINED, Access::NONE),
                (
                    vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL,
                    Access::DEPTH_WRITE,
                ),
            );
        }
        let color = [vk::RenderingAttachmentInfo::default()
            .image_view(self.color.view)
            .image_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
            .load_op(vk::AttachmentLoadOp::CLEAR)
            .store_op(vk::AttachmentStoreOp::STORE)
            .clear_value(vk::ClearValue {
                color: vk::ClearColorValue {
                    float32: clear.map(|c| f32::from(c) / 255.0),
                },
            })];
        let depth = self.depth.as_ref().map(|d| {
            vk::RenderingAttachmentInfo::default()
                .image_view(d.view)
                .image_layout(vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL)
                .load_op(vk::AttachmentLoadOp::CLEAR)
                .store_op(vk::AttachmentStoreOp::DONT_CARE)
                .clear_value(vk::ClearValue {
                    depth_stencil: vk::ClearDepthStencilValue {
                        depth: 1.0,
                        stencil: 0,
                    },
                })
        });
        let mut info = vk::RenderingInfo::default()
            .render_area(self.color.extent.into())
            .layer_count(1)
            .color_attachments(&color);
        if let Some(depth) = &depth {
            info = info.depth_attachment(depth);
        }
        unsafe {
            ctx.device.cmd_begin_rendering(cmd, &info);
            ctx.device
                .cmd_bind_pipeline(cmd, vk::PipelineBindPoint::GRAPHICS, self.pipeline);
        }
        ctx.set_viewport(cmd, self.color.extent);
    }

    pub fn draw(&self, ctx: &Context, cmd: vk::CommandBuffer, rect: &Rect) {
        unsafe {
            ctx.device.cmd_push_constants(
                cmd,
                self.layout,
                vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT,
                0,
                bytemuck::bytes_of(rect),
            );
            ctx.device.cmd_draw(cmd, 6, 1, 0, 0);
        }
    }

    /// Ends rendering and copies the colour image into `readback`.
    pub fn end(&self, ctx: &Context, cmd: vk::CommandBuffer) {
        unsafe { ctx.device.cmd_end_rendering(cmd) };
        ctx.image_barrier(
            cmd,
            &self.color,
            (
                vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                Access::COLOR_WRITE,
            ),
            (vk::ImageLayout::TRANSFER_SRC_OPTIMAL, Access::TRANSFER_READ),
        );
        ctx.copy_image_to_host(cmd, &self.color, &self.readback);
    }

    /// RGBA8 pixels, row by row, top row first.
    pub fn pixels(&self) -> Vec<[u8; 4]> {
        self.readback.read()
    }
}

/// What `rects` drawn in order over `clear` look like with a depth test (LESS, depth cleared to
/// 1.0) or without one (the last rectangle wins).
pub fn expected_pixels(
    size: u32,
    clear: [u8; 4],
    rects: &[Rect],
    depth_test: bool,
) -> Vec<[u8; 4]> {
    let mut out = Vec::with_capacity((size * size) as usize);
    for y in 0..size {
        for x in 0..size {
            let mut pixel = (clear, 1.0f32);
            for r in rects.iter().filter(|r| r.covers(size, x, y)) {
                if !depth_test || r.depth < pixel.1 {
                    pixel = (r.rgba8(), r.depth);
                }
            }
            out.push(pixel.0);
        }
    }
    out
}
