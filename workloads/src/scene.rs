//! The offscreen scene of the `render` scenario and of `airlock-render`: a textured background,
//! two opaque quads where the later, farther one is hidden by the depth test, and a translucent
//! diamond blended over them, drawn with 4x MSAA through a classic render pass that resolves to
//! a single-sample image. Also the same picture computed on the CPU, away from shape edges.

use crate::context::Context;
use crate::error::{ensure, Error, Result};
use crate::memory::{Access, Buffer, Image, Location};
use crate::pipeline::{descriptor_binding, GraphicsDesc, Target};
use crate::shaders;
use crate::Check;
use ash::vk;
use bytemuck::{Pod, Zeroable};

pub const COLOR_FORMAT: vk::Format = vk::Format::R8G8B8A8_UNORM;
const DEPTH_FORMAT: vk::Format = vk::Format::D32_SFLOAT;
const SAMPLES: vk::SampleCountFlags = vk::SampleCountFlags::TYPE_4;
const TEXTURE_SIZE: u32 = 64;
const CHECKER: u32 = 8;
const DIAMOND_CENTRE: [f32; 2] = [0.35, -0.35];

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
struct Vertex {
    position: [f32; 3],
    uv: [f32; 2],
    color: [f32; 4],
    textured: f32,
}

/// A convex polygon at one depth, in normalized device coordinates.
struct Shape {
    points: Vec<[f32; 2]>,
    depth: f32,
    color: [f32; 4],
    /// Whether the colour is multiplied by the texture (uv = the position mapped onto 0..1).
    textured: bool,
}

fn quad([x0, y0, x1, y1]: [f32; 4], depth: f32, color: [f32; 4], textured: bool) -> Shape {
    Shape {
        points: vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
        depth,
        color,
        textured,
    }
}

/// Draw order. B is drawn after A but lies behind it; the diamond is translucent and nearest.
fn shapes() -> Vec<Shape> {
    let ([cx, cy], r) = (DIAMOND_CENTRE, 0.45);
    vec![
        quad([-1.0, -1.0, 1.0, 1.0], 0.9, [1.0; 4], true),
        quad([-0.6, -0.6, 0.2, 0.2], 0.5, [0.95, 0.55, 0.1, 1.0], false),
        quad([-0.2, -0.2, 0.6, 0.6], 0.7, [0.2, 0.75, 0.3, 1.0], false),
        Shape {
            points: vec![[cx, cy - r], [cx + r, cy], [cx, cy + r], [cx - r, cy]],
            depth: 0.3,
            color: [0.9, 0.2, 0.8, 0.5],
            textured: false,
        },
    ]
}

fn geometry(shapes: &[Shape]) -> (Vec<Vertex>, Vec<u16>) {
    let mut vertices = Vec::new();
    let mut indices = Vec::new();
    for s in shapes {
        let base = vertices.len() as u16;
        vertices.extend(s.points.iter().map(|&[x, y]| Vertex {
            position: [x, y, s.depth],
            uv: [(x + 1.0) / 2.0, (y + 1.0) / 2.0],
            color: s.color,
            textured: if s.textured { 1.0 } else { 0.0 },
        }));
        // A fan: every shape is convex.
        for i in 1..s.points.len() as u16 - 1 {
            indices.extend([base, base + i, base + i + 1]);
        }
    }
    (vertices, indices)
}

fn texel(tx: u32, ty: u32) -> [u8; 4] {
    if (tx / CHECKER + ty / CHECKER).is_multiple_of(2) {
        [56, 104, 168, 255]
    } else {
        [28, 52, 100, 255]
    }
}

fn texture_texels() -> Vec<[u8; 4]> {
    (0..TEXTURE_SIZE)
        .flat_map(|y| (0..TEXTURE_SIZE).map(move |x| texel(x, y)))
        .collect()
}

/// The render pass: 4x colour and depth, cleared, resolved into attachment 2, which ends in
/// TRANSFER_SRC_OPTIMAL for the copy to the host.
fn render_pass(ctx: &Context) -> Result<vk::RenderPass> {
    let attachment = |format, samples, load, store, final_layout| {
        vk::AttachmentDescription::default()
            .format(format)
            .samples(samples)
            .load_op(load)
            .store_op(store)
            .stencil_load_op(vk::AttachmentLoadOp::DONT_CARE)
            .stencil_store_op(vk::AttachmentStoreOp::DONT_CARE)
            .initial_layout(vk::ImageLayout::UNDEFINED)
            .final_layout(final_layout)
    };
    use vk::{AttachmentLoadOp as Load, AttachmentStoreOp as Store, ImageLayout as Layout};
    let attachments = [
        attachment(
            COLOR_FORMAT,
            SAMPLES,
            Load::CLEAR,
            Store::DONT_CARE,
            Layout::COLOR_ATTACHMENT_OPTIMAL,
        ),
        attachment(
            DEPTH_FORMAT,
            SAMPLES,
            Load::CLEAR,
            Store::DONT_CARE,
            Layout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL,
        ),
        attachment(
            COLOR_FORMAT,
            vk::SampleCountFlags::TYPE_1,
            Load::DONT_CARE,
            Store::STORE,
            Layout::TRANSFER_SRC_OPTIMAL,
        ),
    ];
    let reference = |index, layout| vk::AttachmentReference {
        attachment: index,
        layout,
    };
    let color = [reference(0, Layout::COLOR_ATTACHMENT_OPTIMAL)];
    let depth = reference(1, Layout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL);
    let resolve = [reference(2, Layout::COLOR_ATTACHMENT_OPTIMAL)];
    let subpass = [vk::SubpassDescription::default()
        .pipeline_bind_point(vk::PipelineBindPoint::GRAPHICS)
        .color_attachments(&color)
        .depth_stencil_attachment(&depth)
        .resolve_attachments(&resolve)];
    let attachment_stages = vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT
        | vk::PipelineStageFlags::EARLY_FRAGMENT_TESTS
        | vk::PipelineStageFlags::LATE_FRAGMENT_TESTS;
    let dependencies = [
        vk::SubpassDependency::default()
            .src_subpass(vk::SUBPASS_EXTERNAL)
            .dst_subpass(0)
            .src_stage_mask(attachment_stages)
            .dst_stage_mask(attachment_stages)
            .dst_access_mask(
                vk::AccessFlags::COLOR_ATTACHMENT_WRITE
                    | vk::AccessFlags::DEPTH_STENCIL_ATTACHMENT_WRITE,
            ),
        vk::SubpassDependency::default()
            .src_subpass(0)
            .dst_subpass(vk::SUBPASS_EXTERNAL)
            .src_stage_mask(Access::COLOR_WRITE.0)
            .src_access_mask(Access::COLOR_WRITE.1)
            .dst_stage_mask(Access::TRANSFER_READ.0)
            .dst_access_mask(Access::TRANSFER_READ.1),
    ];
    let info = vk::RenderPassCreateInfo::default()
        .attachments(&attachments)
        .subpasses(&subpass)
        .dependencies(&dependencies);
    unsafe { ctx.device.create_render_pass(&info, None) }
        .check("vkCreateRenderPass")
        .map(|r| ctx.own(r))
}

/// The texture, uploaded from a staging buffer, left in SHADER_READ_ONLY_OPTIMAL, with a
/// descriptor set that samples it.
fn texture(
    ctx: &Context,
    cmd: vk::CommandBuffer,
    set_layout: vk::DescriptorSetLayout,
) -> Result<vk::DescriptorSet> {
    let texels = texture_texels();
    let staging = ctx.buffer(
        (texels.len() * 4) as u64,
        vk::BufferUsageFlags::TRANSFER_SRC,
        Location::Host,
    )?;
    staging.write(0, &texels);
    let extent = vk::Extent2D {
        width: TEXTURE_SIZE,
        height: TEXTURE_SIZE,
    };
    let image = ctx.image(
        extent,
        COLOR_FORMAT,
        vk::ImageUsageFlags::TRANSFER_DST | vk::ImageUsageFlags::SAMPLED,
        vk::SampleCountFlags::TYPE_1,
    )?;
    ctx.image_barrier(
        cmd,
        &image,
        (vk::ImageLayout::UNDEFINED, Access::NONE),
        (
            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            Access::TRANSFER_WRITE,
        ),
    );
    ctx.copy_buffer_to_image(cmd, &staging, &image);
    ctx.image_barrier(
        cmd,
        &image,
        (
            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            Access::TRANSFER_WRITE,
        ),
        (
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            Access::FRAGMENT_READ,
        ),
    );
    // Nearest filtering keeps every pixel's expected colour exact.
    let sampler_info = vk::SamplerCreateInfo::default()
        .mag_filter(vk::Filter::NEAREST)
        .min_filter(vk::Filter::NEAREST)
        .mipmap_mode(vk::SamplerMipmapMode::NEAREST)
        .address_mode_u(vk::SamplerAddressMode::CLAMP_TO_EDGE)
        .address_mode_v(vk::SamplerAddressMode::CLAMP_TO_EDGE)
        .address_mode_w(vk::SamplerAddressMode::CLAMP_TO_EDGE)
        .max_lod(0.0);
    let sampler = unsafe { ctx.device.create_sampler(&sampler_info, None) }
        .check("vkCreateSampler")
        .map(|s| ctx.own(s))?;
    let set = ctx.descriptor_set(set_layout)?;
    let image_info = [vk::DescriptorImageInfo {
        sampler,
        image_view: image.view,
        image_layout: vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
    }];
    let write = vk::WriteDescriptorSet::default()
        .dst_set(set)
        .dst_binding(0)
        .descriptor_type(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
        .image_info(&image_info);
    unsafe { ctx.device.update_descriptor_sets(&[write], &[]) };
    Ok(set)
}

fn pipeline(
    ctx: &Context,
    render_pass: vk::RenderPass,
    layout: vk::PipelineLayout,
) -> Result<vk::Pipeline> {
    let bindings = [vk::VertexInputBindingDescription {
        binding: 0,
        stride: std::mem::size_of::<Vertex>() as u32,
        input_rate: vk::VertexInputRate::VERTEX,
    }];
    let attribute = |location, format, offset| vk::VertexInputAttributeDescription {
        location,
        binding: 0,
        format,
        offset: offset as u32,
    };
    let attributes = [
        attribute(
            0,
            vk::Format::R32G32B32_SFLOAT,
            std::mem::offset_of!(Vertex, position),
        ),
        attribute(
            1,
            vk::Format::R32G32_SFLOAT,
            std::mem::offset_of!(Vertex, uv),
        ),
        attribute(
            2,
            vk::Format::R32G32B32A32_SFLOAT,
            std::mem::offset_of!(Vertex, color),
        ),
        attribute(
            3,
            vk::Format::R32_SFLOAT,
            std::mem::offset_of!(Vertex, textured),
        ),
    ];
    ctx.graphics_pipeline(&GraphicsDesc {
        vertex: shaders::SCENE_VERT,
        fragment: shaders::SCENE_FRAG,
        layout,
        bindings: &bindings,
        attributes: &attributes,
        samples: SAMPLES,
        depth_test: true,
        blend: true,
        target: Target::RenderPass(render_pass),
    })
}

/// Host buffers holding `data`, for vertex or index input.
fn input_buffer<T: Pod>(ctx: &Context, data: &[T], usage: vk::BufferUsageFlags) -> Result<Buffer> {
    let buffer = ctx.buffer(std::mem::size_of_val(data) as u64, usage, Location::Host)?;
    buffer.write(0, data);
    Ok(buffer)
}

fn framebuffer(
    ctx: &Context,
    render_pass: vk::RenderPass,
    views: &[&Image],
) -> Result<vk::Framebuffer> {
    let extent = views[0].extent;
    let attachments: Vec<_> = views.iter().map(|i| i.view).collect();
    let info = vk::FramebufferCreateInfo::default()
        .render_pass(render_pass)
        .attachments(&attachments)
        .width(extent.width)
        .height(extent.height)
        .layers(1);
    unsafe { ctx.device.create_framebuffer(&info, None) }
        .check("vkCreateFramebuffer")
        .map(|f| ctx.own(f))
}

/// Renders the scene into a `size`-square image; RGBA8 pixels, top row first.
pub fn render(ctx: &Context, size: u32) -> Result<Vec<[u8; 4]>> {
    let limits = &ctx.properties.limits;
    if !limits.framebuffer_color_sample_counts.contains(SAMPLES)
        || !limits.framebuffer_depth_sample_counts.contains(SAMPLES)
    {
        return Err(Error::Unsupported(
            "4x MSAA colour and depth attachments".into(),
        ));
    }
    let extent = vk::Extent2D {
        width: size,
        height: size,
    };
    let attachment = |format, usage, samples| ctx.image(extent, format, usage, samples);
    let msaa = attachment(COLOR_FORMAT, vk::ImageUsageFlags::COLOR_ATTACHMENT, SAMPLES)?;
    let depth = attachment(
        DEPTH_FORMAT,
        vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT,
        SAMPLES,
    )?;
    let resolved = attachment(
        COLOR_FORMAT,
        vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
        vk::SampleCountFlags::TYPE_1,
    )?;
    let render_pass = render_pass(ctx)?;
    let framebuffer = framebuffer(ctx, render_pass, &[&msaa, &depth, &resolved])?;
    let sampler_binding = descriptor_binding(
        0,
        vk::DescriptorType::COMBINED_IMAGE_SAMPLER,
        1,
        vk::ShaderStageFlags::FRAGMENT,
    );
    let set_layout = ctx.set_layout(
        &[sampler_binding],
        vk::DescriptorSetLayoutCreateFlags::empty(),
    )?;
    let layout = ctx.pipeline_layout(&[set_layout], &[])?;
    let pipeline = pipeline(ctx, render_pass, layout)?;
    let (vertices, indices) = geometry(&shapes());
    let vertex_buffer = input_buffer(ctx, &vertices, vk::BufferUsageFlags::VERTEX_BUFFER)?;
    let index_buffer = input_buffer(ctx, &indices, vk::BufferUsageFlags::INDEX_BUFFER)?;
    let readback = ctx.buffer(
        u64::from(size * size * 4),
        vk::BufferUsageFlags::TRANSFER_DST,
        Location::Host,
    )?;

    let clear = [
        vk::ClearValue {
            color: vk::ClearColorValue { float32: [0.0; 4] },
        },
        vk::ClearValue {
            depth_stencil: vk::ClearDepthStencilValue {
                depth: 1.0,
                stencil: 0,
            },
        },
        vk::ClearValue::default(),
    ];
    ctx.run_commands(|cmd| {
        let set = texture(ctx, cmd, set_layout)?;
        let begin = vk::RenderPassBeginInfo::default()
            .render_pass(render_pass)
            .framebuffer(framebuffer)
            .render_area(extent.into())
            .clear_values(&clear);
        let d = &ctx.device;
        unsafe {
            d.cmd_begin_render_pass(cmd, &begin, vk::SubpassContents::INLINE);
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::GRAPHICS, pipeline);
            d.cmd_bind_descriptor_sets(
                cmd,
                vk::PipelineBindPoint::GRAPHICS,
                layout,
                0,
                &[set],
                &[],
            );
            d.cmd_bind_vertex_buffers(cmd, 0, &[vertex_buffer.handle], &[0]);
            d.cmd_bind_index_buffer(cmd, index_buffer.handle, 0, vk::IndexType::UINT16);
        }
        ctx.set_viewport(cmd, extent);
        unsafe {
            d.cmd_draw_indexed(cmd, indices.len() as u32, 1, 0, 0, 0);
            d.cmd_end_render_pass(cmd);
        }
        ctx.copy_image_to_host(cmd, &resolved, &readback);
        Ok(())
    })?;
    Ok(readback.read())
}

/// `p` in pixel coordinates of a `size`-square image.
fn to_pixels(size: u32, [x, y]: [f32; 2]) -> [f32; 2] {
    let s = size as f32 / 2.0;
    [(x + 1.0) * s, (y + 1.0) * s]
}

impl Shape {
    fn pixel_points(&self, size: u32) -> Vec<[f32; 2]> {
        self.points.iter().map(|&p| to_pixels(size, p)).collect()
    }

    fn edges(&self, size: u32) -> impl Iterator<Item = ([f32; 2], [f32; 2])> {
        let p = self.pixel_points(size);
        (0..p.len()).map(move |i| (p[i], p[(i + 1) % p.len()]))
    }

    fn contains(&self, size: u32, [x, y]: [f32; 2]) -> bool {
        let sides: Vec<bool> = self
            .edges(size)
            .map(|([ax, ay], [bx, by])| (bx - ax) * (y - ay) - (by - ay) * (x - ax) > 0.0)
            .collect();
        sides.iter().all(|&s| s) || sides.iter().all(|&s| !s)
    }

    /// Distance in pixels from `p` to the shape's outline.
    fn outline_distance(&self, size: u32, [x, y]: [f32; 2]) -> f32 {
        self.edges(size)
            .map(|([ax, ay], [bx, by])| {
                let (dx, dy) = (bx - ax, by - ay);
                let t = (((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
                ((x - ax - t * dx).powi(2) + (y - ay - t * dy).powi(2)).sqrt()
            })
            .fold(f32::INFINITY, f32::min)
    }
}

/// The colour at pixel-space point `p`, with the texture sampled at `texture_point` (so that
/// two points can share one texel), as the GPU computes it in float.
fn reference(size: u32, shapes: &[Shape], p: [f32; 2], texture_point: [f32; 2]) -> [f32; 4] {
    let texel_coord =
        |c: f32| ((c / size as f32 * TEXTURE_SIZE as f32) as u32).min(TEXTURE_SIZE - 1);
    let tex = texel(texel_coord(texture_point[0]), texel_coord(texture_point[1]))
        .map(|c| f32::from(c) / 255.0);
    let mut color = [0.0f32; 4];
    let mut depth = 1.0;
    for s in shapes {
        if !s.contains(size, p) || s.depth >= depth {
            continue;
        }
        depth = s.depth;
        let src: [f32; 4] =
            std::array::from_fn(|i| s.color[i] * if s.textured { tex[i] } else { 1.0 });
        let a = src[3];
        color = [
            src[0] * a + color[0] * (1.0 - a),
            src[1] * a + color[1] * (1.0 - a),
            src[2] * a + color[2] * (1.0 - a),
            a + color[3] * (1.0 - a),
        ];
    }
    color
}

fn to_unorm8(c: [f32; 4]) -> [u8; 4] {
    c.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
}

fn close(a: [u8; 4], b: [u8; 4], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= tolerance)
}

/// Checks `pixels` against the CPU: every pixel at least a pixel away from all outlines (and
/// not on a texel boundary) within 1/255, and, along the diamond's outline, that most pixels are
/// a mix of the colours on both sides, as 4x MSAA makes them.
pub fn check(size: u32, pixels: &[[u8; 4]]) -> Result<()> {
    let shapes = shapes();
    let on_texel_boundary = |c: f32| {
        let t = c / size as f32 * TEXTURE_SIZE as f32;
        (t - t.round()).abs() < 0.02
    };
    let (mut interior, mut straddling, mut mixed) = (0usize, 0usize, 0usize);
    for y in 0..size {
        for x in 0..size {
            let p = [x as f32 + 0.5, y as f32 + 0.5];
            if on_texel_boundary(p[0]) || on_texel_boundary(p[1]) {
                continue;
            }
            let got = pixels[(y * size + x) as usize];
            let distances: Vec<f32> = shapes.iter().map(|s| s.outline_distance(size, p)).collect();
            if distances.iter().all(|&d| d > 1.0) {
                let want = to_unorm8(reference(size, &shapes, p, p));
                ensure(close(got, want, 1), || {
                    format!("pixel ({x}, {y}) is {got:?}, expected {want:?}")
                })?;
                interior += 1;
            } else if distances[3] < 0.25 && distances[..3].iter().all(|&d| d > 1.5) {
                // One pixel along the line towards the diamond's centre is inside, the other
                // way outside.
                let centre = to_pixels(size, DIAMOND_CENTRE);
                let (dx, dy) = (centre[0] - p[0], centre[1] - p[1]);
                let len = (dx * dx + dy * dy).sqrt();
                let inside = to_unorm8(reference(
                    size,
                    &shapes,
                    [p[0] + dx / len, p[1] + dy / len],
                    p,
                ));
                let outside = to_unorm8(reference(
                    size,
                    &shapes,
                    [p[0] - dx / len, p[1] - dy / len],
                    p,
                ));
                straddling += 1;
                if !close(got, inside, 1) && !close(got, outside, 1) {
                    mixed += 1;
                }
            }
        }
    }
    ensure(interior > (size * size / 2) as usize, || {
        format!("only {interior} pixels were checkable")
    })?;
    ensure(straddling > 0 && mixed * 2 >= straddling, || {
        format!(
            "{mixed} of {straddling} pixels on the diamond's outline mix both sides: no \
             multisampling?"
        )
    })
}
