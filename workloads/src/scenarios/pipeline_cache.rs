//! Pipeline caches: data read back (size query, then data, then a truncated read), its header
//! compared with the device's properties, a cache created from the data, two caches merged, and
//! pipelines created from the first and the merged cache both run. The cache's bytes themselves
//! may differ between runs and are not reported.

use crate::error::{check_elements, ensure};
use crate::memory::{Access, Location};
use crate::shaders::Pattern;
use crate::{Check, Context, Report, Result};
use ash::vk;

const COUNT: u32 = 256;

fn cache(ctx: &Context, initial: &[u8]) -> Result<vk::PipelineCache> {
    let info = vk::PipelineCacheCreateInfo::default().initial_data(initial);
    unsafe { ctx.device.create_pipeline_cache(&info, None) }
        .check("vkCreatePipelineCache")
        .map(|c| ctx.own(c))
}

/// One vkGetPipelineCacheData call with room for `capacity` bytes (`None`: the size query, no
/// data pointer); returns the result and the bytes written (the size, for the query).
fn cache_data(
    ctx: &Context,
    cache: vk::PipelineCache,
    capacity: Option<usize>,
) -> (vk::Result, Vec<u8>) {
    let mut data = vec![0u8; capacity.unwrap_or(0)];
    let mut size = data.len();
    let pointer = match capacity {
        Some(_) => data.as_mut_ptr().cast(),
        None => std::ptr::null_mut(),
    };
    let result = unsafe {
        (ctx.device.fp_v1_0().get_pipeline_cache_data)(
            ctx.device.handle(),
            cache,
            &mut size,
            pointer,
        )
    };
    data.resize(size, 0);
    (result, data)
}

/// The size query, then the data.
fn all_cache_data(ctx: &Context, cache: vk::PipelineCache) -> Result<Vec<u8>> {
    let (result, sized) = cache_data(ctx, cache, None);
    result.result().check("vkGetPipelineCacheData (size)")?;
    let (result, data) = cache_data(ctx, cache, Some(sized.len()));
    result.result().check("vkGetPipelineCacheData")?;
    ensure(data.len() == sized.len(), || {
        format!(
            "{} bytes of cache data, {} announced",
            data.len(),
            sized.len()
        )
    })?;
    Ok(data)
}

fn u32_at(data: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(data[offset..offset + 4].try_into().unwrap())
}

/// The header fields of VK_PIPELINE_CACHE_HEADER_VERSION_ONE, each compared with the device.
fn header_matches(ctx: &Context, data: &[u8]) -> Vec<(&'static str, bool)> {
    let props = &ctx.properties;
    let long_enough = data.len() >= 32;
    let field = |offset| if long_enough { u32_at(data, offset) } else { 0 };
    vec![
        ("header_length", long_enough && field(0) >= 32),
        (
            "header_version",
            field(4) == vk::PipelineCacheHeaderVersion::ONE.as_raw() as u32,
        ),
        ("vendor_id", field(8) == props.vendor_id),
        ("device_id", field(12) == props.device_id),
        (
            "uuid",
            long_enough && data[16..32] == props.pipeline_cache_uuid,
        ),
    ]
}

pub fn run(ctx: &Context) -> Result<Report> {
    let mut report = Report::new();
    let first = cache(ctx, &[])?;
    let kernel = Pattern::kernel(ctx, first)?;

    let data = all_cache_data(ctx, first)?;
    let size = data.len();
    for (field, ok) in header_matches(ctx, &data) {
        ensure(ok, || {
            format!("pipeline cache header: {field} differs from the device's")
        })?;
        report.flag(field, ok);
    }
    // Too small a buffer: VK_INCOMPLETE, and no more than fits.
    let (truncated, partial) = cache_data(ctx, first, Some(size - 1));
    ensure(
        truncated == vk::Result::INCOMPLETE && partial.len() < size,
        || {
            format!(
                "vkGetPipelineCacheData with {} bytes returned {truncated:?} and {} bytes",
                size - 1,
                partial.len()
            )
        },
    )?;
    report.i32("truncated_result", truncated.as_raw());

    let from_data = cache(ctx, &data)?;
    let merged = cache(ctx, &[])?;
    unsafe {
        ctx.device
            .merge_pipeline_caches(merged, &[first, from_data])
    }
    .check("vkMergePipelineCaches")?;
    let merged_data = all_cache_data(ctx, merged)?;
    let merged_header_ok = header_matches(ctx, &merged_data).iter().all(|(_, ok)| *ok);
    ensure(merged_header_ok, || {
        "the merged cache's header differs from the device's".into()
    })?;
    report.flag("merged_header", merged_header_ok);

    let from_merged = Pattern::kernel(ctx, merged)?;
    let out = ctx.buffer(
        u64::from(2 * COUNT) * 4,
        vk::BufferUsageFlags::STORAGE_BUFFER,
        Location::Host,
    )?;
    let patterns = [
        Pattern {
            offset: 0,
            count: COUNT,
            mul: 11,
            add: 1,
        },
        Pattern {
            offset: COUNT,
            count: COUNT,
            mul: 13,
            add: 2,
        },
    ];
    ctx.run_commands(|cmd| {
        for (k, p) in [&kernel, &from_merged].into_iter().zip(&patterns) {
            let set = ctx.kernel_set(k, &[&out])?;
            k.dispatch(ctx, cmd, set, p, p.groups());
        }
        ctx.memory_barrier(cmd, Access::COMPUTE_WRITE, Access::HOST_READ);
        Ok(())
    })?;
    let got: Vec<u32> = out.read();
    check_elements("results", &got, |i| {
        patterns[i / COUNT as usize].value(i as u32 % COUNT)
    })?;
    report.values("out", &got);
    Ok(report)
}
