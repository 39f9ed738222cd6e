//! Time of check, time of use: a client that rewrites the bytes of its requests in the shared
//! command ring while the server reads them. The server copies each request out of the ring
//! once, into its own memory, before it looks at it (`wire/src/ring.rs`): what it checks is what
//! it uses, whatever the client does to the ring meanwhile. However the rewrites land (a
//! header, a length, a parameter), the server serves the request, refuses it, or drops the
//! client; it never crashes and never hangs.

use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::channel::{Channel, ChannelLayout};
use wire::codec::Encoder;
use wire::control::{self, Hello, SocketLiveness};
use wire::frame::{self, RequestHeader, Status, FLAG_REPLY, REPLY_HEADER};
use wire::generated::commands::C_vkEnumerateInstanceVersion;
use wire::interp::{self, ClientObjects, Handles};
use wire::ring::RING_HEADER_SIZE;

const SERVER: &str = env!("CARGO_BIN_EXE_airlock-server");

struct NoHandles;

impl Handles for NoHandles {
    fn encode_handle(
        &self,
        _: ash::vk::ObjectType,
        _: bool,
        raw: u64,
    ) -> Result<u64, wire::codec::DecodeError> {
        Ok(raw)
    }
    fn decode_handle(
        &self,
        _: ash::vk::ObjectType,
        _: bool,
        id: u64,
    ) -> Result<u64, wire::codec::DecodeError> {
        Ok(id)
    }
}

impl ClientObjects for NoHandles {
    fn new_id(&self) -> u64 {
        1
    }
    fn wrap_new(&self, _: ash::vk::ObjectType, _: bool, id: u64) -> u64 {
        id
    }
}

#[test]
fn a_client_rewriting_its_requests_under_the_server_does_not_crash_it() {
    let (ours, theirs) = control::socketpair().unwrap();
    let mut server = control::spawn_server(Path::new(SERVER), theirs.as_fd()).unwrap();
    drop(theirs);
    let layout = ChannelLayout::default();
    let channel = Channel::create(layout).unwrap();
    let hello = Hello::new(layout);
    control::client_handshake(
        ours.as_fd(),
        hello,
        channel.fd(),
        Some(Duration::from_secs(10)),
    )
    .expect("handshake");
    // A second mapping of the channel, writable, for the thread that rewrites the command
    // ring's data while requests are in it.
    let cap = layout.command_ring as usize;
    let len = RING_HEADER_SIZE + cap;
    // SAFETY: a fresh shared mapping of the channel's memfd, as long as the file.
    let map = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            channel.fd(),
            0,
        )
    }
    .expect("mapping the channel") as usize;
    let stop = Arc::new(AtomicBool::new(false));
    // Where the request being sent starts in the ring (bytes written before it).
    let at = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let scribbler = {
        let (stop, at) = (Arc::clone(&stop), Arc::clone(&at));
        std::thread::spawn(move || {
            let mut x: u32 = 0x9e37_79b9;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Within the request in flight: its parameters mostly, its header (the first
                // 16 bytes) one time in sixteen.
                let within = if x.is_multiple_of(16) {
                    x as usize % 16
                } else {
                    16 + (x >> 8) as usize % 8
                };
                let pos = (at.load(Ordering::Relaxed) as usize + within) % cap;
                // SAFETY: inside the mapping; the bytes are shared with the server on purpose.
                unsafe {
                    let p = (map as *mut u8).add(RING_HEADER_SIZE + pos);
                    p.write_volatile(p.read_volatile() ^ ((x >> 24) as u8 | 1));
                }
                n += 1;
                // Now and then, so that some requests go through whole.
                std::thread::sleep(Duration::from_micros(50));
            }
            n
        })
    };
    // A valid request, sent again and again while its bytes are rewritten.
    let mut version = 0u32;
    let args = [&mut version as *mut u32 as u64];
    let mut enc = Encoder::new();
    // SAFETY: the arguments of vkEnumerateInstanceVersion: one output pointer, live.
    unsafe {
        interp::encode_request(
            &mut enc,
            &C_vkEnumerateInstanceVersion,
            &args,
            &NoHandles,
            &mut Vec::new(),
        )
    }
    .unwrap();
    let live = SocketLiveness(ours.as_fd());
    let (mut served, mut refused, mut sent) = (0u32, 0u32, 0u32);
    let mut written = 0u64;
    let mut ended = "time";
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        let header = RequestHeader {
            size: enc.buf.len() as u32,
            command: C_vkEnumerateInstanceVersion.id,
            slot: 0,
            flags: FLAG_REPLY,
        }
        .to_bytes();
        at.store(written, Ordering::Relaxed);
        written += (header.len() + enc.buf.len()) as u64;
        if channel.commands.write(&[&header, &enc.buf], &live).is_err() {
            ended = "the server dropped the client while it wrote";
            break;
        }
        sent += 1;
        let mut h = [0u8; REPLY_HEADER];
        match channel.replies[0].read_exact_timeout(&mut h, Duration::from_secs(5), &live) {
            Ok(true) => {}
            // The rewrite turned the request into one that wants no reply, or framed it
            // differently: the server waits for the rest, as it should.
            Ok(false) => {
                ended = "a request the rewrites made into one without a reply";
                break;
            }
            Err(_) => {
                ended = "the server dropped the client";
                break;
            }
        }
        let Ok((size, status)) = frame::parse_reply_header(&h) else {
            panic!("the server wrote a malformed reply header: {h:?}");
        };
        let mut body = vec![0u8; size];
        if channel.replies[0].read_exact(&mut body, &live).is_err() {
            ended = "the server dropped the client";
            break;
        }
        if status == Status::Ok {
            served += 1;
        } else {
            refused += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let rewrites = scribbler.join().unwrap();
    // The client goes: the server must notice and exit on its own, whatever state it is in.
    drop(ours);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            panic!("the server hangs after the client left ({sent} requests sent)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "{sent} requests, {served} served, {refused} refused, {rewrites} byte rewrites; \
         ended by {ended}; server {status}"
    );
    assert!(
        status.signal().is_none(),
        "the server died of signal {:?}",
        status.signal()
    );
    assert!(sent > 0);
}
