//! Pipelines and render passes: render passes whose attachment or subpass indices leave their
//! arrays are refused (the host driver indexes with them unchecked), and so are pipelines
//! whose stages are not one stage of their kind, or naming a subpass their render pass does not
//! have; pipeline layouts destroyed while
//! command buffers record wait until none does.
//!
//! Since Vulkan 1.3 (maintenance4) an application may destroy a pipeline layout right after
//! recording commands that name it. Airlock ships recorded commands later, in batches, so the
//! server would meet the layout after it is gone. While any command buffer records, the server
//! therefore postpones destroying pipeline layouts until none does.

use crate::dispatch::{answer, Before, Hook, Pending, Server, HOST};
use crate::generated::calls;
use crate::generated::views;
use crate::indices;
use crate::objects::{ClientId, HostHandle};
use ash::vk::{self, Handle};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use tracing::warn;
use wire::generated::commands::{id, C_vkDestroyPipelineLayout};

/// A pipeline layout waiting to be destroyed: client id, host handle, host device.
type Layout = (ClientId, HostHandle, HostHandle);

/// What the pipeline family keeps: the command buffers recording, the layouts waiting, and
/// how many subpasses each render pass has.
#[derive(Default)]
pub struct Pipelines {
    state: Mutex<Deferred>,
    /// Host render pass → its subpass count (a destroyed pass's entry stays until its handle
    /// is made again: only live handles get past the decoder).
    subpasses: Mutex<HashMap<u64, u32>>,
}

#[derive(Default)]
struct Deferred {
    /// Host command buffers between begin and end (or reset, or free).
    recording: HashSet<u64>,
    layouts: Vec<Layout>,
}

impl Pipelines {
    /// A command buffer began recording.
    pub fn recording(&self, command_buffer: u64) {
        self.state.lock().recording.insert(command_buffer);
    }

    /// The command buffers stopped recording; the layouts that can go now.
    fn ended(&self, command_buffers: impl IntoIterator<Item = u64>) -> Vec<Layout> {
        let mut s = self.state.lock();
        for c in command_buffers {
            s.recording.remove(&c);
        }
        if s.recording.is_empty() {
            std::mem::take(&mut s.layouts)
        } else {
            Vec::new()
        }
    }

    /// Postpones destroying `layout` if a command buffer records; false: destroy it now.
    fn defer(&self, layout: Layout) -> bool {
        let mut s = self.state.lock();
        if s.recording.is_empty() {
            return false;
        }
        s.layouts.push(layout);
        true
    }
}

/// # Safety
/// `args` are the decoded arguments of `vkCreateRenderPass` or `vkCreateRenderPass2`.
pub unsafe fn before_render_pass(args: &mut [u64], h: &Hook) -> Before {
    let checked = if h.cmd.id == id::vkCreateRenderPass {
        indices::render_pass(&*views::CreateRenderPass::of(args).p_create_info)
    } else {
        indices::render_pass2(&*views::CreateRenderPass2::of(args).p_create_info)
    };
    match checked {
        Ok(()) => HOST,
        Err(why) => {
            warn!("{}: {why}; VK_ERROR_VALIDATION_FAILED_EXT", h.cmd.name);
            answer(vk::Result::ERROR_VALIDATION_FAILED_EXT)
        }
    }
}

/// Notes the subpass count of a new render pass.
///
/// # Safety
/// `args` are the arguments of a `vkCreateRenderPass` or `vkCreateRenderPass2` that succeeded.
pub unsafe fn after_render_pass(server: &Server, args: &[u64], h: &Hook) {
    let (pass, count) = if h.cmd.id == id::vkCreateRenderPass {
        let v = views::CreateRenderPass::of(args);
        (*v.p_render_pass, (*v.p_create_info).subpass_count)
    } else {
        let v = views::CreateRenderPass2::of(args);
        (*v.p_render_pass, (*v.p_create_info).subpass_count)
    };
    server
        .pipelines
        .subpasses
        .lock()
        .insert(pass.as_raw(), count);
}

/// Each shader stage of a graphics pipeline must name one graphics stage, and its subpass
/// must be one of its render pass's: lavapipe turns the stage bit into an index of its per-stage
/// arrays, and it and the validation layer index the pass's subpasses, all unchecked (stage 0
/// and stage 0x40000000 crashed lavapipe behind the layer, subpass 8,257,536 of 1 the layer:
/// found by the fuzzer).
///
/// # Safety
/// `args` are the decoded arguments of `vkCreateGraphicsPipelines`.
pub unsafe fn before_graphics(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    let v = views::CreateGraphicsPipelines::of(args);
    let infos = crate::util::slice(v.p_create_infos, u64::from(v.create_info_count));
    let refuse = |why: String| {
        warn!("{}: {why}; VK_ERROR_VALIDATION_FAILED_EXT", h.cmd.name);
        answer(vk::Result::ERROR_VALIDATION_FAILED_EXT)
    };
    let subpasses = server.pipelines.subpasses.lock();
    for (i, info) in infos.iter().enumerate() {
        let stages = crate::util::slice(info.p_stages, u64::from(info.stage_count));
        if let Some((j, s)) = stages
            .iter()
            .enumerate()
            .find(|(_, s)| !one_of(s.stage, GRAPHICS_STAGES))
        {
            return refuse(format!(
                "pCreateInfos[{i}].pStages[{j}]: stage {:#x}",
                s.stage.as_raw()
            ));
        }
        if info.render_pass == vk::RenderPass::null() {
            continue;
        }
        if let Some(&count) = subpasses.get(&info.render_pass.as_raw()) {
            if info.subpass >= count {
                return refuse(format!(
                    "pCreateInfos[{i}]: subpass {} of {count}",
                    info.subpass
                ));
            }
        }
    }
    HOST
}

/// A compute pipeline's stage must be the compute stage (see [`before_graphics`]).
///
/// # Safety
/// `args` are the decoded arguments of `vkCreateComputePipelines`.
pub unsafe fn before_compute(args: &mut [u64], h: &Hook) -> Before {
    let v = views::CreateComputePipelines::of(args);
    let infos = crate::util::slice(v.p_create_infos, u64::from(v.create_info_count));
    match infos
        .iter()
        .position(|info| info.stage.stage != vk::ShaderStageFlags::COMPUTE)
    {
        None => HOST,
        Some(i) => {
            warn!(
                "{}: pCreateInfos[{i}].stage: stage {:#x}; VK_ERROR_VALIDATION_FAILED_EXT",
                h.cmd.name,
                infos[i].stage.stage.as_raw()
            );
            answer(vk::Result::ERROR_VALIDATION_FAILED_EXT)
        }
    }
}

/// The stages a graphics pipeline may have.
const GRAPHICS_STAGES: vk::ShaderStageFlags = vk::ShaderStageFlags::from_raw(
    vk::ShaderStageFlags::ALL_GRAPHICS.as_raw()
        | vk::ShaderStageFlags::TASK_EXT.as_raw()
        | vk::ShaderStageFlags::MESH_EXT.as_raw(),
);

/// Whether `stage` is exactly one bit of `allowed`.
fn one_of(stage: vk::ShaderStageFlags, allowed: vk::ShaderStageFlags) -> bool {
    stage.as_raw().is_power_of_two() && allowed.contains(stage)
}

/// # Safety
/// `args` are the decoded arguments of `vkDestroyPipelineLayout`.
pub unsafe fn before_destroy_layout(server: &Server, args: &mut [u64]) -> Before {
    let v = views::DestroyPipelineLayout::of(args);
    let host = HostHandle(v.pipeline_layout.as_raw());
    if host.0 == 0 {
        return HOST;
    }
    let Some(id) = server.objects.id_of(vk::ObjectType::PIPELINE_LAYOUT, host) else {
        return HOST;
    };
    let device = HostHandle(v.device.as_raw());
    if server.pipelines.defer((id, host, device)) {
        (Some(0), Pending::Deferred)
    } else {
        HOST
    }
}

/// Command buffers stopped recording: destroys the layouts that waited for them.
pub fn recording_ended(server: &Server, command_buffers: Vec<u64>) {
    for (id, host, device) in server.pipelines.ended(command_buffers) {
        let table = server.device_table(device);
        if let Some(fp) = table.and_then(|t| server.resolve(&C_vkDestroyPipelineLayout, Some(&t))) {
            // SAFETY: a layout the client destroyed, that no recording names any more.
            unsafe {
                calls::call(id::vkDestroyPipelineLayout, fp, &[device.0, host.0, 0]);
            }
        }
        server.objects.unbind(id);
    }
}
