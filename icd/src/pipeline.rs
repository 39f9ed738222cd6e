//! Pipelines: the creation feedback an application chains to a create info
//! (`VkPipelineCreationFeedbackCreateInfo`) is the ICD's to fill in. The structure points into
//! the application's memory for the host to write, which the wire does not carry (`codegen`
//! leaves the structure out of the chain it sends), so without this the application would read
//! back whatever it left there. The ICD times the creation as the application sees it (the
//! host's compilation and the round trip; for several pipelines in one call, the whole call)
//! and reports it as valid for each pipeline made; the stages' entries say they are not valid,
//! which Vulkan allows an implementation.
//!
//! Creations are calls: the server runs them off its reader thread, so that pipelines an
//! application compiles on several threads compile at once there too, and so that a posted
//! creation could not be overtaken by a later request naming its shader modules or cache.

use crate::call::call;
use crate::util::app_slice as slice;
use ash::vk::{self, Handle};
use std::ffi::c_void;
use std::time::Instant;
use wire::desc::CommandDesc;
use wire::generated::commands::{C_vkCreateComputePipelines, C_vkCreateGraphicsPipelines};

/// The creation-feedback structure in a create info's chain, if any.
///
/// # Safety
/// `next` is a valid Vulkan structure chain.
unsafe fn feedback<'a>(
    mut next: *const c_void,
) -> Option<&'a vk::PipelineCreationFeedbackCreateInfo<'a>> {
    while !next.is_null() {
        let s = &*(next as *const vk::BaseInStructure<'_>);
        if s.s_type == vk::StructureType::PIPELINE_CREATION_FEEDBACK_CREATE_INFO {
            return Some(&*(next as *const vk::PipelineCreationFeedbackCreateInfo<'_>));
        }
        next = s.p_next as *const c_void;
    }
    None
}

/// Calls `cmd`, then fills in the creation feedback of each create info of `infos` whose chain
/// (`next` of it) has one.
///
/// # Safety
/// The application's arguments to `cmd`, a `vkCreate*Pipelines` whose create infos are `I`.
#[allow(clippy::too_many_arguments)]
unsafe fn create<I>(
    cmd: &'static CommandDesc,
    device: vk::Device,
    cache: vk::PipelineCache,
    count: u32,
    infos: *const I,
    next: impl Fn(&I) -> *const c_void,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Pipeline,
) -> vk::Result {
    let args = [
        device.as_raw(),
        cache.as_raw(),
        count as u64,
        infos as u64,
        allocator as u64,
        out as u64,
    ];
    let t = Instant::now();
    let r = vk::Result::from_raw(call(cmd, &args) as i32);
    let took = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
    for (k, info) in slice(infos, count).iter().enumerate() {
        let Some(f) = feedback(next(info)) else {
            continue;
        };
        let made = !out.is_null() && *out.add(k) != vk::Pipeline::null();
        if let Some(whole) = f.p_pipeline_creation_feedback.as_mut() {
            *whole = if made {
                vk::PipelineCreationFeedback {
                    flags: vk::PipelineCreationFeedbackFlags::VALID,
                    duration: took,
                }
            } else {
                vk::PipelineCreationFeedback::default()
            };
        }
        if !f.p_pipeline_stage_creation_feedbacks.is_null() {
            for k in 0..f.pipeline_stage_creation_feedback_count as usize {
                *f.p_pipeline_stage_creation_feedbacks.add(k) =
                    vk::PipelineCreationFeedback::default();
            }
        }
    }
    r
}

pub unsafe extern "system" fn vkCreateComputePipelines(
    device: vk::Device,
    cache: vk::PipelineCache,
    count: u32,
    infos: *const vk::ComputePipelineCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Pipeline,
) -> vk::Result {
    let cmd = &C_vkCreateComputePipelines;
    create(
        cmd,
        device,
        cache,
        count,
        infos,
        |i| i.p_next,
        allocator,
        out,
    )
}

pub unsafe extern "system" fn vkCreateGraphicsPipelines(
    device: vk::Device,
    cache: vk::PipelineCache,
    count: u32,
    infos: *const vk::GraphicsPipelineCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::Pipeline,
) -> vk::Result {
    let cmd = &C_vkCreateGraphicsPipelines;
    create(
        cmd,
        device,
        cache,
        count,
        infos,
        |i| i.p_next,
        allocator,
        out,
    )
}
