//! Pipelines: the create infos point at state that Vulkan says to ignore in some pipelines
//! (viewport, multisample, depth and blend state when rasterization is discarded; tessellation
//! state without tessellation shaders; the base pipeline of a pipeline that derives from none).
//! Applications may leave anything there, so those members are cleared before encoding.

use crate::call::{app_slice as slice, call};
use ash::vk::{self, Handle};
use wire::generated::commands::{C_vkCreateComputePipelines, C_vkCreateGraphicsPipelines};

fn derives(flags: vk::PipelineCreateFlags) -> bool {
    flags.contains(vk::PipelineCreateFlags::DERIVATIVE)
}

/// Whether rasterization is statically discarded (not left to dynamic state).
unsafe fn discards(info: &vk::GraphicsPipelineCreateInfo<'_>) -> bool {
    let Some(raster) = info.p_rasterization_state.as_ref() else {
        return false;
    };
    let dynamic = info.p_dynamic_state.as_ref().is_some_and(|d| {
        slice(d.p_dynamic_states, d.dynamic_state_count)
            .contains(&vk::DynamicState::RASTERIZER_DISCARD_ENABLE)
    });
    raster.rasterizer_discard_enable == vk::TRUE && !dynamic
}

unsafe fn clean_graphics<'a>(
    info: &vk::GraphicsPipelineCreateInfo<'a>,
) -> vk::GraphicsPipelineCreateInfo<'a> {
    let mut c = *info;
    // Libraries carry only some of the state; what they ignore depends on their parts, so they
    // travel as given.
    if info.flags.contains(vk::PipelineCreateFlags::LIBRARY_KHR) {
        return c;
    }
    let tessellates = slice(info.p_stages, info.stage_count).iter().any(|s| {
        s.stage.intersects(
            vk::ShaderStageFlags::TESSELLATION_CONTROL
                | vk::ShaderStageFlags::TESSELLATION_EVALUATION,
        )
    });
    if !tessellates {
        c.p_tessellation_state = std::ptr::null();
    }
    if discards(info) {
        c.p_viewport_state = std::ptr::null();
        c.p_multisample_state = std::ptr::null();
        c.p_depth_stencil_state = std::ptr::null();
        c.p_color_blend_state = std::ptr::null();
    }
    if !derives(info.flags) {
        c.base_pipeline_handle = vk::Pipeline::null();
    }
    c
}

/// Creates pipelines from `clean`, the application's create infos with ignored members cleared.
unsafe fn create<T>(
    cmd: &'static wire::desc::CommandDesc,
    device: vk::Device,
    cache: vk::PipelineCache,
    count: u32,
    clean: Option<&[T]>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Pipeline,
) -> vk::Result {
    // A NULL array stays NULL, for the encoder to refuse as the application gave it.
    let infos = clean.map_or(0, |c| c.as_ptr() as u64);
    let count = count as u64;
    vk::Result::from_raw(call(
        cmd,
        &[
            device.as_raw(),
            cache.as_raw(),
            count,
            infos,
            allocator as u64,
            out as u64,
        ],
    ) as i32)
}

pub unsafe extern "system" fn vkCreateGraphicsPipelines(
    device: vk::Device,
    cache: vk::PipelineCache,
    count: u32,
    infos: *const vk::GraphicsPipelineCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Pipeline,
) -> vk::Result {
    let clean: Vec<_> = slice(infos, count)
        .iter()
        .map(|i| clean_graphics(i))
        .collect();
    let clean = (!infos.is_null()).then_some(clean.as_slice());
    create(
        &C_vkCreateGraphicsPipelines,
        device,
        cache,
        count,
        clean,
        allocator,
        out,
    )
}

pub unsafe extern "system" fn vkCreateComputePipelines(
    device: vk::Device,
    cache: vk::PipelineCache,
    count: u32,
    infos: *const vk::ComputePipelineCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Pipeline,
) -> vk::Result {
    let clean: Vec<_> = slice(infos, count)
        .iter()
        .map(|i| {
            let mut c = *i;
            if !derives(i.flags) {
                c.base_pipeline_handle = vk::Pipeline::null();
            }
            c
        })
        .collect();
    let clean = (!infos.is_null()).then_some(clean.as_slice());
    create(
        &C_vkCreateComputePipelines,
        device,
        cache,
        count,
        clean,
        allocator,
        out,
    )
}
