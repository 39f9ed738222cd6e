//! Garbage in every member Vulkan says is ignored (the table in `wire/src/ignored.rs`): handles
//! no driver made, as a layer that wraps handles may leave there, and pointers to a page that
//! cannot be read, so that a driver (or Airlock's encoder) that looked would fail or crash.
//! What is made so is used: descriptors written with garbage feed a compute shader, a pipeline
//! created with garbage draws, and the results are checked; the objects that are only created
//! (a pipeline that discards rasterization, an imageless framebuffer …) must be created.

use crate::error::Check;
use crate::error::{check_elements, ensure};
use crate::memory::{Access, Location};
use crate::pipeline::descriptor_binding;
use crate::rect::{Rect, COLOR_FORMAT};
use crate::{shaders, Context, Report, Result};
use ash::vk::{self, Handle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A page that cannot be read: where every ignored pointer points.
///
/// Handles get values no driver made only where vk.xml exempts the member from the implicit
/// rule that a non-null handle be valid (`noautovalidity`); elsewhere (`resolveImageView`) an
/// ignored handle must still be a valid one, and gets another object's.
fn poison<T>() -> *const T {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: a fresh anonymous mapping with no access, never unmapped.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of the poisoned page");
        p as usize
    }) as *const T
}

/// [`poison`], except under the validation layer: Debian 12's (1.3.239) reads some members
/// where they are ignored and crashes on an unreadable one, so there they get `readable`.
fn poison_unless_validating<T>(ctx: &Context, readable: *const T) -> *const T {
    if ctx.validating {
        readable
    } else {
        poison()
    }
}

/// A handle value no driver made.
fn garbage<H: Handle>() -> H {
    static NEXT: AtomicU64 = AtomicU64::new(0x0BAD_0000_0000_0001);
    H::from_raw(NEXT.fetch_add(0x1_0001, Ordering::Relaxed))
}

const TEXELS: u32 = 16;
const TEXTURE: vk::Extent2D = vk::Extent2D {
    width: 4,
    height: 4,
};

fn texel(i: u32) -> [u8; 4] {
    [
        (i * 16) as u8,
        (255 - i * 16) as u8,
        (i * 37 % 256) as u8,
        255,
    ]
}

/// Ways the compute pass gets its descriptors: written, through a set template, pushed, and
/// through a push template.
const PASSES: [&str; 4] = ["written", "set template", "pushed", "push template"];
/// vec4s each pass writes: two per texel.
const PASS_VEC4S: u64 = 2 * TEXELS as u64;

/// The data a descriptor update template reads: the four bindings of the compute shader.
#[repr(C)]
#[derive(Clone, Copy)]
struct TemplateData {
    images: [vk::DescriptorImageInfo; 3],
    buffer: vk::DescriptorBufferInfo,
}

pub fn run(ctx: &Context) -> Result<Report> {
    let mut report = Report::new();
    compute(ctx, &mut report)?;
    draw(ctx, &mut report)?;
    create_only(ctx, &mut report)?;
    Ok(report)
}

/// The compute shader's four bindings; immutable samplers given where they are ignored.
fn bindings(sampler: &[vk::Sampler; 1]) -> [vk::DescriptorSetLayoutBinding<'_>; 4] {
    let stage = vk::ShaderStageFlags::COMPUTE;
    let b = |i, ty| descriptor_binding(i, ty, 1, stage);
    [
        vk::DescriptorSetLayoutBinding {
            p_immutable_samplers: poison(),
            ..b(0, vk::DescriptorType::SAMPLED_IMAGE)
        },
        b(1, vk::DescriptorType::SAMPLER),
        b(2, vk::DescriptorType::COMBINED_IMAGE_SAMPLER).immutable_samplers(sampler),
        vk::DescriptorSetLayoutBinding {
            p_immutable_samplers: poison(),
            ..b(3, vk::DescriptorType::STORAGE_BUFFER)
        },
    ]
}

/// Image infos for bindings 0–2: a sampler where the type or the immutable sampler makes it
/// ignored, an image view where the sampler type does.
fn image_infos(view: vk::ImageView, sampler: vk::Sampler) -> [vk::DescriptorImageInfo; 3] {
    let layout = vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL;
    [
        vk::DescriptorImageInfo {
            sampler: garbage(),
            image_view: view,
            image_layout: layout,
        },
        vk::DescriptorImageInfo {
            sampler,
            image_view: garbage(),
            image_layout: layout,
        },
        vk::DescriptorImageInfo {
            sampler: garbage(),
            image_view: view,
            image_layout: layout,
        },
    ]
}

/// Writes of the four bindings, each with garbage in the arrays its type does not read.
fn writes<'a>(
    set: vk::DescriptorSet,
    images: &'a [vk::DescriptorImageInfo; 3],
    buffer: &'a vk::DescriptorBufferInfo,
) -> [vk::WriteDescriptorSet<'a>; 4] {
    let types = [
        vk::DescriptorType::SAMPLED_IMAGE,
        vk::DescriptorType::SAMPLER,
        vk::DescriptorType::COMBINED_IMAGE_SAMPLER,
    ];
    let image = |i: usize| vk::WriteDescriptorSet {
        dst_set: set,
        dst_binding: i as u32,
        descriptor_count: 1,
        descriptor_type: types[i],
        p_image_info: &images[i],
        p_buffer_info: poison(),
        p_texel_buffer_view: poison(),
        ..Default::default()
    };
    [
        image(0),
        image(1),
        image(2),
        vk::WriteDescriptorSet {
            dst_set: set,
            dst_binding: 3,
            descriptor_count: 1,
            descriptor_type: vk::DescriptorType::STORAGE_BUFFER,
            p_image_info: poison(),
            p_buffer_info: buffer,
            p_texel_buffer_view: poison(),
            ..Default::default()
        },
    ]
}

fn template_entries() -> [vk::DescriptorUpdateTemplateEntry; 4] {
    let types = [
        vk::DescriptorType::SAMPLED_IMAGE,
        vk::DescriptorType::SAMPLER,
        vk::DescriptorType::COMBINED_IMAGE_SAMPLER,
        vk::DescriptorType::STORAGE_BUFFER,
    ];
    let image = std::mem::size_of::<vk::DescriptorImageInfo>();
    std::array::from_fn(|i| vk::DescriptorUpdateTemplateEntry {
        dst_binding: i as u32,
        dst_array_element: 0,
        descriptor_count: 1,
        descriptor_type: types[i],
        offset: i * image,
        stride: image,
    })
}

/// The texture, its sampler, and the compute shader reading it four ways.
fn compute(ctx: &Context, report: &mut Report) -> Result<()> {
    let d = &ctx.device;
    let garbage_families = |info: vk::ImageCreateInfo<'static>| vk::ImageCreateInfo {
        queue_family_index_count: 7,
        p_queue_family_indices: poison(),
        ..info
    };
    let texture = ctx.image_from(&garbage_families(
        vk::ImageCreateInfo::default()
            .image_type(vk::ImageType::TYPE_2D)
            .format(vk::Format::R8G8B8A8_UNORM)
            .extent(TEXTURE.into())
            .mip_levels(1)
            .array_layers(1)
            .samples(vk::SampleCountFlags::TYPE_1)
            .usage(vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_DST)
            .sharing_mode(vk::SharingMode::EXCLUSIVE),
    ))?;
    let staging = ctx.buffer(
        u64::from(TEXELS) * 4,
        vk::BufferUsageFlags::TRANSFER_SRC,
        Location::Host,
    )?;
    staging.write(0, &(0..TEXELS).map(texel).collect::<Vec<_>>());
    let out = ctx.buffer_from(
        &vk::BufferCreateInfo {
            size: PASSES.len() as u64 * PASS_VEC4S * 16,
            usage: vk::BufferUsageFlags::STORAGE_BUFFER,
            sharing_mode: vk::SharingMode::EXCLUSIVE,
            queue_family_index_count: 3,
            p_queue_family_indices: poison(),
            ..Default::default()
        },
        Location::Host,
    )?;
    out.fill_words(|_| 0);
    let sampler = unsafe { d.create_sampler(&vk::SamplerCreateInfo::default(), None) }
        .check("vkCreateSampler")
        .map(|s| ctx.own(s))?;
    let immutable = [sampler];
    let bindings = bindings(&immutable);
    let layout = ctx.set_layout(&bindings, vk::DescriptorSetLayoutCreateFlags::empty())?;
    let pipeline_layout = ctx.pipeline_layout(&[layout], &[])?;
    let module = ctx.shader_module(shaders::IGNORED)?;
    let pipeline = |layout| {
        let info = vk::ComputePipelineCreateInfo {
            stage: vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::COMPUTE)
                .module(module)
                .name(c"main"),
            layout,
            base_pipeline_handle: garbage(),
            base_pipeline_index: -1,
            ..Default::default()
        };
        unsafe { d.create_compute_pipelines(vk::PipelineCache::null(), &[info], None) }
            .check("vkCreateComputePipelines")
            .map(|p| ctx.own(p[0]))
    };
    let set_pipeline = pipeline(pipeline_layout)?;
    let sizes = [
        (vk::DescriptorType::SAMPLED_IMAGE, 2),
        (vk::DescriptorType::SAMPLER, 2),
        (vk::DescriptorType::COMBINED_IMAGE_SAMPLER, 2),
        (vk::DescriptorType::STORAGE_BUFFER, 2),
    ]
    .map(|(ty, n)| vk::DescriptorPoolSize::default().ty(ty).descriptor_count(n));
    let pool_info = vk::DescriptorPoolCreateInfo::default()
        .max_sets(2)
        .pool_sizes(&sizes);
    let pool = unsafe { d.create_descriptor_pool(&pool_info, None) }
        .check("vkCreateDescriptorPool")
        .map(|p| ctx.own(p))?;
    let layouts = [layout, layout];
    let sets = unsafe {
        d.allocate_descriptor_sets(
            &vk::DescriptorSetAllocateInfo::default()
                .descriptor_pool(pool)
                .set_layouts(&layouts),
        )
    }
    .check("vkAllocateDescriptorSets")?;
    let images = image_infos(texture.view, sampler);
    let range = |pass: u64| out.range(pass * PASS_VEC4S * 16, PASS_VEC4S * 16);

    // Pass 0: written with vkUpdateDescriptorSets.
    let buffer0 = range(0);
    unsafe { d.update_descriptor_sets(&writes(sets[0], &images, &buffer0), &[]) };
    // Pass 1: through a descriptor-set template, whose pipeline layout is ignored (FFmpeg's
    // case under the validation layer).
    let entries = template_entries();
    let set_template_info = vk::DescriptorUpdateTemplateCreateInfo {
        descriptor_update_entry_count: entries.len() as u32,
        p_descriptor_update_entries: entries.as_ptr(),
        template_type: vk::DescriptorUpdateTemplateType::DESCRIPTOR_SET,
        descriptor_set_layout: layout,
        pipeline_bind_point: vk::PipelineBindPoint::COMPUTE,
        pipeline_layout: garbage(),
        set: 5,
        ..Default::default()
    };
    let set_template = unsafe { d.create_descriptor_update_template(&set_template_info, None) }
        .check("vkCreateDescriptorUpdateTemplate")
        .map(|t| ctx.own(t))?;
    let data1 = TemplateData {
        images,
        buffer: range(1),
    };
    unsafe {
        d.update_descriptor_set_with_template(
            sets[1],
            set_template,
            &data1 as *const _ as *const std::ffi::c_void,
        )
    };

    // Passes 2 and 3, where push descriptors exist: pushed with a garbage destination set,
    // and through a push template whose set layout is ignored. Recorded into a secondary
    // command buffer whose inheritance info holds garbage outside a render pass.
    let push = ctx.push_descriptor.as_ref();
    report.flag("push descriptors", push.is_some());
    let pushed = match push {
        None => None,
        Some(_) => {
            let push_layout = ctx.set_layout(
                &bindings,
                vk::DescriptorSetLayoutCreateFlags::PUSH_DESCRIPTOR_KHR,
            )?;
            let push_pipeline_layout = ctx.pipeline_layout(&[push_layout], &[])?;
            let push_template_info = vk::DescriptorUpdateTemplateCreateInfo {
                template_type: vk::DescriptorUpdateTemplateType::PUSH_DESCRIPTORS_KHR,
                descriptor_set_layout: garbage(),
                pipeline_layout: push_pipeline_layout,
                set: 0,
                ..set_template_info
            };
            let push_template =
                unsafe { d.create_descriptor_update_template(&push_template_info, None) }
                    .check("vkCreateDescriptorUpdateTemplate")
                    .map(|t| ctx.own(t))?;
            Some((
                push_pipeline_layout,
                pipeline(push_pipeline_layout)?,
                push_template,
            ))
        }
    };

    let command_pool = ctx.command_pool()?;
    let primary =
        ctx.allocate_command_buffers(command_pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    let secondary =
        ctx.allocate_command_buffers(command_pool, vk::CommandBufferLevel::SECONDARY, 1)?[0];
    let buffer2 = range(2);
    let data3 = TemplateData {
        images,
        buffer: range(3),
    };
    if let (Some(push), Some((push_layout, push_pipeline, push_template))) = (push, pushed) {
        let formats = [COLOR_FORMAT];
        let mut rendering = vk::CommandBufferInheritanceRenderingInfo {
            color_attachment_count: 1,
            p_color_attachment_formats: poison_unless_validating(ctx, formats.as_ptr()),
            rasterization_samples: vk::SampleCountFlags::TYPE_1,
            ..Default::default()
        };
        let inheritance = vk::CommandBufferInheritanceInfo::default()
            .render_pass(garbage())
            .framebuffer(garbage())
            .push_next(&mut rendering);
        let begin = vk::CommandBufferBeginInfo::default().inheritance_info(&inheritance);
        unsafe {
            d.begin_command_buffer(secondary, &begin)
                .check("vkBeginCommandBuffer")?;
            d.cmd_bind_pipeline(secondary, vk::PipelineBindPoint::COMPUTE, push_pipeline);
            let pushed_writes = writes(garbage(), &images, &buffer2);
            push.cmd_push_descriptor_set(
                secondary,
                vk::PipelineBindPoint::COMPUTE,
                push_layout,
                0,
                &pushed_writes,
            );
            d.cmd_dispatch(secondary, 1, 1, 1);
            push.cmd_push_descriptor_set_with_template(
                secondary,
                push_template,
                push_layout,
                0,
                &data3 as *const _ as *const std::ffi::c_void,
            );
            d.cmd_dispatch(secondary, 1, 1, 1);
            d.end_command_buffer(secondary)
                .check("vkEndCommandBuffer")?;
        }
    }

    // The primary command buffer's inheritance info is ignored.
    let begin = vk::CommandBufferBeginInfo {
        flags: vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT,
        p_inheritance_info: poison(),
        ..Default::default()
    };
    unsafe { d.begin_command_buffer(primary, &begin) }.check("vkBeginCommandBuffer")?;
    ctx.image_barrier(
        primary,
        &texture,
        (vk::ImageLayout::UNDEFINED, Access::NONE),
        (
            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            Access::TRANSFER_WRITE,
        ),
    );
    ctx.copy_buffer_to_image(primary, &staging, &texture);
    ctx.image_barrier(
        primary,
        &texture,
        (
            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
            Access::TRANSFER_WRITE,
        ),
        (
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            Access::COMPUTE_READ,
        ),
    );
    unsafe {
        d.cmd_bind_pipeline(primary, vk::PipelineBindPoint::COMPUTE, set_pipeline);
        for set in &sets {
            d.cmd_bind_descriptor_sets(
                primary,
                vk::PipelineBindPoint::COMPUTE,
                pipeline_layout,
                0,
                std::slice::from_ref(set),
                &[],
            );
            d.cmd_dispatch(primary, 1, 1, 1);
        }
        if push.is_some() {
            d.cmd_execute_commands(primary, &[secondary]);
        }
    }
    ctx.memory_barrier(primary, Access::COMPUTE_WRITE, Access::HOST_READ);
    unsafe { d.end_command_buffer(primary) }.check("vkEndCommandBuffer")?;
    ctx.submit_and_wait(&[primary])?;

    let values: Vec<[f32; 4]> = out.read();
    let ran = if push.is_some() { 4 } else { 2 };
    for (pass, name) in PASSES.iter().enumerate().take(ran) {
        let got: Vec<[u8; 4]> = values[pass * PASS_VEC4S as usize..][..PASS_VEC4S as usize]
            .iter()
            .map(|v| v.map(|c| (c * 255.0).round() as u8))
            .collect();
        check_elements(&format!("texels read in the {name} pass"), &got, |k| {
            texel(k as u32 / 2)
        })?;
    }
    report.values("compute", &values);
    Ok(())
}

const SIZE: u32 = 16;
const CLEAR: [u8; 4] = [10, 20, 30, 255];

/// What the drawing pipelines share; each fills in the state it tests.
struct Fixed<'a> {
    stages: [vk::PipelineShaderStageCreateInfo<'a>; 2],
    assembly: vk::PipelineInputAssemblyStateCreateInfo<'a>,
    raster: vk::PipelineRasterizationStateCreateInfo<'a>,
    multisample: vk::PipelineMultisampleStateCreateInfo<'a>,
    layout: vk::PipelineLayout,
}

fn fixed(ctx: &Context) -> Result<Fixed<'static>> {
    let push = vk::PushConstantRange::default()
        .stage_flags(vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT)
        .size(std::mem::size_of::<Rect>() as u32);
    Ok(Fixed {
        stages: [
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::VERTEX)
                .module(ctx.shader_module(shaders::RECT_VERT)?)
                .name(c"main"),
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::FRAGMENT)
                .module(ctx.shader_module(shaders::RECT_FRAG)?)
                .name(c"main"),
        ],
        assembly: vk::PipelineInputAssemblyStateCreateInfo::default()
            .topology(vk::PrimitiveTopology::TRIANGLE_LIST),
        raster: vk::PipelineRasterizationStateCreateInfo::default()
            .polygon_mode(vk::PolygonMode::FILL)
            .cull_mode(vk::CullModeFlags::NONE)
            .line_width(1.0),
        multisample: vk::PipelineMultisampleStateCreateInfo::default()
            .rasterization_samples(vk::SampleCountFlags::TYPE_1),
        layout: ctx.pipeline_layout(&[], &[push])?,
    })
}

fn create_graphics(
    ctx: &Context,
    info: &vk::GraphicsPipelineCreateInfo<'_>,
) -> Result<vk::Pipeline> {
    unsafe {
        ctx.device.create_graphics_pipelines(
            vk::PipelineCache::null(),
            std::slice::from_ref(info),
            None,
        )
    }
    .check("vkCreateGraphicsPipelines")
    .map(|p| ctx.own(p[0]))
}

/// A rectangle drawn by a pipeline whose ignored state is garbage (tessellation, viewports and
/// scissors set dynamically, depth/stencil without a depth attachment, vertex input and blend
/// attachments where they are dynamic), into an attachment whose resolve view is ignored.
fn draw(ctx: &Context, report: &mut Report) -> Result<()> {
    let d = &ctx.device;
    let f = fixed(ctx)?;
    let vertex_input = ctx.vertex_input_dynamic.as_ref();
    let dynamic_blend = ctx.dynamic_blend.as_ref();
    report.flag("vertex input dynamic", vertex_input.is_some());
    report.flag("blend dynamic", dynamic_blend.is_some());
    let mut states = vec![vk::DynamicState::VIEWPORT, vk::DynamicState::SCISSOR];
    if vertex_input.is_some() {
        states.push(vk::DynamicState::VERTEX_INPUT_EXT);
    }
    if dynamic_blend.is_some() {
        states.extend([
            vk::DynamicState::COLOR_BLEND_ENABLE_EXT,
            vk::DynamicState::COLOR_BLEND_EQUATION_EXT,
            vk::DynamicState::COLOR_WRITE_MASK_EXT,
        ]);
    }
    let dynamic = vk::PipelineDynamicStateCreateInfo::default().dynamic_states(&states);
    let empty_input = vk::PipelineVertexInputStateCreateInfo::default();
    let viewport = vk::PipelineViewportStateCreateInfo {
        viewport_count: 1,
        p_viewports: poison(),
        scissor_count: 1,
        p_scissors: poison(),
        ..Default::default()
    };
    let attachment = [vk::PipelineColorBlendAttachmentState::default()
        .color_write_mask(vk::ColorComponentFlags::RGBA)];
    let mut blend = vk::PipelineColorBlendStateCreateInfo::default().attachments(&attachment);
    if dynamic_blend.is_some() {
        blend.p_attachments = poison_unless_validating(ctx, attachment.as_ptr());
    }
    let formats = [COLOR_FORMAT];
    let mut rendering =
        vk::PipelineRenderingCreateInfo::default().color_attachment_formats(&formats);
    let info = vk::GraphicsPipelineCreateInfo {
        stage_count: 2,
        p_stages: f.stages.as_ptr(),
        p_vertex_input_state: if vertex_input.is_some() {
            poison_unless_validating(ctx, &empty_input)
        } else {
            &empty_input
        },
        p_input_assembly_state: &f.assembly,
        p_tessellation_state: poison(),
        p_viewport_state: &viewport,
        p_rasterization_state: &f.raster,
        p_multisample_state: &f.multisample,
        p_depth_stencil_state: poison(),
        p_color_blend_state: &blend,
        p_dynamic_state: &dynamic,
        layout: f.layout,
        base_pipeline_handle: garbage(),
        base_pipeline_index: -1,
        ..Default::default()
    }
    .push_next(&mut rendering);
    let pipeline = create_graphics(ctx, &info)?;

    let extent = vk::Extent2D {
        width: SIZE,
        height: SIZE,
    };
    let color = ctx.image(
        extent,
        COLOR_FORMAT,
        vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
        vk::SampleCountFlags::TYPE_1,
    )?;
    let readback = ctx.buffer(
        u64::from(SIZE * SIZE * 4),
        vk::BufferUsageFlags::TRANSFER_DST,
        Location::Host,
    )?;
    let other = ctx.image(
        extent,
        COLOR_FORMAT,
        vk::ImageUsageFlags::COLOR_ATTACHMENT,
        vk::SampleCountFlags::TYPE_1,
    )?;
    let rect = Rect::pixels(SIZE, [4, 2, 12, 10], [200, 100, 50, 255], 0.5);
    ctx.run_commands(|cmd| {
        ctx.image_barrier(
            cmd,
            &color,
            (vk::ImageLayout::UNDEFINED, Access::NONE),
            (
                vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                Access::COLOR_WRITE,
            ),
        );
        let attachments = [vk::RenderingAttachmentInfo {
            image_view: color.view,
            image_layout: vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
            resolve_mode: vk::ResolveModeFlags::NONE,
            resolve_image_view: other.view,
            load_op: vk::AttachmentLoadOp::CLEAR,
            store_op: vk::AttachmentStoreOp::STORE,
            clear_value: vk::ClearValue {
                color: vk::ClearColorValue {
                    float32: CLEAR.map(|c| f32::from(c) / 255.0),
                },
            },
            ..Default::default()
        }];
        let rendering = vk::RenderingInfo::default()
            .render_area(extent.into())
            .layer_count(1)
            .color_attachments(&attachments);
        unsafe {
            d.cmd_begin_rendering(cmd, &rendering);
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::GRAPHICS, pipeline);
            if let Some(v) = vertex_input {
                v.cmd_set_vertex_input(cmd, &[], &[]);
            }
            if let Some(b) = dynamic_blend {
                b.cmd_set_color_blend_enable(cmd, 0, &[vk::FALSE]);
                b.cmd_set_color_blend_equation(
                    cmd,
                    0,
                    &[vk::ColorBlendEquationEXT::default()
                        .src_color_blend_factor(vk::BlendFactor::ONE)
                        .src_alpha_blend_factor(vk::BlendFactor::ONE)],
                );
                b.cmd_set_color_write_mask(cmd, 0, &[vk::ColorComponentFlags::RGBA]);
            }
        }
        ctx.set_viewport(cmd, extent);
        unsafe {
            d.cmd_push_constants(
                cmd,
                f.layout,
                vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT,
                0,
                bytemuck::bytes_of(&rect),
            );
            d.cmd_draw(cmd, 6, 1, 0, 0);
            d.cmd_end_rendering(cmd);
        }
        ctx.image_barrier(
            cmd,
            &color,
            (
                vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
                Access::COLOR_WRITE,
            ),
            (vk::ImageLayout::TRANSFER_SRC_OPTIMAL, Access::TRANSFER_READ),
        );
        ctx.copy_image_to_host(cmd, &color, &readback);
        Ok(())
    })?;
    let pixels: Vec<[u8; 4]> = readback.read();
    let want = crate::rect::expected_pixels(SIZE, CLEAR, &[rect], false);
    check_elements("pixels", &pixels, |i| want[i])?;
    report.values("pixels", &pixels);
    Ok(())
}

/// Objects that are created and destroyed only: that they are created is the check.
fn create_only(ctx: &Context, report: &mut Report) -> Result<()> {
    let d = &ctx.device;
    let f = fixed(ctx)?;
    let formats = [COLOR_FORMAT];
    // Rasterization discarded: viewport, multisample, depth/stencil and blend state ignored.
    let discard_raster = vk::PipelineRasterizationStateCreateInfo {
        rasterizer_discard_enable: vk::TRUE,
        ..f.raster
    };
    let empty_input = vk::PipelineVertexInputStateCreateInfo::default();
    let mut rendering =
        vk::PipelineRenderingCreateInfo::default().color_attachment_formats(&formats);
    let base = vk::GraphicsPipelineCreateInfo {
        stage_count: 1,
        p_stages: f.stages.as_ptr(),
        p_vertex_input_state: &empty_input,
        p_input_assembly_state: &f.assembly,
        p_rasterization_state: &discard_raster,
        p_viewport_state: poison(),
        p_multisample_state: poison(),
        p_depth_stencil_state: poison(),
        p_color_blend_state: poison(),
        layout: f.layout,
        base_pipeline_index: -1,
        ..Default::default()
    };
    create_graphics(ctx, &base.push_next(&mut rendering))?;
    report.flag("discarding pipeline", true);

    // No colour and no depth attachment: blend and depth/stencil state ignored.
    let viewport = vk::PipelineViewportStateCreateInfo::default()
        .viewport_count(1)
        .scissor_count(1);
    let states = [vk::DynamicState::VIEWPORT, vk::DynamicState::SCISSOR];
    let dynamic = vk::PipelineDynamicStateCreateInfo::default().dynamic_states(&states);
    let mut no_attachments = vk::PipelineRenderingCreateInfo::default();
    let unattached = vk::GraphicsPipelineCreateInfo {
        stage_count: 2,
        p_rasterization_state: &f.raster,
        p_viewport_state: &viewport,
        p_multisample_state: &f.multisample,
        p_dynamic_state: &dynamic,
        ..base
    };
    create_graphics(ctx, &unattached.push_next(&mut no_attachments))?;
    report.flag("pipeline without attachments", true);

    // With a render pass, a chained VkPipelineRenderingCreateInfo is ignored.
    let attachment = [vk::AttachmentDescription::default()
        .format(COLOR_FORMAT)
        .samples(vk::SampleCountFlags::TYPE_1)
        .load_op(vk::AttachmentLoadOp::CLEAR)
        .store_op(vk::AttachmentStoreOp::STORE)
        .final_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)];
    let color_ref = [vk::AttachmentReference::default()
        .attachment(0)
        .layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)];
    let subpass = [vk::SubpassDescription::default()
        .pipeline_bind_point(vk::PipelineBindPoint::GRAPHICS)
        .color_attachments(&color_ref)];
    let pass_info = vk::RenderPassCreateInfo::default()
        .attachments(&attachment)
        .subpasses(&subpass);
    let render_pass = unsafe { d.create_render_pass(&pass_info, None) }
        .check("vkCreateRenderPass")
        .map(|p| ctx.own(p))?;
    let blend_attachment = [vk::PipelineColorBlendAttachmentState::default()
        .color_write_mask(vk::ColorComponentFlags::RGBA)];
    let blend = vk::PipelineColorBlendStateCreateInfo::default().attachments(&blend_attachment);
    let depth = vk::PipelineDepthStencilStateCreateInfo::default();
    let mut ignored_rendering = vk::PipelineRenderingCreateInfo {
        color_attachment_count: 1,
        p_color_attachment_formats: poison_unless_validating(ctx, formats.as_ptr()),
        ..Default::default()
    };
    let with_pass = vk::GraphicsPipelineCreateInfo {
        render_pass,
        p_color_blend_state: &blend,
        p_depth_stencil_state: &depth,
        ..unattached
    };
    create_graphics(ctx, &with_pass.push_next(&mut ignored_rendering))?;
    report.flag("render pass pipeline", true);

    // An imageless framebuffer: its attachments are ignored.
    report.flag("imageless framebuffer", ctx.imageless_framebuffer);
    if ctx.imageless_framebuffer {
        let image_info = [vk::FramebufferAttachmentImageInfo::default()
            .usage(vk::ImageUsageFlags::COLOR_ATTACHMENT)
            .width(SIZE)
            .height(SIZE)
            .layer_count(1)
            .view_formats(&formats)];
        let mut attachments =
            vk::FramebufferAttachmentsCreateInfo::default().attachment_image_infos(&image_info);
        let info = vk::FramebufferCreateInfo {
            flags: vk::FramebufferCreateFlags::IMAGELESS,
            render_pass,
            attachment_count: 1,
            p_attachments: poison(),
            width: SIZE,
            height: SIZE,
            layers: 1,
            ..Default::default()
        }
        .push_next(&mut attachments);
        let framebuffer =
            unsafe { d.create_framebuffer(&info, None) }.check("vkCreateFramebuffer")?;
        ensure(framebuffer != vk::Framebuffer::null(), || {
            "vkCreateFramebuffer made no framebuffer".into()
        })?;
        unsafe { d.destroy_framebuffer(framebuffer, None) };
    }
    Ok(())
}
