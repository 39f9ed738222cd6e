//! Timeline semaphores: a host wait on one thread released by a host signal from another, and a
//! queue submission that waits for a value only the host signals later.

use crate::context::TIMEOUT_NS;
use crate::error::{check_elements, ensure};
use crate::memory::{Access, Location};
use crate::{Check, Context, Report, Result};
use ash::vk;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

const HOST_VALUE: u64 = 5;
const SIGNAL_DELAY: Duration = Duration::from_millis(100);
const FILL: u32 = 0x600D_F00D;

fn counter(ctx: &Context, semaphore: vk::Semaphore) -> Result<u64> {
    unsafe { ctx.device.get_semaphore_counter_value(semaphore) }.check("vkGetSemaphoreCounterValue")
}

/// `vkWaitSemaphores`; VK_TIMEOUT is an outcome here, not an error.
fn wait(
    ctx: &Context,
    semaphores: &[vk::Semaphore],
    values: &[u64],
    flags: vk::SemaphoreWaitFlags,
    timeout: u64,
) -> Result<vk::Result> {
    let info = vk::SemaphoreWaitInfo::default()
        .flags(flags)
        .semaphores(semaphores)
        .values(values);
    match unsafe { ctx.device.wait_semaphores(&info, timeout) } {
        Ok(()) => Ok(vk::Result::SUCCESS),
        Err(vk::Result::TIMEOUT) => Ok(vk::Result::TIMEOUT),
        Err(result) => Err(crate::Error::Vulkan {
            call: "vkWaitSemaphores",
            result,
        }),
    }
}

fn signal(ctx: &Context, semaphore: vk::Semaphore, value: u64) -> Result<()> {
    let info = vk::SemaphoreSignalInfo::default()
        .semaphore(semaphore)
        .value(value);
    unsafe { ctx.device.signal_semaphore(&info) }.check("vkSignalSemaphore")
}

fn expect_result(what: &str, got: vk::Result, want: vk::Result) -> Result<()> {
    ensure(got == want, || {
        format!("{what} returned {got:?}, expected {want:?}")
    })
}

/// Thread A waits for HOST_VALUE; thread B signals it after a delay. Returns the order of events.
fn host_wait_and_signal(ctx: &Context, semaphore: vk::Semaphore) -> Result<Vec<&'static str>> {
    let events = Mutex::new(Vec::new());
    let started = Barrier::new(2);
    let (waited, signalled) = std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            events.lock().unwrap().push("a:waiting");
            // Before the barrier, so before B starts its delay: the wait must outlast it.
            let t0 = Instant::now();
            started.wait();
            let r = wait(
                ctx,
                &[semaphore],
                &[HOST_VALUE],
                vk::SemaphoreWaitFlags::empty(),
                TIMEOUT_NS,
            );
            events.lock().unwrap().push("a:woke");
            r.map(|r| (r, t0.elapsed()))
        });
        let signaller = s.spawn(|| {
            started.wait();
            std::thread::sleep(SIGNAL_DELAY);
            events.lock().unwrap().push("b:signal");
            signal(ctx, semaphore, HOST_VALUE)
        });
        (waiter.join().unwrap(), signaller.join().unwrap())
    });
    signalled?;
    let (result, elapsed) = waited?;
    expect_result("the blocked vkWaitSemaphores", result, vk::Result::SUCCESS)?;
    ensure(elapsed >= SIGNAL_DELAY, || {
        format!("vkWaitSemaphores returned after {elapsed:?}, before the value was signalled")
    })?;
    Ok(events.into_inner().unwrap())
}

pub fn run(ctx: &Context) -> Result<Report> {
    let mut report = Report::new();
    let host = ctx.timeline_semaphore(0)?;
    report.u64("initial", counter(ctx, host)?);
    let early = wait(
        ctx,
        &[host],
        &[HOST_VALUE],
        vk::SemaphoreWaitFlags::empty(),
        0,
    )?;
    expect_result(
        "vkWaitSemaphores before the signal",
        early,
        vk::Result::TIMEOUT,
    )?;
    report.i32("wait_before_signal", early.as_raw());

    let events = host_wait_and_signal(ctx, host)?;
    let order = events.join(",");
    ensure(order == "a:waiting,b:signal,a:woke", || {
        format!("events happened in the order {order}")
    })?;
    report.text("order", &order);
    let after = counter(ctx, host)?;
    ensure(after == HOST_VALUE, || {
        format!("counter is {after} after the signal")
    })?;
    report.u64("after_signal", after);

    // The device waits for 1, which only the host signals, then signals 2.
    let gate = ctx.timeline_semaphore(0)?;
    let buffer = ctx.buffer(4096, vk::BufferUsageFlags::TRANSFER_DST, Location::Host)?;
    let pool = ctx.command_pool()?;
    let cmd = ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
    ctx.begin(cmd, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
    unsafe {
        ctx.device
            .cmd_fill_buffer(cmd, buffer.handle, 0, vk::WHOLE_SIZE, FILL)
    };
    ctx.memory_barrier(cmd, Access::TRANSFER_WRITE, Access::HOST_READ);
    ctx.end(cmd)?;
    let mut values = vk::TimelineSemaphoreSubmitInfo::default()
        .wait_semaphore_values(&[1])
        .signal_semaphore_values(&[2]);
    let cmds = [cmd];
    let gates = [gate];
    let submit = vk::SubmitInfo::default()
        .wait_semaphores(&gates)
        .wait_dst_stage_mask(&[vk::PipelineStageFlags::TRANSFER])
        .command_buffers(&cmds)
        .signal_semaphores(&gates)
        .push_next(&mut values);
    let fence = ctx.fence(false)?;
    ctx.submit(&[submit], fence)?;
    std::thread::sleep(Duration::from_millis(50));
    let pending = counter(ctx, gate)?;
    let fence_done = unsafe { ctx.device.get_fence_status(fence) }.check("vkGetFenceStatus")?;
    ensure(pending == 0 && !fence_done, || {
        format!("the submission ran before its wait was signalled (counter {pending}, fence {fence_done})")
    })?;
    report.u64("gated", pending).flag("gated_fence", fence_done);

    let any = wait(
        ctx,
        &[gate, host],
        &[100, HOST_VALUE],
        vk::SemaphoreWaitFlags::ANY,
        0,
    )?;
    expect_result(
        "vkWaitSemaphores(ANY) with one value reached",
        any,
        vk::Result::SUCCESS,
    )?;
    report.i32("wait_any", any.as_raw());

    signal(ctx, gate, 1)?;
    let released = wait(
        ctx,
        &[gate],
        &[2],
        vk::SemaphoreWaitFlags::empty(),
        TIMEOUT_NS,
    )?;
    expect_result(
        "vkWaitSemaphores for the device's signal",
        released,
        vk::Result::SUCCESS,
    )?;
    ctx.wait_fence(fence)?;
    let done = counter(ctx, gate)?;
    ensure(done == 2, || {
        format!("counter is {done} after the submission")
    })?;
    let words: Vec<u32> = buffer.read();
    check_elements("filled buffer", &words, |_| FILL)?;
    report.u64("after_submit", done).values("filled", &words);
    Ok(report)
}
