//! Ring latency and throughput through a `Channel`, between two threads.
//!
//! Criterion measures a synchronous 16-byte round trip and 64 KiB streaming;
//! in `--bench` mode a second pass then times 100k round trips individually
//! and prints percentiles, which criterion's mean/median hide.

use std::hint::black_box;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use wire::channel::{Channel, ChannelLayout};
use wire::ring::AlwaysAlive;

const OP_ECHO: u64 = 0;
const OP_ACK: u64 = 1;
const OP_STOP: u64 = 2;

const STREAM_MSG: usize = 64 * 1024;

/// A thread acting as the server: answers every 16-byte request on
/// `commands` with a 16-byte reply on `replies[0]`.
struct Echo {
    channel: Arc<Channel>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let channel = Arc::new(Channel::create(ChannelLayout::default()).expect("channel"));
        let server = Arc::clone(&channel);
        let thread = thread::spawn(move || {
            let mut req = [0u8; 16];
            loop {
                server.commands.read_exact(&mut req, &AlwaysAlive).unwrap();
                if u64::from_le_bytes(req[..8].try_into().unwrap()) == OP_STOP {
                    return;
                }
                req[8..].reverse();
                server.replies[0].write(&[&req], &AlwaysAlive).unwrap();
            }
        });
        Echo {
            channel,
            thread: Some(thread),
        }
    }

    fn round_trip(&self, payload: u64) -> [u8; 16] {
        let mut req = [0u8; 16];
        req[..8].copy_from_slice(&OP_ECHO.to_le_bytes());
        req[8..].copy_from_slice(&payload.to_le_bytes());
        self.channel.commands.write(&[&req], &AlwaysAlive).unwrap();
        let mut reply = [0u8; 16];
        self.channel.replies[0]
            .read_exact(&mut reply, &AlwaysAlive)
            .unwrap();
        reply
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let mut req = [0u8; 16];
        req[..8].copy_from_slice(&OP_STOP.to_le_bytes());
        let _ = self.channel.commands.write(&[&req], &AlwaysAlive);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A thread draining 64 KiB messages; acknowledges on request so the
/// producer can time complete delivery, not just enqueueing.
struct Sink {
    channel: Arc<Channel>,
    thread: Option<JoinHandle<()>>,
    payload: Vec<u8>,
}

impl Sink {
    fn start() -> Sink {
        let channel = Arc::new(Channel::create(ChannelLayout::default()).expect("channel"));
        let server = Arc::clone(&channel);
        let thread = thread::spawn(move || {
            let mut header = [0u8; 8];
            let mut body = vec![0u8; STREAM_MSG];
            loop {
                server
                    .commands
                    .read_exact(&mut header, &AlwaysAlive)
                    .unwrap();
                match u64::from_le_bytes(header) {
                    OP_STOP => return,
                    OP_ACK => server.replies[0].write(&[&header], &AlwaysAlive).unwrap(),
                    _ => {
                        server.commands.read_exact(&mut body, &AlwaysAlive).unwrap();
                        black_box(&body);
                    }
                }
            }
        });
        Sink {
            channel,
            thread: Some(thread),
            payload: (0..STREAM_MSG).map(|i| i as u8).collect(),
        }
    }

    /// Streams `count` messages and waits until all were consumed.
    fn stream(&self, count: u64) -> Duration {
        let start = Instant::now();
        let header = OP_ECHO.to_le_bytes();
        for _ in 0..count {
            self.channel
                .commands
                .write(&[&header, &self.payload], &AlwaysAlive)
                .unwrap();
        }
        self.channel
            .commands
            .write(&[&OP_ACK.to_le_bytes()], &AlwaysAlive)
            .unwrap();
        let mut ack = [0u8; 8];
        self.channel.replies[0]
            .read_exact(&mut ack, &AlwaysAlive)
            .unwrap();
        start.elapsed()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self
            .channel
            .commands
            .write(&[&OP_STOP.to_le_bytes()], &AlwaysAlive);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn criterion_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    {
        let echo = Echo::start();
        let mut n = 0u64;
        group.bench_function("round_trip_16B", |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                black_box(echo.round_trip(n))
            })
        });
    }
    {
        let sink = Sink::start();
        group.throughput(Throughput::Bytes(STREAM_MSG as u64));
        group.bench_function("stream_64KiB", |b| {
            b.iter_custom(|iters| sink.stream(iters))
        });
    }
    group.finish();
}

fn percentile_pass() {
    const WARMUP: usize = 10_000;
    const SAMPLES: usize = 100_000;
    let echo = Echo::start();
    for i in 0..WARMUP {
        black_box(echo.round_trip(i as u64));
    }
    let mut nanos = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let start = Instant::now();
        let reply = echo.round_trip(i as u64);
        nanos.push(start.elapsed().as_nanos() as u64);
        black_box(reply);
    }
    drop(echo);
    nanos.sort_unstable();
    let pct = |p: f64| {
        let idx = ((SAMPLES as f64 * p) as usize).min(SAMPLES - 1);
        nanos[idx] as f64 / 1000.0
    };
    println!(
        "ring round trip (16 B, {SAMPLES} samples): p50 {:.2} µs  p99 {:.2} µs  p99.9 {:.2} µs  max {:.2} µs",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        nanos[SAMPLES - 1] as f64 / 1000.0
    );

    const STREAM_COUNT: u64 = 16 * 1024; // 1 GiB
    let sink = Sink::start();
    sink.stream(1024);
    let elapsed = sink.stream(STREAM_COUNT);
    let mib = (STREAM_COUNT * STREAM_MSG as u64) as f64 / (1024.0 * 1024.0);
    println!(
        "ring streaming (64 KiB messages, {mib:.0} MiB): {:.0} MiB/s",
        mib / elapsed.as_secs_f64()
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    // Only when benchmarking, not when `cargo test` runs benches as tests.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list") {
        percentile_pass();
    }
}
