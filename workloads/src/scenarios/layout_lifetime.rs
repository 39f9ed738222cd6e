//! Vulkan 1.3 (maintenance4) lets an application destroy a pipeline layout right after
//! recording commands that name it. Here the layout goes between the dispatch and the end of
//! the recording; the dispatch must still run with its push constants.

use crate::error::{check_elements, Check};
use crate::memory::Location;
use crate::shaders::{Pattern, PATTERN};
use crate::{Context, Report, Result};
use ash::vk;

pub fn run(ctx: &Context) -> Result<Report> {
    let kernel = Pattern::kernel(ctx, vk::PipelineCache::null())?;
    let out = ctx.buffer(
        4 * 256,
        vk::BufferUsageFlags::STORAGE_BUFFER,
        Location::Host,
    )?;
    let set = ctx.kernel_set(&kernel, &[&out])?;
    // A layout of its own, destroyed by hand below (the context destroys what it owns).
    let range = vk::PushConstantRange::default()
        .stage_flags(vk::ShaderStageFlags::COMPUTE)
        .size(std::mem::size_of::<Pattern>() as u32);
    let set_layouts = [kernel.set_layout];
    let ranges = [range];
    let info = vk::PipelineLayoutCreateInfo::default()
        .set_layouts(&set_layouts)
        .push_constant_ranges(&ranges);
    let layout = unsafe { ctx.device.create_pipeline_layout(&info, None) }
        .check("vkCreatePipelineLayout")?;
    let pipeline = ctx.compute_pipeline(PATTERN, layout, vk::PipelineCache::null())?;
    let p = Pattern {
        offset: 0,
        count: 256,
        mul: 7,
        add: 5,
    };
    ctx.run_commands(|cmd| {
        let d = &ctx.device;
        unsafe {
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, pipeline);
            d.cmd_bind_descriptor_sets(cmd, vk::PipelineBindPoint::COMPUTE, layout, 0, &[set], &[]);
            d.cmd_push_constants(cmd, layout, range.stage_flags, 0, bytemuck::bytes_of(&p));
            let [x, y, z] = p.groups();
            d.cmd_dispatch(cmd, x, y, z);
            d.destroy_pipeline_layout(layout, None);
        }
        Ok(())
    })?;
    let got: Vec<u32> = out.read();
    check_elements("buffer", &got, |i| p.value(i as u32))?;
    let mut report = Report::new();
    report.values("buffer", &got);
    Ok(report)
}
