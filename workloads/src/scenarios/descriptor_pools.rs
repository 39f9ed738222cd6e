//! Descriptor pools along every path of the ICD's accounting (icd/src/descriptor.rs): sets it
//! posts without waiting (they fit the pool and cannot fail for fragmentation), sets it leaves
//! to the host (past `maxSets`, sizes mixed in a pool whose sets are freed one by one, after a
//! free it could not count), frees with a null handle among the sets, and resets. Every set is
//! written and then used by compute.comp, its output checked; the results the host gave for
//! allocations past the pool's size are reported, so a difference from native shows.

use super::compute::expected as f;
use crate::error::{check_elements, Check};
use crate::memory::{Access, Buffer, Location};
use crate::pipeline::Kernel;
use crate::{shaders, Context, Report, Result};
use ash::vk;

/// Elements of each run.
const COUNT: u32 = 256;
const GROUP_SIZE: u32 = 256;

struct Bench<'a> {
    ctx: &'a Context,
    src: Buffer,
    dst: Buffer,
    /// Runs so far: each gets its own input.
    runs: u32,
    report: Report,
}

impl Bench<'_> {
    /// Writes `set` (of `kernel`'s layout) to read `src` and write `dst`, runs the kernel
    /// through it and checks every output.
    fn run(&mut self, kernel: &Kernel, bindings: u32, set: vk::DescriptorSet) -> Result<()> {
        let ctx = self.ctx;
        self.runs += 1;
        let salt = self.runs.wrapping_mul(0x9E37_79B9);
        let input = |i: u32| i.wrapping_mul(2_654_435_761) ^ salt;
        self.src.fill_words(|i| input(i as u32));
        self.dst.fill_words(|_| 0);
        let infos = [[self.src.info()], [self.dst.info()], [self.dst.info()]];
        let writes: Vec<_> = (0..bindings as usize)
            .map(|b| {
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(b as u32)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(&infos[b])
            })
            .collect();
        unsafe { ctx.device.update_descriptor_sets(&writes, &[]) };
        ctx.run_commands(|cmd| {
            kernel.dispatch(ctx, cmd, set, &COUNT, [COUNT / GROUP_SIZE, 1, 1]);
            ctx.memory_barrier(cmd, Access::COMPUTE_WRITE, Access::HOST_READ);
            Ok(())
        })?;
        let out: Vec<u32> = self.dst.read();
        check_elements(&format!("run {} output", self.runs), &out, |i| {
            f(input(i as u32), i as u32)
        })?;
        self.report.values(&format!("run {}", self.runs), &out);
        Ok(())
    }

    /// Allocates a set of `kernel`'s 2-buffer layout past `pool`'s `maxSets`: whatever the
    /// host says is reported, and a set it gives is used.
    fn past_max(&mut self, name: &str, pool: vk::DescriptorPool, kernel: &Kernel) -> Result<()> {
        match allocate(self.ctx, pool, &[kernel.set_layout]) {
            Ok(sets) => {
                self.report.i32(name, 0);
                self.run(kernel, 2, sets[0])
            }
            Err(r) => {
                self.report.i32(name, r.as_raw());
                Ok(())
            }
        }
    }
}

fn pool(
    ctx: &Context,
    flags: vk::DescriptorPoolCreateFlags,
    max_sets: u32,
    buffers: u32,
) -> Result<vk::DescriptorPool> {
    let size = vk::DescriptorPoolSize {
        ty: vk::DescriptorType::STORAGE_BUFFER,
        descriptor_count: buffers,
    };
    let info = vk::DescriptorPoolCreateInfo::default()
        .flags(flags)
        .max_sets(max_sets)
        .pool_sizes(std::slice::from_ref(&size));
    unsafe { ctx.device.create_descriptor_pool(&info, None) }
        .check("vkCreateDescriptorPool")
        .map(|p| ctx.own(p))
}

/// Allocates one set of each of `layouts`; the host's result when it refuses.
fn allocate(
    ctx: &Context,
    pool: vk::DescriptorPool,
    layouts: &[vk::DescriptorSetLayout],
) -> std::result::Result<Vec<vk::DescriptorSet>, vk::Result> {
    let info = vk::DescriptorSetAllocateInfo::default()
        .descriptor_pool(pool)
        .set_layouts(layouts);
    unsafe { ctx.device.allocate_descriptor_sets(&info) }
}

fn free(ctx: &Context, pool: vk::DescriptorPool, sets: &[vk::DescriptorSet]) -> Result<()> {
    unsafe { ctx.device.free_descriptor_sets(pool, sets) }.check("vkFreeDescriptorSets")
}

pub fn run(ctx: &Context) -> Result<Report> {
    let usage = vk::BufferUsageFlags::STORAGE_BUFFER;
    let size = u64::from(COUNT) * 4;
    let mut b = Bench {
        ctx,
        src: ctx.buffer(size, usage, Location::Host)?,
        dst: ctx.buffer(size, usage, Location::Host)?,
        runs: 0,
        report: Report::new(),
    };
    // Two layouts that take different numbers of descriptors: 2 and 3 storage buffers (the
    // shader reads bindings 0 and 1; the third holds the output again).
    let two = ctx.kernel(shaders::COMPUTE, 2, 4, vk::PipelineCache::null())?;
    let three = ctx.kernel(shaders::COMPUTE, 3, 4, vk::PipelineCache::null())?;
    let (a, c) = (two.set_layout, three.set_layout);

    // A pool whose sets are never freed alone: four sets, one call each, all fit.
    let fixed = pool(ctx, vk::DescriptorPoolCreateFlags::empty(), 4, 8)?;
    for _ in 0..4 {
        let set = allocate(ctx, fixed, &[a]).check("vkAllocateDescriptorSets")?[0];
        b.run(&two, 2, set)?;
    }
    // A fifth is past maxSets: the host decides.
    b.past_max("fifth set", fixed, &two)?;
    // Reset, then four in one call.
    unsafe {
        ctx.device
            .reset_descriptor_pool(fixed, vk::DescriptorPoolResetFlags::empty())
    }
    .check("vkResetDescriptorPool")?;
    for set in allocate(ctx, fixed, &[a; 4]).check("vkAllocateDescriptorSets")? {
        b.run(&two, 2, set)?;
    }

    // A pool whose sets are freed one by one.
    let loose = pool(
        ctx,
        vk::DescriptorPoolCreateFlags::FREE_DESCRIPTOR_SET,
        8,
        24,
    )?;
    let first = allocate(ctx, loose, &[a, a, a]).check("vkAllocateDescriptorSets")?;
    free(ctx, loose, &[first[1], vk::DescriptorSet::null()])?;
    let again = allocate(ctx, loose, &[a]).check("vkAllocateDescriptorSets")?[0];
    for set in [first[0], first[2], again] {
        b.run(&two, 2, set)?;
    }
    // Another size in the same pool: the host's to allocate (it could fragment).
    let other = allocate(ctx, loose, &[c]).check("vkAllocateDescriptorSets")?[0];
    b.run(&three, 3, other)?;
    // Freed sets of mixed sizes: the ICD stops counting until the pool is reset.
    free(ctx, loose, &[first[0], other])?;
    let after = allocate(ctx, loose, &[a, c]).check("vkAllocateDescriptorSets")?;
    b.run(&two, 2, after[0])?;
    b.run(&three, 3, after[1])?;
    for set in [first[2], again] {
        b.run(&two, 2, set)?;
    }
    free(ctx, loose, &[first[2], again, after[0], after[1]])?;
    unsafe {
        ctx.device
            .reset_descriptor_pool(loose, vk::DescriptorPoolResetFlags::empty())
    }
    .check("vkResetDescriptorPool")?;
    // Counted again from empty: eight sets fit, and a ninth is past maxSets.
    let full = allocate(ctx, loose, &[a; 8]).check("vkAllocateDescriptorSets")?;
    for set in [full[0], full[7]] {
        b.run(&two, 2, set)?;
    }
    b.past_max("ninth set", loose, &two)?;
    b.report.u64("runs", u64::from(b.runs));
    Ok(b.report)
}
