//! An asynchronous call on one thread, a use of its result on another: thread A points a
//! descriptor set at a new buffer (`vkUpdateDescriptorSets`, which returns at once), then tells
//! thread B, which records, submits and waits for a dispatch through that set. Every dispatch
//! must land in the buffer A chose just before, never in an earlier one.

use crate::error::{check_elements, ensure};
use crate::memory::{Buffer, Location};
use crate::shaders::Pattern;
use crate::{Context, Report, Result};
use ash::vk;
use std::sync::mpsc;

const ROUNDS: u32 = 100;
const WORDS: u32 = 64;

fn pattern(round: u32) -> Pattern {
    Pattern {
        offset: 0,
        count: WORDS,
        mul: round + 1,
        add: round * 1000,
    }
}

pub fn run(ctx: &Context) -> Result<Report> {
    let kernel = Pattern::kernel(ctx, vk::PipelineCache::null())?;
    let buffers: Vec<Buffer> = (0..ROUNDS)
        .map(|_| {
            ctx.buffer(
                u64::from(WORDS) * 4,
                vk::BufferUsageFlags::STORAGE_BUFFER,
                Location::Host,
            )
        })
        .collect::<Result<_>>()?;
    let set = ctx.descriptor_set(kernel.set_layout)?;
    let (to_b, from_a) = mpsc::channel::<u32>();
    let (to_a, from_b) = mpsc::channel::<Result<()>>();
    let (buffers, kernel) = (&buffers, &kernel);
    std::thread::scope(|s| {
        // Thread A: updates, then hands over; waits until B is done with the set.
        let a = s.spawn(move || -> Result<()> {
            for (round, buffer) in (0..ROUNDS).zip(buffers) {
                let info = [buffer.info()];
                let write = vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(0)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(&info);
                unsafe { ctx.device.update_descriptor_sets(&[write], &[]) };
                to_b.send(round).expect("thread B is listening");
                from_b.recv().expect("thread B answers")?;
            }
            Ok(())
        });
        // Thread B: uses the set as soon as A says it is ready.
        let b = s.spawn(move || {
            for round in from_a.iter() {
                let p = pattern(round);
                let r = ctx.run_commands(|cmd| {
                    kernel.dispatch(ctx, cmd, set, &p, p.groups());
                    Ok(())
                });
                to_a.send(r).expect("thread A is listening");
            }
        });
        // A drops its sender when done, which ends B's loop.
        let r = a.join().expect("thread A");
        b.join().expect("thread B");
        r
    })?;
    let mut report = Report::new();
    for (round, buffer) in (0..ROUNDS).zip(buffers) {
        let got: Vec<u32> = buffer.read();
        ensure(got.len() == WORDS as usize, || "buffer size".into())?;
        check_elements(&format!("buffer of round {round}"), &got, |i| {
            pattern(round).value(i as u32)
        })?;
        report.values(&format!("round {round}"), &got);
    }
    Ok(report)
}
