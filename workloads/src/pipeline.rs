//! Shader modules, layouts, compute kernels and graphics pipelines.

use crate::context::Context;
use crate::error::{Check, Result};
use crate::memory::Buffer;
use ash::vk;
use bytemuck::NoUninit;

/// A compute pipeline whose set 0 holds `storage_buffers` storage buffers (bindings 0..n), with
/// one push-constant range at offset 0.
pub struct Kernel {
    pub pipeline: vk::Pipeline,
    pub layout: vk::PipelineLayout,
    pub set_layout: vk::DescriptorSetLayout,
}

/// What a graphics pipeline renders into.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    RenderPass(vk::RenderPass),
    /// Dynamic rendering (`vkCmdBeginRendering`) with these attachment formats.
    Dynamic {
        color: vk::Format,
        depth: Option<vk::Format>,
    },
}

/// The parts of a graphics pipeline that differ between the workloads; the rest is fixed:
/// triangle lists, no culling, dynamic viewport and scissor.
pub struct GraphicsDesc<'a> {
    pub vertex: &'a [u8],
    pub fragment: &'a [u8],
    pub layout: vk::PipelineLayout,
    pub bindings: &'a [vk::VertexInputBindingDescription],
    pub attributes: &'a [vk::VertexInputAttributeDescription],
    pub samples: vk::SampleCountFlags,
    pub depth_test: bool,
    /// Straight alpha blending for colour; alpha accumulates towards opaque.
    pub blend: bool,
    pub target: Target,
}

pub fn storage_binding(binding: u32, count: u32) -> vk::DescriptorSetLayoutBinding<'static> {
    descriptor_binding(
        binding,
        vk::DescriptorType::STORAGE_BUFFER,
        count,
        vk::ShaderStageFlags::COMPUTE,
    )
}

pub fn descriptor_binding(
    binding: u32,
    ty: vk::DescriptorType,
    count: u32,
    stages: vk::ShaderStageFlags,
) -> vk::DescriptorSetLayoutBinding<'static> {
    vk::DescriptorSetLayoutBinding::default()
        .binding(binding)
        .descriptor_type(ty)
        .descriptor_count(count)
        .stage_flags(stages)
}

impl Context {
    pub fn shader_module(&self, spirv: &[u8]) -> Result<vk::ShaderModule> {
        let words = ash::util::read_spv(&mut std::io::Cursor::new(spirv))
            .expect("build.rs produced well-formed SPIR-V");
        let info = vk::ShaderModuleCreateInfo::default().code(&words);
        unsafe { self.device.create_shader_module(&info, None) }
            .check("vkCreateShaderModule")
            .map(|m| self.own(m))
    }

    pub fn set_layout(
        &self,
        bindings: &[vk::DescriptorSetLayoutBinding<'_>],
        flags: vk::DescriptorSetLayoutCreateFlags,
    ) -> Result<vk::DescriptorSetLayout> {
        let info = vk::DescriptorSetLayoutCreateInfo::default()
            .flags(flags)
            .bindings(bindings);
        unsafe { self.device.create_descriptor_set_layout(&info, None) }
            .check("vkCreateDescriptorSetLayout")
            .map(|l| self.own(l))
    }

    pub fn pipeline_layout(
        &self,
        set_layouts: &[vk::DescriptorSetLayout],
        push_constants: &[vk::PushConstantRange],
    ) -> Result<vk::PipelineLayout> {
        let info = vk::PipelineLayoutCreateInfo::default()
            .set_layouts(set_layouts)
            .push_constant_ranges(push_constants);
        unsafe { self.device.create_pipeline_layout(&info, None) }
            .check("vkCreatePipelineLayout")
            .map(|l| self.own(l))
    }

    pub fn compute_pipeline(
        &self,
        spirv: &[u8],
        layout: vk::PipelineLayout,
        cache: vk::PipelineCache,
    ) -> Result<vk::Pipeline> {
        let module = self.shader_module(spirv)?;
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module)
            .name(c"main");
        let info = vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(layout);
        unsafe { self.device.create_compute_pipelines(cache, &[info], None) }
            .check("vkCreateComputePipelines")
            .map(|p| self.own(p[0]))
    }

    /// See [`Kernel`]. `push_size` 0 means no push constants.
    pub fn kernel(
        &self,
        spirv: &[u8],
        storage_buffers: u32,
        push_size: u32,
        cache: vk::PipelineCache,
    ) -> Result<Kernel> {
        let bindings: Vec<_> = (0..storage_buffers)
            .map(|b| storage_binding(b, 1))
            .collect();
        let set_layout = self.set_layout(&bindings, vk::DescriptorSetLayoutCreateFlags::empty())?;
        let ranges: Vec<_> = (push_size > 0)
            .then(|| {
                vk::PushConstantRange::default()
                    .stage_flags(vk::ShaderStageFlags::COMPUTE)
                    .size(push_size)
            })
            .into_iter()
            .collect();
        let layout = self.pipeline_layout(&[set_layout], &ranges)?;
        let pipeline = self.compute_pipeline(spirv, layout, cache)?;
        Ok(Kernel {
            pipeline,
            layout,
            set_layout,
        })
    }

    /// A descriptor set for `kernel` with `buffers` at bindings 0.. in order.
    pub fn kernel_set(&self, kernel: &Kernel, buffers: &[&Buffer]) -> Result<vk::DescriptorSet> {
        let set = self.descriptor_set(kernel.set_layout)?;
        let infos: Vec<_> = buffers.iter().map(|b| [b.info()]).collect();
        let writes: Vec<_> = infos
            .iter()
            .enumerate()
            .map(|(binding, info)| {
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(binding as u32)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(info)
            })
            .collect();
        unsafe { self.device.update_descriptor_sets(&writes, &[]) };
        Ok(set)
    }

    pub fn graphics_pipeline(&self, desc: &GraphicsDesc<'_>) -> Result<vk::Pipeline> {
        let vertex = self.shader_module(desc.vertex)?;
        let fragment = self.shader_module(desc.fragment)?;
        let stages = [
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::VERTEX)
                .module(vertex)
                .name(c"main"),
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::FRAGMENT)
                .module(fragment)
                .name(c"main"),
        ];
        let vertex_input = vk::PipelineVertexInputStateCreateInfo::default()
            .vertex_binding_descriptions(desc.bindings)
            .vertex_attribute_descriptions(desc.attributes);
        let assembly = vk::PipelineInputAssemblyStateCreateInfo::default()
            .topology(vk::PrimitiveTopology::TRIANGLE_LIST);
        let viewport = vk::PipelineViewportStateCreateInfo::default()
            .viewport_count(1)
            .scissor_count(1);
        let raster = vk::PipelineRasterizationStateCreateInfo::default()
            .polygon_mode(vk::PolygonMode::FILL)
            .cull_mode(vk::CullModeFlags::NONE)
            .line_width(1.0);
        let multisample =
            vk::PipelineMultisampleStateCreateInfo::default().rasterization_samples(desc.samples);
        let depth = vk::PipelineDepthStencilStateCreateInfo::default()
            .depth_test_enable(desc.depth_test)
            .depth_write_enable(desc.depth_test)
            .depth_compare_op(vk::CompareOp::LESS);
        let blend_attachment = [vk::PipelineColorBlendAttachmentState::default()
            .blend_enable(desc.blend)
            .src_color_blend_factor(vk::BlendFactor::SRC_ALPHA)
            .dst_color_blend_factor(vk::BlendFactor::ONE_MINUS_SRC_ALPHA)
            .color_blend_op(vk::BlendOp::ADD)
            .src_alpha_blend_factor(vk::BlendFactor::ONE)
            .dst_alpha_blend_factor(vk::BlendFactor::ONE_MINUS_SRC_ALPHA)
            .alpha_blend_op(vk::BlendOp::ADD)
            .color_write_mask(vk::ColorComponentFlags::RGBA)];
        let blend = vk::PipelineColorBlendStateCreateInfo::default().attachments(&blend_attachment);
        let dynamic_states = [vk::DynamicState::VIEWPORT, vk::DynamicState::SCISSOR];
        let dynamic = vk::PipelineDynamicStateCreateInfo::default().dynamic_states(&dynamic_states);
        let mut info = vk::GraphicsPipelineCreateInfo::default()
            .stages(&stages)
            .vertex_input_state(&vertex_input)
            .input_assembly_state(&assembly)
            .viewport_state(&viewport)
            .rasterization_state(&raster)
            .multisample_state(&multisample)
            .depth_stencil_state(&depth)
            .color_blend_state(&blend)
            .dynamic_state(&dynamic)
            .layout(desc.layout);
        let color_formats;
        let mut rendering;
        match desc.target {
            Target::RenderPass(render_pass) => info = info.render_pass(render_pass),
            Target::Dynamic { color, depth } => {
                color_formats = [color];
                rendering = vk::PipelineRenderingCreateInfo::default()
                    .color_attachment_formats(&color_formats)
                    .depth_attachment_format(depth.unwrap_or(vk::Format::UNDEFINED));
                info = info.push_next(&mut rendering);
            }
        }
        unsafe {
            self.device
                .create_graphics_pipelines(vk::PipelineCache::null(), &[info], None)
        }
        .check("vkCreateGraphicsPipelines")
        .map(|p| self.own(p[0]))
    }

    /// Viewport and scissor covering `extent`, depth range 0..1.
    pub fn set_viewport(&self, cmd: vk::CommandBuffer, extent: vk::Extent2D) {
        let viewport = vk::Viewport::default()
            .width(extent.width as f32)
            .height(extent.height as f32)
            .max_depth(1.0);
        unsafe {
            self.device.cmd_set_viewport(cmd, 0, &[viewport]);
            self.device.cmd_set_scissor(cmd, 0, &[extent.into()]);
        }
    }
}

impl Kernel {
    /// Binds the pipeline and `set`, pushes `push` at offset 0 (unless it is `()`) and
    /// dispatches `groups`.
    pub fn dispatch<T: NoUninit>(
        &self,
        ctx: &Context,
        cmd: vk::CommandBuffer,
        set: vk::DescriptorSet,
        push: &T,
        groups: [u32; 3],
    ) {
        self.bind(ctx, cmd, set);
        let bytes = bytemuck::bytes_of(push);
        if !bytes.is_empty() {
            self.push(ctx, cmd, 0, bytes);
        }
        unsafe {
            ctx.device
                .cmd_dispatch(cmd, groups[0], groups[1], groups[2])
        };
    }

    pub fn bind(&self, ctx: &Context, cmd: vk::CommandBuffer, set: vk::DescriptorSet) {
        unsafe {
            ctx.device
                .cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, self.pipeline);
            ctx.device.cmd_bind_descriptor_sets(
                cmd,
                vk::PipelineBindPoint::COMPUTE,
                self.layout,
                0,
                &[set],
                &[],
            );
        }
    }

    /// `vkCmdPushConstants` of `bytes` at byte `offset`.
    pub fn push(&self, ctx: &Context, cmd: vk::CommandBuffer, offset: u32, bytes: &[u8]) {
        unsafe {
            ctx.device.cmd_push_constants(
                cmd,
                self.layout,
                vk::ShaderStageFlags::COMPUTE,
                offset,
                bytes,
            )
        };
    }
}
