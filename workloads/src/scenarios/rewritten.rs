//! Mapped memory rewritten by another thread while the device reads it: a thread flips every
//! input word between two values while compute.comp runs over the buffer, eight times. Through
//! Airlock the host driver reads the application's pages themselves (shared memory), so this
//! is the application racing the driver, not the server: each output must be the function of
//! one of the two values, and nothing may crash. Then the writer stops, the inputs get a third
//! value, and one more run must see exactly that (the deterministic result compared between
//! drivers).

use super::compute::expected as f;
use crate::error::{check_elements, Error};
use crate::memory::{Access, Location};
use crate::{shaders, Context, Report, Result};
use ash::vk;
use std::sync::atomic::{AtomicBool, Ordering};

const COUNT: u32 = 1 << 20;
const GROUP_SIZE: u32 = 256;
const ROUNDS: usize = 8;

fn a(i: u32) -> u32 {
    i.wrapping_mul(2_654_435_761) ^ 0x1357_9BDF
}

fn b(i: u32) -> u32 {
    !a(i).rotate_left(11)
}

fn c(i: u32) -> u32 {
    i.wrapping_mul(0x0101_0101).wrapping_add(7)
}

pub fn run(ctx: &Context) -> Result<Report> {
    let [src, dst] = [0, 1].map(|_| {
        let usage = vk::BufferUsageFlags::STORAGE_BUFFER;
        ctx.buffer(u64::from(COUNT) * 4, usage, Location::Host)
    });
    let (src, dst) = (src?, dst?);
    src.fill_words(|i| a(i as u32));
    let kernel = ctx.kernel(shaders::COMPUTE, 2, 4, vk::PipelineCache::null())?;
    let set = ctx.kernel_set(&kernel, &[&src, &dst])?;
    let dispatch = || {
        ctx.run_commands(|cmd| {
            kernel.dispatch(ctx, cmd, set, &COUNT, [COUNT / GROUP_SIZE, 1, 1]);
            ctx.memory_barrier(cmd, Access::COMPUTE_WRITE, Access::HOST_READ);
            Ok(())
        })
    };
    let stop = AtomicBool::new(false);
    let (mut flipped, mut kept) = (0usize, 0usize);
    std::thread::scope(|s| -> Result<()> {
        let words = src.atomic_words();
        let writer = s.spawn(|| {
            let mut passes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (i, w) in words.iter().enumerate() {
                    let v = if passes.is_multiple_of(2) {
                        b(i as u32)
                    } else {
                        a(i as u32)
                    };
                    w.store(v, Ordering::Relaxed);
                }
                passes += 1;
            }
            passes
        });
        let mut checked = Ok(());
        for _ in 0..ROUNDS {
            if let Err(e) = dispatch() {
                checked = Err(e);
                break;
            }
            for (i, &o) in dst.read::<u32>().iter().enumerate() {
                let i = i as u32;
                if o == f(a(i), i) {
                    kept += 1;
                } else if o == f(b(i), i) {
                    flipped += 1;
                } else {
                    checked = Err(Error::Mismatch(format!(
                        "output [{i}] is {o:#x}: from neither value its input held \
                         ({:#x} or {:#x})",
                        a(i),
                        b(i)
                    )));
                    break;
                }
            }
            if checked.is_err() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let passes = writer.join().expect("the writer thread");
        // How the race went: differs from run to run, so not part of the report.
        eprintln!(
            "rewritten: the writer made {passes} passes over the input during {ROUNDS} \
             dispatches; outputs from the first value {kept}, from the second {flipped}"
        );
        checked
    })?;
    src.fill_words(|i| c(i as u32));
    dispatch()?;
    let out: Vec<u32> = dst.read();
    check_elements("output after the rewriting stopped", &out, |i| {
        f(c(i as u32), i as u32)
    })?;
    let mut report = Report::new();
    report.values("out", &out);
    Ok(report)
}
