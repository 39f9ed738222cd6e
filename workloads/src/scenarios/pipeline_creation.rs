//! Pipeline creation (icd/src/pipeline.rs): one at a time, eight in one call through a pipeline
//! cache (whose data is then read back), one destroyed before any use, and one with a
//! creation-feedback structure, which the wire does not carry and the ICD fills in: the
//! pipeline's entry valid, the stages' not (natively lavapipe reports the same flags). Every
//! pipeline made is run (salted.comp: `data[i] = i * salt + salt * salt`) and its output
//! checked; the results and the feedback's flags are reported, so a difference from native
//! shows.

use crate::error::{check_elements, ensure};
use crate::memory::{Access, Location};
use crate::pipeline::{storage_binding, Kernel};
use crate::{shaders, Check, Context, Report, Result};
use ash::vk;

const COUNT: u32 = 64;

/// `vkCreateComputePipelines` of salted.comp, one pipeline per salt, with `next` chained to
/// each create info; the result and the pipelines.
fn make(
    ctx: &Context,
    layout: vk::PipelineLayout,
    module: vk::ShaderModule,
    cache: vk::PipelineCache,
    salts: &[u32],
    next: *const std::ffi::c_void,
) -> (vk::Result, Vec<vk::Pipeline>) {
    let entry = vk::SpecializationMapEntry {
        constant_id: 0,
        offset: 0,
        size: 4,
    };
    let data: Vec<[u8; 4]> = salts.iter().map(|s| s.to_ne_bytes()).collect();
    let specs: Vec<_> = data
        .iter()
        .map(|d| {
            vk::SpecializationInfo::default()
                .map_entries(std::slice::from_ref(&entry))
                .data(d)
        })
        .collect();
    let infos: Vec<_> = specs
        .iter()
        .map(|spec| {
            let stage = vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::COMPUTE)
                .module(module)
                .name(c"main")
                .specialization_info(spec);
            let mut info = vk::ComputePipelineCreateInfo::default()
                .stage(stage)
                .layout(layout);
            info.p_next = next;
            info
        })
        .collect();
    let mut out = vec![vk::Pipeline::null(); salts.len()];
    let r = unsafe {
        (ctx.device.fp_v1_0().create_compute_pipelines)(
            ctx.device.handle(),
            cache,
            infos.len() as u32,
            infos.as_ptr(),
            std::ptr::null(),
            out.as_mut_ptr(),
        )
    };
    (r, out)
}

pub fn run(ctx: &Context) -> Result<Report> {
    let mut report = Report::new();
    let d = &ctx.device;
    let set_layout = ctx.set_layout(
        &[storage_binding(0, 1)],
        vk::DescriptorSetLayoutCreateFlags::empty(),
    )?;
    let layout = ctx.pipeline_layout(&[set_layout], &[])?;
    let module = ctx.shader_module(shaders::SALTED)?;
    let cache = unsafe { d.create_pipeline_cache(&vk::PipelineCacheCreateInfo::default(), None) }
        .check("vkCreatePipelineCache")
        .map(|c| ctx.own(c))?;
    let null = std::ptr::null();

    let mut made: Vec<(u32, vk::Pipeline)> = Vec::new();
    for salt in [3, 4] {
        let (r, p) = make(
            ctx,
            layout,
            module,
            vk::PipelineCache::null(),
            &[salt],
            null,
        );
        r.result().check("vkCreateComputePipelines (one)")?;
        made.push((salt, ctx.own(p[0])));
    }
    let batch: Vec<u32> = (10..18).collect();
    let (r, p) = make(ctx, layout, module, cache, &batch, null);
    r.result().check("vkCreateComputePipelines (eight)")?;
    made.extend(batch.iter().copied().zip(p.into_iter().map(|p| ctx.own(p))));
    // The cache's data, asked for after the creations, holds them: it is not empty.
    let data = unsafe { d.get_pipeline_cache_data(cache) }.check("vkGetPipelineCacheData")?;
    report.flag("cache_data_after_batch", data.len() > 32);

    // Made and destroyed unused.
    let (r, p) = make(ctx, layout, module, vk::PipelineCache::null(), &[99], null);
    r.result().check("vkCreateComputePipelines (unused)")?;
    unsafe { d.destroy_pipeline(p[0], None) };

    // With creation feedback: flags the application can rely on (its memory starts as junk).
    let junk = vk::PipelineCreationFeedback {
        flags: vk::PipelineCreationFeedbackFlags::from_raw(0xffff_fff0),
        duration: u64::MAX,
    };
    let mut stage = [junk];
    let mut whole = junk;
    let feedback = vk::PipelineCreationFeedbackCreateInfo::default()
        .pipeline_creation_feedback(&mut whole)
        .pipeline_stage_creation_feedbacks(&mut stage);
    let (r, p) = make(
        ctx,
        layout,
        module,
        vk::PipelineCache::null(),
        &[21],
        (&feedback as *const vk::PipelineCreationFeedbackCreateInfo<'_>).cast(),
    );
    r.result().check("vkCreateComputePipelines (feedback)")?;
    made.push((21, ctx.own(p[0])));
    ensure(
        !whole
            .flags
            .contains(vk::PipelineCreationFeedbackFlags::VALID)
            || whole.duration > 0,
        || "a valid creation feedback of no duration".into(),
    )?;
    report.u64("feedback_flags", u64::from(whole.flags.as_raw()));
    report.u64("feedback_stage_flags", u64::from(stage[0].flags.as_raw()));

    let out = ctx.buffer(
        u64::from(COUNT) * 4 * made.len() as u64,
        vk::BufferUsageFlags::STORAGE_BUFFER,
        Location::Host,
    )?;
    let sets = made
        .iter()
        .map(|_| ctx.descriptor_set(set_layout))
        .collect::<Result<Vec<_>>>()?;
    for (k, set) in sets.iter().enumerate() {
        let info = [vk::DescriptorBufferInfo {
            buffer: out.handle,
            offset: u64::from(COUNT) * 4 * k as u64,
            range: u64::from(COUNT) * 4,
        }];
        let write = vk::WriteDescriptorSet::default()
            .dst_set(*set)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .buffer_info(&info);
        unsafe { d.update_descriptor_sets(&[write], &[]) };
    }
    ctx.run_commands(|cmd| {
        for ((_, pipeline), set) in made.iter().zip(&sets) {
            let kernel = Kernel {
                pipeline: *pipeline,
                layout,
                set_layout,
            };
            kernel.dispatch(ctx, cmd, *set, &(), [1, 1, 1]);
        }
        ctx.memory_barrier(cmd, Access::COMPUTE_WRITE, Access::HOST_READ);
        Ok(())
    })?;
    let got: Vec<u32> = out.read();
    ensure(got.len() == made.len() * COUNT as usize, || {
        format!("{} words read back", got.len())
    })?;
    check_elements("outputs", &got, |i| {
        let salt = made[i / COUNT as usize].0;
        let x = (i as u32) % COUNT;
        x * salt + salt * salt
    })?;
    report.values("out", &got);
    Ok(report)
}
