//! Shared-memory ring: streaming, back-pressure, cross-process use, peer
//! death and hostile headers.

use std::io::Read as _;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use wire::channel::{Channel, ChannelLayout};
use wire::control::{self, ControlMsg, Hello, SocketLiveness, Welcome, WIRE_VERSION};
use wire::ring::{
    AlwaysAlive, Liveness, Ring, RingError, DATA_WAITING_OFFSET, HEAD_OFFSET, MAGIC_OFFSET,
    RING_HEADER_SIZE, TAIL_OFFSET,
};
use wire::shm::SharedMemory;

/// A producer end and a consumer end of one ring, as two independent
/// `Ring` objects over the same memory (as the two processes would have).
fn ring_pair(cap: usize) -> (Arc<SharedMemory>, Ring, Ring) {
    let len = RING_HEADER_SIZE + cap;
    let mem = Arc::new(SharedMemory::create("ring-test", len).expect("memfd"));
    let producer = Ring::init(Arc::clone(&mem), 0, len).expect("init");
    let consumer = Ring::attach(Arc::clone(&mem), 0, len).expect("attach");
    (mem, producer, consumer)
}

/// Header counter as seen by a (possibly hostile) peer.
fn header_u64(mem: &SharedMemory, offset: usize) -> &AtomicU64 {
    assert!(offset + 8 <= RING_HEADER_SIZE);
    // SAFETY: inside the mapping, 8-byte aligned, mapping outlives the borrow.
    unsafe { &*mem.as_ptr().add(offset).cast::<AtomicU64>() }
}

/// Deterministic xorshift64* so producer and consumer can regenerate the
/// same message sequence independently.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Liveness that aborts as soon as a blocking op would sleep.
struct GiveUp;
impl Liveness for GiveUp {
    fn check(&self) -> Result<(), RingError> {
        Err(RingError::PeerGone)
    }
}

#[test]
fn wrap_around_single_thread() {
    let cap = 4096;
    let (_mem, producer, consumer) = ring_pair(cap);
    let mut rng = Rng(0x1234);
    let mut total = 0usize;
    for i in 0..2000 {
        // Odd sizes so the wrap point lands everywhere.
        let len = 1 + rng.below(cap as u64) as usize;
        let mut msg = vec![0u8; len];
        rng.fill(&mut msg);
        let (a, b) = msg.split_at(len / 3);
        producer.write(&[a, b], &AlwaysAlive).unwrap();
        // Read back in differently sized pieces.
        let mut got = vec![0u8; len];
        let split = (i * 7) % len;
        let (x, y) = got.split_at_mut(split);
        consumer.read_exact(x, &AlwaysAlive).unwrap();
        consumer.read_exact(y, &AlwaysAlive).unwrap();
        assert_eq!(got, msg, "message {i} corrupted");
        total += len;
    }
    assert!(total > 100 * cap);
}

/// A quiet write leaves a consumer that announced it is asleep (its futex word set) without a
/// wake; the next ordinary write wakes it (clears the word), and it reads both messages in
/// order. (A real sleeper also finds quiet bytes at its next timeout, 25 ms at most.)
#[test]
fn quiet_writes_wait_for_the_next_wake() {
    let (mem, producer, consumer) = ring_pair(4096);
    // The consumer's announcement, as `sleep_loop` makes it before FUTEX_WAIT (the low half of
    // the word at DATA_WAITING_OFFSET, which is 8-aligned).
    let waiting = header_u64(&mem, DATA_WAITING_OFFSET);
    waiting.store(1, Ordering::SeqCst);
    producer.write_quiet(&[b"quiet..."], &AlwaysAlive).unwrap();
    assert_eq!(
        waiting.load(Ordering::SeqCst),
        1,
        "a quiet write woke the consumer"
    );
    producer.write(&[b"wakes..."], &AlwaysAlive).unwrap();
    assert_eq!(
        waiting.load(Ordering::SeqCst),
        0,
        "an ordinary write did not wake it"
    );
    let mut buf = [0u8; 16];
    consumer.read_exact(&mut buf, &AlwaysAlive).unwrap();
    assert_eq!(&buf, b"quiet...wakes...");
}

#[test]
fn full_ring_applies_back_pressure() {
    let cap = 4096;
    let extra = 100;
    let (_mem, producer, consumer) = ring_pair(cap);
    let payload: Vec<u8> = (0..cap + extra).map(|i| (i * 31 % 251) as u8).collect();
    let done = Arc::new(AtomicBool::new(false));

    let writer = {
        let payload = payload.clone();
        let done = Arc::clone(&done);
        thread::spawn(move || {
            producer.write(&[&payload], &AlwaysAlive).unwrap();
            done.store(true, Ordering::SeqCst);
            producer
        })
    };

    // The write needs `extra` bytes freed; it cannot finish before then.
    // The sleep only gives a broken implementation the chance to show it.
    thread::sleep(Duration::from_millis(50));
    assert!(
        !done.load(Ordering::SeqCst),
        "write finished on a full ring"
    );
    let mut got = vec![0u8; cap + extra];
    for i in 0..extra - 1 {
        consumer
            .read_exact(&mut got[i..i + 1], &AlwaysAlive)
            .unwrap();
        assert!(
            !done.load(Ordering::SeqCst),
            "write finished with only {} bytes freed",
            i + 1
        );
    }
    consumer
        .read_exact(&mut got[extra - 1..], &AlwaysAlive)
        .unwrap();
    writer.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(got, payload);
}

/// Message sizes: mostly small, some around the capacity, some several
/// times larger than the ring.
fn message_len(rng: &mut Rng, cap: usize) -> usize {
    match rng.below(10) {
        0..=6 => rng.below(256) as usize,
        7 | 8 => rng.below(cap as u64) as usize,
        _ => cap + rng.below(5 * cap as u64) as usize,
    }
}

#[test]
fn concurrent_random_messages() {
    let cap = 4096;
    let count = 3000;
    let seed = 0xdead_beef;
    let (_mem, producer, consumer) = ring_pair(cap);

    let writer = thread::spawn(move || {
        let mut rng = Rng(seed);
        let mut sum = 0u64;
        for _ in 0..count {
            let len = message_len(&mut rng, cap);
            let mut payload = vec![0u8; len];
            rng.fill(&mut payload);
            sum = sum.wrapping_add(fnv1a(&payload));
            let header = (len as u32).to_le_bytes();
            producer
                .write(&[&header[..], &payload], &AlwaysAlive)
                .unwrap();
        }
        sum
    });

    let mut rng = Rng(seed);
    let mut sum = 0u64;
    for i in 0..count {
        let len = message_len(&mut rng, cap);
        let mut expected = vec![0u8; len];
        rng.fill(&mut expected);
        let mut header = [0u8; 4];
        consumer.read_exact(&mut header, &AlwaysAlive).unwrap();
        assert_eq!(
            u32::from_le_bytes(header) as usize,
            len,
            "message {i} length"
        );
        let mut payload = vec![0u8; len];
        consumer.read_exact(&mut payload, &AlwaysAlive).unwrap();
        assert!(payload == expected, "message {i} ({len} bytes) corrupted");
        sum = sum.wrapping_add(fnv1a(&payload));
    }
    assert_eq!(writer.join().unwrap(), sum);
    assert!(
        !consumer
            .read_exact_timeout(&mut [0], Duration::ZERO, &AlwaysAlive)
            .unwrap(),
        "stray bytes after the last message"
    );
}

#[test]
fn read_timeout_on_idle_ring() {
    let (_mem, producer, consumer) = ring_pair(4096);
    let mut buf = [0u8; 8];
    assert!(!consumer
        .read_exact_timeout(&mut buf, Duration::ZERO, &AlwaysAlive)
        .unwrap());
    let start = Instant::now();
    assert!(!consumer
        .read_exact_timeout(&mut buf, Duration::from_millis(60), &AlwaysAlive)
        .unwrap());
    assert!(start.elapsed() >= Duration::from_millis(60));

    // Nothing was consumed, and the ring still works afterwards.
    producer.write(&[b"abcdefgh"], &AlwaysAlive).unwrap();
    assert!(consumer
        .read_exact_timeout(&mut buf, Duration::from_secs(5), &AlwaysAlive)
        .unwrap());
    assert_eq!(&buf, b"abcdefgh");
}

#[test]
fn sleeping_reader_is_woken_by_writer() {
    // A lost wake-up would still be noticed by the 25 ms poll period of the
    // sleep loop, so measure wake latency: the median over several rounds
    // must be far below that period.
    let (_mem, producer, consumer) = ring_pair(4096);
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 5];
        for _ in 0..9 {
            consumer.read_exact(&mut buf, &AlwaysAlive).unwrap();
            tx.send((Instant::now(), buf)).unwrap();
        }
    });
    let mut latencies = Vec::new();
    for _ in 0..9 {
        // Long enough that the reader has given up spinning and sleeps.
        thread::sleep(Duration::from_millis(30));
        let sent = Instant::now();
        producer.write(&[b"wake!"], &AlwaysAlive).unwrap();
        let (woke, buf) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(&buf, b"wake!");
        latencies.push(woke.saturating_duration_since(sent));
    }
    reader.join().unwrap();
    latencies.sort();
    assert!(
        latencies[4] < Duration::from_millis(5),
        "median wake latency {:?} (all: {latencies:?})",
        latencies[4]
    );
}

#[test]
fn blocked_reader_sees_peer_death() {
    let (_mem, _producer, consumer) = ring_pair(4096);
    let (ours, theirs) = control::socketpair().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 16];
        let res = consumer.read_exact(&mut buf, &SocketLiveness(ours.as_fd()));
        tx.send((res, Instant::now())).unwrap();
    });
    thread::sleep(Duration::from_millis(100));
    let dropped_at = Instant::now();
    drop(theirs);
    let (res, returned_at) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("reader still blocked 5 s after the peer died");
    assert!(matches!(res, Err(RingError::PeerGone)), "{res:?}");
    assert!(returned_at.duration_since(dropped_at) < Duration::from_secs(1));
    reader.join().unwrap();
}

#[test]
fn blocked_writer_sees_peer_death() {
    let cap = 4096;
    let (_mem, producer, _consumer) = ring_pair(cap);
    let (ours, theirs) = control::socketpair().unwrap();
    let (tx, rx) = mpsc::channel();
    let writer = thread::spawn(move || {
        let big = vec![7u8; 3 * cap];
        let live = SocketLiveness(ours.as_fd());
        let first = producer.write(&[&big], &live);
        // Part of the message went out: the stream can no longer be trusted.
        let second = producer.write(&[b"x"], &AlwaysAlive);
        tx.send((first, second)).unwrap();
    });
    thread::sleep(Duration::from_millis(100));
    drop(theirs);
    let (first, second) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("writer hung");
    assert!(matches!(first, Err(RingError::PeerGone)), "{first:?}");
    assert!(
        matches!(second, Err(RingError::Desynchronized)),
        "{second:?}"
    );
    writer.join().unwrap();
}

#[test]
fn corrupt_head_is_rejected() {
    let cap = 4096;
    let (mem, producer, consumer) = ring_pair(cap);
    producer.write(&[&[1u8; 10]], &AlwaysAlive).unwrap();
    let mut buf = [0u8; 10];
    consumer.read_exact(&mut buf, &AlwaysAlive).unwrap();

    // "The peer" claims twice the capacity is readable.
    let tail = header_u64(&mem, TAIL_OFFSET).load(Ordering::SeqCst);
    header_u64(&mem, HEAD_OFFSET).store(tail + 2 * cap as u64, Ordering::SeqCst);
    let mut big = vec![0u8; 3 * cap];
    let err = consumer.read_exact(&mut big, &AlwaysAlive).unwrap_err();
    assert!(matches!(err, RingError::Corrupt(_)), "{err:?}");
    // The failure sticks even if the header is repaired.
    header_u64(&mem, HEAD_OFFSET).store(tail, Ordering::SeqCst);
    let err = consumer
        .read_exact_timeout(&mut buf, Duration::ZERO, &AlwaysAlive)
        .unwrap_err();
    assert!(matches!(err, RingError::Corrupt(_)), "{err:?}");
}

#[test]
fn head_moving_backwards_is_rejected() {
    let (mem, producer, consumer) = ring_pair(4096);
    producer.write(&[&[1u8; 100]], &AlwaysAlive).unwrap();
    let mut buf = [0u8; 100];
    consumer.read_exact(&mut buf, &AlwaysAlive).unwrap();
    header_u64(&mem, HEAD_OFFSET).store(50, Ordering::SeqCst);
    let err = consumer
        .read_exact_timeout(&mut buf, Duration::ZERO, &AlwaysAlive)
        .unwrap_err();
    assert!(matches!(err, RingError::Corrupt(_)), "{err:?}");
}

#[test]
fn corrupt_tail_is_rejected_by_writer() {
    let cap = 4096;
    let (mem, producer, _consumer) = ring_pair(cap);
    producer.write(&[&vec![0u8; cap]], &AlwaysAlive).unwrap();
    // "The consumer" claims to have read more than was ever written.
    header_u64(&mem, TAIL_OFFSET).store(cap as u64 + 5, Ordering::SeqCst);
    let err = producer.write(&[b"more"], &GiveUp).unwrap_err();
    assert!(matches!(err, RingError::Corrupt(_)), "{err:?}");
}

#[test]
fn garbage_headers_never_panic() {
    let cap = 256;
    let len = RING_HEADER_SIZE + cap;
    let mem = Arc::new(SharedMemory::create("ring-fuzz", len).unwrap());
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let producer = Ring::init(Arc::clone(&mem), 0, len).unwrap();
        let consumer = Ring::attach(Arc::clone(&mem), 0, len).unwrap();
        let mut data = vec![0u8; rng.below(cap as u64) as usize];
        rng.fill(&mut data);
        producer.write(&[&data], &GiveUp).unwrap();

        // Scribble over the header, sometimes near plausible values.
        for _ in 0..1 + rng.below(4) {
            let field = rng.below((RING_HEADER_SIZE / 8) as u64) as usize * 8;
            let value = match rng.below(3) {
                0 => rng.next(),
                1 => rng.below(4 * cap as u64),
                _ => u64::MAX - rng.below(4 * cap as u64),
            };
            header_u64(&mem, field).store(value, Ordering::SeqCst);
        }

        let mut buf = vec![0u8; rng.below(2 * cap as u64) as usize];
        let _ = consumer.read_exact_timeout(&mut buf, Duration::ZERO, &GiveUp);
        let _ = producer.write(&[&buf], &GiveUp);
        let _ = consumer.read_exact(&mut buf, &GiveUp);
        let _ = Ring::attach(Arc::clone(&mem), 0, len);
    }
}

#[test]
fn attach_validates_geometry() {
    let len = RING_HEADER_SIZE + 4096;
    let mem = Arc::new(SharedMemory::create("ring-geom", 2 * len).unwrap());
    let bad = |offset, len| Ring::init(Arc::clone(&mem), offset, len).unwrap_err();
    assert!(matches!(
        bad(0, RING_HEADER_SIZE + 1000),
        RingError::Geometry(_)
    ));
    assert!(matches!(bad(0, RING_HEADER_SIZE), RingError::Geometry(_)));
    assert!(matches!(bad(8, len), RingError::Geometry(_)));
    assert!(matches!(bad(len, 2 * len), RingError::Geometry(_)));
    assert!(matches!(bad(usize::MAX - 63, len), RingError::Geometry(_)));

    // Attaching to memory nobody initialised fails on the magic.
    let err = Ring::attach(Arc::clone(&mem), 0, len).unwrap_err();
    assert!(matches!(err, RingError::Corrupt(_)), "{err:?}");
    Ring::init(Arc::clone(&mem), 0, len).unwrap();
    header_u64(&mem, MAGIC_OFFSET).store(0, Ordering::SeqCst);
    assert!(Ring::attach(Arc::clone(&mem), 0, len).is_err());
    // A ring of a different capacity at the same place is refused.
    Ring::init(Arc::clone(&mem), 0, len).unwrap();
    assert!(Ring::attach(Arc::clone(&mem), 0, RING_HEADER_SIZE + 2048).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary write sizes (up to 3x the ring), split into arbitrary
    /// parts, read back with unrelated chunk sizes.
    #[test]
    fn stream_is_intact(
        writes in prop::collection::vec((0usize..768, 0usize..4), 1..24),
        reads in prop::collection::vec(1usize..600, 1..8),
        seed in any::<u64>(),
    ) {
        let (_mem, producer, consumer) = ring_pair(256);
        let mut rng = Rng(seed | 1);
        let mut stream = Vec::new();
        let mut messages = Vec::new();
        for &(len, splits) in &writes {
            let mut msg = vec![0u8; len];
            rng.fill(&mut msg);
            stream.extend_from_slice(&msg);
            messages.push((msg, splits));
        }
        let writer = thread::spawn(move || {
            for (msg, splits) in messages {
                // Cut into `splits + 1` parts at fixed fractions.
                let cuts: Vec<usize> = (0..=splits + 1).map(|k| msg.len() * k / (splits + 1)).collect();
                let parts: Vec<&[u8]> = cuts.windows(2).map(|w| &msg[w[0]..w[1]]).collect();
                producer.write(&parts, &AlwaysAlive).unwrap();
            }
        });
        let mut got = vec![0u8; stream.len()];
        let mut filled = 0;
        for &chunk in reads.iter().cycle() {
            if filled == got.len() {
                break;
            }
            let n = chunk.min(got.len() - filled);
            consumer.read_exact(&mut got[filled..filled + n], &AlwaysAlive).unwrap();
            filled += n;
        }
        writer.join().unwrap();
        prop_assert!(got == stream);
    }
}

// ---------------------------------------------------------------------------
// Two processes: this test binary re-executes itself as the "server".

const CHILD_ENV: &str = "AIRLOCK_RING_TEST_CHILD";
/// Request length that tells the child to exit without replying.
const DIE: u32 = u32::MAX;

/// Server half of `two_processes`; a no-op unless started by it. The control
/// socket arrives as the child's stdin.
#[test]
fn two_processes_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let stdin = std::io::stdin();
    let sock = stdin.as_fd();
    let timeout = Some(Duration::from_secs(10));
    let (hello, fd) = control::server_accept(sock, timeout).unwrap();
    let channel = Channel::attach(fd, hello.layout).unwrap();
    let welcome = Welcome {
        wire_version: WIRE_VERSION,
        vk_xml_version: hello.vk_xml_version,
        host_driver: "ring-test child".into(),
        extensions: Vec::new(),
        server_pid: std::process::id(),
    };
    control::send(sock, &ControlMsg::Welcome(welcome), &[]).unwrap();
    let live = SocketLiveness(sock);
    loop {
        let mut header = [0u8; 4];
        channel.commands.read_exact(&mut header, &live).unwrap();
        let len = u32::from_le_bytes(header);
        if len == DIE {
            // Vanish mid-conversation: the parent is waiting for a reply.
            std::process::exit(0);
        }
        let mut payload = vec![0u8; len as usize];
        channel.commands.read_exact(&mut payload, &live).unwrap();
        let sum = fnv1a(&payload).to_le_bytes();
        for b in &mut payload {
            *b ^= 0x5a;
        }
        channel.replies[0]
            .write(&[&sum[..], &payload], &live)
            .unwrap();
    }
}

#[test]
fn two_processes() {
    let layout = ChannelLayout {
        command_ring: 4096,
        reply_ring: 8192,
        reply_slots: 2,
    };
    let channel = Channel::create(layout).unwrap();
    let (sock, child_sock) = control::socketpair().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "two_processes_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::from(child_sock))
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-exec test binary");

    let hello = Hello {
        wire_version: WIRE_VERSION,
        vk_xml_version: 300,
        layout,
        extensions: Vec::new(),
        client_pid: std::process::id(),
    };
    let welcome = control::client_handshake(
        sock.as_fd(),
        hello,
        channel.fd(),
        Some(Duration::from_secs(10)),
    )
    .unwrap();
    assert_eq!(welcome.server_pid, child.id());

    let live = SocketLiveness(sock.as_fd());
    let mut rng = Rng(7);
    for i in 0..500 {
        let len = message_len(&mut rng, 4096);
        let mut msg = vec![0u8; len];
        rng.fill(&mut msg);
        channel
            .commands
            .write(&[&(len as u32).to_le_bytes()[..], &msg], &live)
            .unwrap();
        let mut sum = [0u8; 8];
        channel.replies[0].read_exact(&mut sum, &live).unwrap();
        assert_eq!(u64::from_le_bytes(sum), fnv1a(&msg), "checksum of {i}");
        let mut reply = vec![0u8; len];
        channel.replies[0].read_exact(&mut reply, &live).unwrap();
        assert!(
            reply.iter().zip(&msg).all(|(r, m)| r ^ 0x5a == *m),
            "payload of {i}"
        );
    }

    // The child exits without answering; the blocked read must notice.
    channel
        .commands
        .write(&[&DIE.to_le_bytes()], &live)
        .unwrap();
    let start = Instant::now();
    let err = channel.replies[0]
        .read_exact(&mut [0u8; 8], &live)
        .unwrap_err();
    assert!(matches!(err, RingError::PeerGone), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    let status = child.wait().unwrap();
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    assert!(status.success(), "child failed: {status:?}\n{out}");
}
