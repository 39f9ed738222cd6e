//! Airlock against native lavapipe, in one run, as ratios.
//!
//! `airlock-bench` runs every workload in a fresh child process per driver (the loader picks
//! the driver from `VK_DRIVER_FILES`), alternating native and Airlock, several rounds, and prints
//! the medians and the ratio Airlock / native. `airlock-bench --child <workload>` is one such
//! measurement; it prints `key=value` lines.
//!
//! Both sides run with Mesa's shader cache off, so neither reuses the other's compiled shaders,
//! but for the `pipelines` row, which is about the cache: each side gets a cache of its own,
//! filled by a first run.

use ash::vk;
use std::time::{Duration, Instant};
use workloads::memory::Location;
use workloads::shaders::Pattern;
use workloads::{drivers, Check, Context, Options, Result};

const DRAWS: u32 = 100_000;
const DISPATCHES: u32 = 1000;
const UPLOAD_BYTES: usize = 256 << 20;
const ROUND_TRIPS: usize = 100_000;

/// One row of the report: a workload, the value it prints, and whether more is better.
struct Row {
    workload: &'static str,
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    target: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        workload: "record",
        key: "record_ms",
        label: "record 100k vkCmdDraw (begin to end)",
        unit: "ms",
        higher_is_better: false,
        target: "<= 1.0x",
    },
    Row {
        workload: "record",
        key: "execute_ms",
        label: "submit + wait for those 100k draws",
        unit: "ms",
        higher_is_better: false,
        target: "<= 1.1x",
    },
    Row {
        workload: "record",
        key: "total_ms",
        label: "record + submit + wait 100k draws, end to end",
        unit: "ms",
        higher_is_better: false,
        target: "<= 1.1x",
    },
    Row {
        workload: "offscreen",
        key: "fps",
        label: "offscreen 512x512 frames, rendered and read back through mapped memory",
        unit: "frames/s",
        higher_is_better: true,
        target: ">= 0.97x",
    },
    Row {
        workload: "dispatch",
        key: "total_ms",
        label: "1000 x (submit small dispatch + wait)",
        unit: "ms",
        higher_is_better: false,
        target: "<= 1.2x",
    },
    Row {
        workload: "upload",
        key: "gib_per_s",
        label: "upload through vkMapMemory (256 MiB memcpy)",
        unit: "GiB/s",
        higher_is_better: true,
        target: ">= 0.95x",
    },
    Row {
        workload: "roundtrip",
        key: "p50_us",
        label: "vkGetFenceStatus p50",
        unit: "us",
        higher_is_better: false,
        target: "<= 1.5x",
    },
    Row {
        workload: "roundtrip",
        key: "p99_us",
        label: "vkGetFenceStatus p99",
        unit: "us",
        higher_is_better: false,
        target: "<= 3x",
    },
    Row {
        workload: "status",
        key: "counter_p50_us",
        label: "vkGetSemaphoreCounterValue p50",
        unit: "us",
        higher_is_better: false,
        target: "<= 1.5x",
    },
    Row {
        workload: "status",
        key: "event_p50_us",
        label: "vkGetEventStatus p50",
        unit: "us",
        higher_is_better: false,
        target: "<= 1.5x",
    },
    Row {
        workload: "submit",
        key: "per_call_us",
        label: "1000 x vkQueueSubmit, no wait (per call)",
        unit: "us",
        higher_is_better: false,
        target: "<= 1.0x",
    },
    Row {
        workload: "format",
        key: "p50_us",
        label: "vkGetPhysicalDeviceImageFormatProperties2 after the first, p50",
        unit: "us",
        higher_is_better: false,
        target: "<= 2x",
    },
    Row {
        workload: "descriptors",
        key: "total_ms",
        label: "allocate + free 2048 descriptor sets, 256 times",
        unit: "ms",
        higher_is_better: false,
        target: "<= 1.5x",
    },
    Row {
        workload: "pipelines",
        key: "total_ms",
        label: "20 compute pipelines made and run, second run (shader cache on both sides)",
        unit: "ms",
        higher_is_better: false,
        target: "<= 1.1x",
    },
    Row {
        workload: "startup",
        key: "create_ms",
        label: "instance + device creation",
        unit: "ms",
        higher_is_better: false,
        target: "<= 1.2x",
    },
    Row {
        workload: "present",
        key: "fps",
        label: "300 frames presented to a 500x500 X11 window (Xvfb)",
        unit: "frames/s",
        higher_is_better: true,
        target: ">= 0.95x",
    },
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("--child") => {
            child(args.get(2).map(String::as_str).unwrap_or("")).map_err(|e| e.to_string())
        }
        _ => parent(&args[1..]),
    };
    if let Err(e) = result {
        eprintln!("airlock-bench: {e}");
        std::process::exit(1);
    }
}

fn child(workload: &str) -> Result<()> {
    match workload {
        "record" => record(),
        "offscreen" => offscreen(),
        "dispatch" => dispatch(),
        "upload" => upload(),
        "roundtrip" => roundtrip(),
        "status" => status(),
        "submit" => submit(),
        "format" => format(),
        "descriptors" => descriptors(),
        "pipelines" => pipelines(),
        "startup" => startup(),
        "present" => present(),
        _ => Err(workloads::Error::Unsupported(format!(
            "unknown workload {workload:?}"
        ))),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// 100k draws into a tiny target: recording is what is measured, so the draws cost little
/// to execute.
fn record() -> Result<()> {
    let ctx = Context::new(Options::default())?;
    let size = vk::Extent2D {
        width: 8,
        height: 8,
    };
    let format = workloads::rect::COLOR_FORMAT;
    let target = ctx.image(
        size,
        format,
        vk::ImageUsageFlags::COLOR_ATTACHMENT,
        vk::SampleCountFlags::TYPE_1,
    )?;
    let (pipeline, layout) = workloads::rect::pipeline(&ctx, false)?;
    let stages = vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT;
    let rect = workloads::rect::Rect::pixels(8, [0, 0, 1, 1], [255, 0, 0, 255], 0.5);
    let pool = ctx.command_pool()?;
    let cmd = ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    let attachment = vk::RenderingAttachmentInfo::default()
        .image_view(target.view)
        .image_layout(vk::ImageLayout::GENERAL)
        .load_op(vk::AttachmentLoadOp::DONT_CARE)
        .store_op(vk::AttachmentStoreOp::DONT_CARE);
    let rendering = vk::RenderingInfo::default()
        .render_area(size.into())
        .layer_count(1)
        .color_attachments(std::slice::from_ref(&attachment));
    let mut best = (f64::MAX, 0.0);
    let mut best_total = f64::MAX;
    for _ in 0..5 {
        let d = &ctx.device;
        let t = Instant::now();
        unsafe {
            ctx.begin(cmd, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
            d.cmd_begin_rendering(cmd, &rendering);
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::GRAPHICS, pipeline);
            ctx.set_viewport(cmd, size);
            d.cmd_push_constants(cmd, layout, stages, 0, bytemuck::bytes_of(&rect));
            for _ in 0..DRAWS {
                d.cmd_draw(cmd, 3, 1, 0, 0);
            }
            d.cmd_end_rendering(cmd);
            ctx.end(cmd)?;
        }
        let recorded = t.elapsed();
        ctx.submit_and_wait(&[cmd])?;
        let total = t.elapsed();
        if ms(recorded) < best.0 {
            best = (ms(recorded), ms(total - recorded));
        }
        best_total = best_total.min(ms(total));
    }
    println!("record_ms={:.3}", best.0);
    println!("execute_ms={:.3}", best.1);
    println!("total_ms={best_total:.3}");
    Ok(())
}

/// Frames rendered offscreen (a clear and three rectangles), copied to a host buffer and read
/// back through its mapping, one after the other: what a headless renderer does.
fn offscreen() -> Result<()> {
    use workloads::rect::{Offscreen, Rect};
    const SIZE: u32 = 512;
    const FRAMES: u32 = 200;
    let ctx = Context::new(Options::default())?;
    let target = Offscreen::new(&ctx, SIZE, false)?;
    let pool = ctx.command_pool()?;
    let cmd = ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    let rects = [
        Rect::pixels(SIZE, [0, 0, 256, 256], [255, 0, 0, 255], 0.5),
        Rect::pixels(SIZE, [128, 128, 384, 384], [0, 255, 0, 255], 0.5),
        Rect::pixels(SIZE, [300, 40, 500, 480], [0, 0, 255, 255], 0.5),
    ];
    ctx.begin(cmd, vk::CommandBufferUsageFlags::empty())?;
    target.begin(&ctx, cmd, [10, 20, 30, 255]);
    for r in &rects {
        target.draw(&ctx, cmd, r);
    }
    target.end(&ctx, cmd);
    ctx.end(cmd)?;
    let expected = workloads::rect::expected_pixels(SIZE, [10, 20, 30, 255], &rects, false);
    let t = Instant::now();
    for frame in 0..FRAMES {
        ctx.submit_and_wait(&[cmd])?;
        let pixels = target.pixels();
        if frame == 0 && pixels != expected {
            return Err(workloads::Error::Mismatch(
                "the frame reads back wrong".into(),
            ));
        }
    }
    println!("fps={:.3}", f64::from(FRAMES) / t.elapsed().as_secs_f64());
    Ok(())
}

/// One small dispatch, submitted and waited for a thousand times.
fn dispatch() -> Result<()> {
    let ctx = Context::new(Options::default())?;
    let kernel = Pattern::kernel(&ctx, vk::PipelineCache::null())?;
    let out = ctx.buffer(4 * 64, vk::BufferUsageFlags::STORAGE_BUFFER, Location::Host)?;
    let set = ctx.kernel_set(&kernel, &[&out])?;
    let pool = ctx.command_pool()?;
    let cmd = ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    let pattern = Pattern {
        offset: 0,
        count: 64,
        mul: 3,
        add: 1,
    };
    ctx.begin(cmd, vk::CommandBufferUsageFlags::empty())?;
    kernel.dispatch(&ctx, cmd, set, &pattern, pattern.groups());
    ctx.end(cmd)?;
    let fence = ctx.fence(false)?;
    let cmds = [cmd];
    let submit = vk::SubmitInfo::default().command_buffers(&cmds);
    let t = Instant::now();
    // Where the time goes, per call.
    let mut spent = [Duration::ZERO; 3];
    for _ in 0..DISPATCHES {
        let t0 = Instant::now();
        ctx.submit(&[submit], fence)?;
        let t1 = Instant::now();
        ctx.wait_fence(fence)?;
        let t2 = Instant::now();
        unsafe { ctx.device.reset_fences(&[fence]) }.check("vkResetFences")?;
        let t3 = Instant::now();
        spent[0] += t1 - t0;
        spent[1] += t2 - t1;
        spent[2] += t3 - t2;
    }
    let total = t.elapsed();
    for (name, d) in ["submit", "wait", "reset"].iter().zip(spent) {
        println!(
            "{name}_us={:.3}",
            d.as_secs_f64() * 1e6 / f64::from(DISPATCHES)
        );
    }
    let words: Vec<u32> = out.read();
    if words[63] != pattern.value(63) {
        return Err(workloads::Error::Mismatch(format!(
            "dispatch wrote {} at 63, expected {}",
            words[63],
            pattern.value(63)
        )));
    }
    println!("total_ms={:.3}", ms(total));
    Ok(())
}

/// memcpy into mapped device memory, after a first pass has faulted the pages in.
fn upload() -> Result<()> {
    let ctx = Context::new(Options::default())?;
    let buf = ctx.buffer(
        UPLOAD_BYTES as u64,
        vk::BufferUsageFlags::STORAGE_BUFFER,
        Location::Host,
    )?;
    let src: Vec<u8> = (0..UPLOAD_BYTES).map(|i| (i * 7 + 1) as u8).collect();
    let mut best = f64::MAX;
    for _ in 0..4 {
        let t = Instant::now();
        buf.write(0, &src);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let back: Vec<u8> = buf.read();
    if back != src {
        return Err(workloads::Error::Mismatch(
            "mapped memory reads back wrong".into(),
        ));
    }
    println!(
        "gib_per_s={:.3}",
        UPLOAD_BYTES as f64 / best / (1u64 << 30) as f64
    );
    Ok(())
}

/// A query that must reach the driver every time.
fn roundtrip() -> Result<()> {
    let ctx = Context::new(Options::default())?;
    let fence = ctx.fence(true)?;
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        let r = unsafe { ctx.device.get_fence_status(fence) };
        times.push(t.elapsed());
        r.check("vkGetFenceStatus")?;
    }
    times.sort();
    let us = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!("p50_us={:.3}", us(0.5));
    println!("p99_us={:.3}", us(0.99));
    Ok(())
}

/// p50 and p99 of `n` timings of `f`, in microseconds.
fn percentiles(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    let us = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    Ok((us(0.5), us(0.99)))
}

/// Status queries of a timeline semaphore signalled from the host and of an event set from
/// the host.
fn status() -> Result<()> {
    let ctx = Context::new(Options::default())?;
    let d = &ctx.device;
    let sem = ctx.timeline_semaphore(0)?;
    let signal = vk::SemaphoreSignalInfo::default().semaphore(sem).value(7);
    unsafe { d.signal_semaphore(&signal) }.check("vkSignalSemaphore")?;
    let (counter, _) = percentiles(ROUND_TRIPS, || {
        let v =
            unsafe { d.get_semaphore_counter_value(sem) }.check("vkGetSemaphoreCounterValue")?;
        if v != 7 {
            return Err(workloads::Error::Mismatch(format!(
                "counter {v}, expected 7"
            )));
        }
        Ok(())
    })?;
    let event = unsafe { d.create_event(&vk::EventCreateInfo::default(), None) }
        .check("vkCreateEvent")
        .map(|e| ctx.own(e))?;
    unsafe { d.set_event(event) }.check("vkSetEvent")?;
    let (event_p50, _) = percentiles(ROUND_TRIPS, || {
        let set = unsafe { d.get_event_status(event) }.check("vkGetEventStatus")?;
        if !set {
            return Err(workloads::Error::Mismatch("the event reads reset".into()));
        }
        Ok(())
    })?;
    println!("counter_p50_us={counter:.3}");
    println!("event_p50_us={event_p50:.3}");
    Ok(())
}

/// What a submission costs the application's thread: 1000 submissions of a small dispatch
/// (simultaneous use), no wait in between.
fn submit() -> Result<()> {
    let ctx = Context::new(Options::default())?;
    let kernel = Pattern::kernel(&ctx, vk::PipelineCache::null())?;
    let out = ctx.buffer(4 * 64, vk::BufferUsageFlags::STORAGE_BUFFER, Location::Host)?;
    let set = ctx.kernel_set(&kernel, &[&out])?;
    let pool = ctx.command_pool()?;
    let cmd = ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    let pattern = Pattern {
        offset: 0,
        count: 64,
        mul: 5,
        add: 2,
    };
    ctx.begin(cmd, vk::CommandBufferUsageFlags::SIMULTANEOUS_USE)?;
    kernel.dispatch(&ctx, cmd, set, &pattern, pattern.groups());
    ctx.end(cmd)?;
    let cmds = [cmd];
    let info = vk::SubmitInfo::default().command_buffers(&cmds);
    let mut spent = Duration::ZERO;
    for _ in 0..DISPATCHES {
        let t = Instant::now();
        ctx.submit(&[info], vk::Fence::null())?;
        spent += t.elapsed();
    }
    ctx.wait_idle()?;
    let words: Vec<u32> = out.read();
    if words[9] != pattern.value(9) {
        return Err(workloads::Error::Mismatch(format!(
            "dispatch wrote {} at 9, expected {}",
            words[9],
            pattern.value(9)
        )));
    }
    println!(
        "per_call_us={:.3}",
        spent.as_secs_f64() * 1e6 / f64::from(DISPATCHES)
    );
    Ok(())
}

/// The same image-format query, asked again and again after a first time.
fn format() -> Result<()> {
    let ctx = Context::new(Options::default())?;
    let info = vk::PhysicalDeviceImageFormatInfo2::default()
        .format(vk::Format::R8G8B8A8_UNORM)
        .ty(vk::ImageType::TYPE_2D)
        .tiling(vk::ImageTiling::OPTIMAL)
        .usage(vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_DST);
    let ask = || {
        let mut out = vk::ImageFormatProperties2::default();
        unsafe {
            ctx.instance.get_physical_device_image_format_properties2(
                ctx.physical_device,
                &info,
                &mut out,
            )
        }
        .check("vkGetPhysicalDeviceImageFormatProperties2")?;
        Ok(out.image_format_properties)
    };
    let first = ask()?;
    let (p50, _) = percentiles(ROUND_TRIPS, || {
        let again = ask()?;
        if again.max_extent.width != first.max_extent.width
            || again.max_array_layers != first.max_array_layers
        {
            return Err(workloads::Error::Mismatch("the answer changed".into()));
        }
        Ok(())
    })?;
    println!("p50_us={p50:.3}");
    Ok(())
}

/// A descriptor pool filled and emptied: 2048 sets allocated in one call and freed in one,
/// 256 times.
fn descriptors() -> Result<()> {
    const SETS: u32 = 2048;
    let ctx = Context::new(Options::default())?;
    let d = &ctx.device;
    let binding = vk::DescriptorSetLayoutBinding::default()
        .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
        .descriptor_count(1)
        .stage_flags(vk::ShaderStageFlags::COMPUTE);
    let layout = unsafe {
        d.create_descriptor_set_layout(
            &vk::DescriptorSetLayoutCreateInfo::default().bindings(std::slice::from_ref(&binding)),
            None,
        )
    }
    .check("vkCreateDescriptorSetLayout")
    .map(|l| ctx.own(l))?;
    let size = vk::DescriptorPoolSize {
        ty: vk::DescriptorType::STORAGE_BUFFER,
        descriptor_count: SETS,
    };
    let pool = unsafe {
        d.create_descriptor_pool(
            &vk::DescriptorPoolCreateInfo::default()
                .flags(vk::DescriptorPoolCreateFlags::FREE_DESCRIPTOR_SET)
                .max_sets(SETS)
                .pool_sizes(std::slice::from_ref(&size)),
            None,
        )
    }
    .check("vkCreateDescriptorPool")
    .map(|p| ctx.own(p))?;
    let layouts = vec![layout; SETS as usize];
    let info = vk::DescriptorSetAllocateInfo::default()
        .descriptor_pool(pool)
        .set_layouts(&layouts);
    let t = Instant::now();
    for _ in 0..256 {
        let sets =
            unsafe { d.allocate_descriptor_sets(&info) }.check("vkAllocateDescriptorSets")?;
        if sets.len() != SETS as usize || sets.iter().any(|s| *s == vk::DescriptorSet::null()) {
            return Err(workloads::Error::Mismatch("a set is missing".into()));
        }
        unsafe { d.free_descriptor_sets(pool, &sets) }.check("vkFreeDescriptorSets")?;
    }
    // Work a driver posted and has not done yet counts: wait for the device.
    unsafe { d.device_wait_idle() }.check("vkDeviceWaitIdle")?;
    println!("total_ms={:.3}", ms(t.elapsed()));
    Ok(())
}

/// What a program's second run waits for before its first results: 20 compute pipelines
/// (one kernel specialized 20 ways, so 20 shaders to compile or find in the cache), each run
/// once and its result checked. Instance and device creation are the `startup` row.
fn pipelines() -> Result<()> {
    let ctx = Context::new(Options::default())?;
    let d = &ctx.device;
    let t = Instant::now();
    let out = ctx.buffer(4 * 64, vk::BufferUsageFlags::STORAGE_BUFFER, Location::Host)?;
    let binding = vk::DescriptorSetLayoutBinding::default()
        .binding(0)
        .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
        .descriptor_count(1)
        .stage_flags(vk::ShaderStageFlags::COMPUTE);
    let set_layout = unsafe {
        d.create_descriptor_set_layout(
            &vk::DescriptorSetLayoutCreateInfo::default().bindings(std::slice::from_ref(&binding)),
            None,
        )
    }
    .check("vkCreateDescriptorSetLayout")
    .map(|l| ctx.own(l))?;
    let layout = ctx.pipeline_layout(&[set_layout], &[])?;
    let set = ctx.descriptor_set(set_layout)?;
    let info = [out.info()];
    let write = vk::WriteDescriptorSet::default()
        .dst_set(set)
        .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
        .buffer_info(&info);
    unsafe { d.update_descriptor_sets(&[write], &[]) };
    let module = ctx.shader_module(workloads::shaders::SALTED)?;
    for salt in 1..=20u32 {
        let entry = vk::SpecializationMapEntry {
            constant_id: 0,
            offset: 0,
            size: 4,
        };
        let data = salt.to_ne_bytes();
        let spec = vk::SpecializationInfo::default()
            .map_entries(std::slice::from_ref(&entry))
            .data(&data);
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(module)
            .name(c"main")
            .specialization_info(&spec);
        let info = vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(layout);
        let pipeline =
            unsafe { d.create_compute_pipelines(vk::PipelineCache::null(), &[info], None) }
                .map_err(|(_, e)| e)
                .check("vkCreateComputePipelines")
                .map(|p| ctx.own(p[0]))?;
        ctx.run_commands(|cmd| {
            unsafe {
                d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, pipeline);
                d.cmd_bind_descriptor_sets(
                    cmd,
                    vk::PipelineBindPoint::COMPUTE,
                    layout,
                    0,
                    &[set],
                    &[],
                );
                d.cmd_dispatch(cmd, 1, 1, 1);
            }
            Ok(())
        })?;
        let words: Vec<u32> = out.read();
        if words[5] != 5 * salt + salt * salt {
            return Err(workloads::Error::Mismatch(format!(
                "pipeline {salt} wrote {} at 5",
                words[5]
            )));
        }
    }
    println!("total_ms={:.3}", ms(t.elapsed()));
    Ok(())
}

fn startup() -> Result<()> {
    let t = Instant::now();
    let ctx = Context::new(Options::default())?;
    let created = t.elapsed();
    drop(ctx);
    println!("create_ms={:.3}", ms(created));
    Ok(())
}

/// Frames drawn and presented to an X11 window on the Xvfb the parent started (FIFO, as fast
/// as the X server takes them): the whole frame loop, acquire to present.
fn present() -> Result<()> {
    use workloads::present::{run, Platform, Run};
    let outcome = run(Run {
        platform: Platform::Xcb,
        frames: 300,
        size: 500,
        resize: None,
        close_at: None,
        validate: false,
    })?;
    println!("fps={:.3}", outcome.frames_per_second);
    Ok(())
}

/// `key=value` figures one child printed.
type Figures = Vec<(String, f64)>;

/// Runs `workload` on the driver of `manifest`; its figures.
fn measure(
    workload: &str,
    manifest: &std::path::PathBuf,
    display: &str,
    cache: Option<&std::path::Path>,
) -> std::result::Result<Figures, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = drivers::with_driver(exe, manifest);
    c.args(["--child", workload]).env("DISPLAY", display);
    if let Some(dir) = cache {
        // Mesa's cache natively, the application's directory through Airlock: each side its
        // own, so neither finds what the other compiled.
        c.env_remove("MESA_SHADER_CACHE_DISABLE")
            .env("MESA_SHADER_CACHE_DIR", dir.join("native"))
            .env("AIRLOCK_SHADER_CACHE_DIR", dir.join("airlock"));
    }
    let out = c.output().map_err(|e| format!("{workload}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{workload} with {}: {}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn parent(args: &[String]) -> std::result::Result<(), String> {
    let rounds: usize = std::env::var("AIRLOCK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let only: Vec<&str> = args.iter().map(String::as_str).collect();
    let airlock = drivers::airlock_manifest();
    let native = drivers::native_manifest();
    println!(
        "native:  {}\nairlock: {}\nrounds:  {rounds} (medians)\n",
        native.display(),
        airlock.display()
    );
    println!("| workload | native | Airlock | Airlock / native | target |");
    println!("| --- | --- | --- | --- | --- |");
    // The windowed workload's X server, of its own.
    let xvfb = drivers::Xvfb::start();
    let mut workloads: Vec<&str> = ROWS.iter().map(|r| r.workload).collect();
    workloads.dedup();
    for w in workloads {
        if !only.is_empty() && !only.contains(&w) {
            continue;
        }
        // The cache rows: a first run on each side fills its cache, and the rounds are
        // second runs.
        let cache = (w == "pipelines").then(|| {
            std::env::temp_dir().join(format!("airlock-bench-cache-{}", std::process::id()))
        });
        if let Some(dir) = &cache {
            measure(w, &native, &xvfb.display, Some(dir))?;
            measure(w, &airlock, &xvfb.display, Some(dir))?;
        }
        let mut samples: Vec<(Figures, Figures)> = Vec::new();
        for _ in 0..rounds {
            samples.push((
                measure(w, &native, &xvfb.display, cache.as_deref())?,
                measure(w, &airlock, &xvfb.display, cache.as_deref())?,
            ));
        }
        if let Some(dir) = &cache {
            let _ = std::fs::remove_dir_all(dir);
        }
        for row in ROWS.iter().filter(|r| r.workload == w) {
            let pick = |side: &dyn Fn(&(Figures, Figures)) -> f64| {
                median(samples.iter().map(side).collect())
            };
            let get = |list: &Figures| {
                list.iter()
                    .find(|(k, _)| k == row.key)
                    .map(|(_, v)| *v)
                    .unwrap_or(f64::NAN)
            };
            let n = pick(&|s| get(&s.0));
            let a = pick(&|s| get(&s.1));
            let ratio = a / n;
            let note = if row.higher_is_better {
                " (higher is better)"
            } else {
                ""
            };
            println!(
                "| {} | {n:.3} {u} | {a:.3} {u} | {ratio:.2}x{note} | {} |",
                row.label,
                row.target,
                u = row.unit
            );
        }
    }
    Ok(())
}
