//! The `control` fuzz target's harness: everything that takes bytes from the peer before (or
//! beside) the command stream. Shared with the regression tests (`server/tests/fuzz.rs`
//! includes this file), so it depends on `wire`, `rustix` and std only.
//!
//! Input: one mode byte, then the mode's bytes.
//! - 0, the server's side of the handshake: a raw control message (u16 length, bytes) with 0-17
//!   descriptors, through `control::server_accept`; then `Channel::attach` of the memfd (a real
//!   channel when the message is a `Hello` with a valid layout, its ring headers overwritten
//!   with the rest of the input as (u32 offset, byte) pairs); then the server's first ring reads
//!   and a reply write, against a peer that is "gone" as soon as a read would block.
//! - 1, the client's side: the server's answer to `Hello` and the next control message (each a
//!   u16 length and bytes), through `control::client_handshake` and `control::recv`.
//! - 2, the frame parsers: `RequestHeader::from_bytes`, `parse_reply_header`.

use rustix::net::{
    self, AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags,
    SocketType,
};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;
use wire::channel::{Channel, ChannelLayout};
use wire::control::{self, ControlMsg, ExtensionInfo, Hello, Welcome, WIRE_VERSION};
use wire::frame::{self, RequestHeader, REPLY_HEADER, REQUEST_HEADER};
use wire::ring::{Liveness, RingError};
use wire::shm::SharedMemory;

/// A peer that is gone as soon as a ring operation would block: every run ends without waiting.
struct Gone;
impl Liveness for Gone {
    fn check(&self) -> Result<(), RingError> {
        Err(RingError::PeerGone)
    }
}

struct Input<'a>(&'a [u8]);
impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self
            .0
            .split_first()
            .map(|(b, r)| (*b, r))
            .unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

fn pair() -> (OwnedFd, OwnedFd) {
    net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair")
}

/// Sends `bytes` as one datagram with `fds`, bypassing `control::send` so that any bytes go.
fn send_raw(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(32))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        cmsg.push(SendAncillaryMessage::ScmRights(fds));
    }
    // A datagram larger than the socket buffer is refused here; the receiver then sees nothing.
    let _ = net::sendmsg(sock, &[IoSlice::new(bytes)], &mut cmsg, SendFlags::NOSIGNAL);
}

fn memfd(len: usize) -> OwnedFd {
    let fd = rustix::fs::memfd_create("fuzz", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd");
    let _ = rustix::fs::ftruncate(&fd, len as u64);
    fd
}

pub fn run(data: &[u8]) {
    let mut input = Input(data);
    match input.byte() % 3 {
        0 => server_side(input),
        1 => client_side(input),
        _ => parsers(input.0),
    }
}

fn server_side(mut input: Input<'_>) {
    let fd_mode = input.byte();
    let len = input.u16() as usize;
    let msg = input.take(len);
    // A valid channel when the message is a Hello with a valid layout, so the fuzzer reaches
    // the ring headers; otherwise the descriptors the server must refuse.
    let layout = match postcard_hello(msg) {
        Some(l) if l.validate().is_ok() => Some(l),
        _ => None,
    };
    let channel = layout.and_then(|l| Channel::create(l).ok());
    if let (Some(ch), Some(l)) = (&channel, layout) {
        // Overwrite bytes of the shared memory as a hostile client would, before the server
        // attaches (and so before it validates the headers).
        let total = l.total_bytes().unwrap_or(0);
        if let Ok(dup) = rustix::io::fcntl_dupfd_cloexec(ch.fd(), 0) {
            if let Ok(mem) = SharedMemory::from_fd(dup, total) {
                while input.0.len() >= 5 {
                    let at = input.u32() as usize % total;
                    // SAFETY: inside the mapping; nothing else uses it concurrently.
                    unsafe { *mem.as_ptr().add(at) = input.byte() };
                }
            }
        }
    }
    let (client, server) = pair();
    let extra: Vec<OwnedFd> = match fd_mode % 5 {
        0 => vec![],
        1 => vec![],
        2 => vec![memfd(4096)],
        3 => vec![memfd(0), memfd(1 << 20)],
        _ => (0..17).map(|_| memfd(0)).collect(),
    };
    let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
    if fd_mode % 5 == 1 || fd_mode % 5 == 3 {
        if let Some(ch) = &channel {
            fds.push(ch.fd());
        }
    }
    fds.extend(extra.iter().map(|f| f.as_fd()));
    send_raw(client.as_fd(), msg, &fds);
    let Ok((hello, fd)) = control::server_accept(server.as_fd(), Some(Duration::ZERO)) else {
        return;
    };
    let Ok(ch) = Channel::attach(fd, hello.layout) else {
        return;
    };
    // The server's reader loop, one request, then a reply: every wait ends at once.
    let mut hb = [0u8; REQUEST_HEADER];
    if let Ok(true) = ch
        .commands
        .read_exact_timeout(&mut hb, Duration::ZERO, &Gone)
    {
        if let Ok(h) = RequestHeader::from_bytes(&hb) {
            let mut payload = vec![0u8; h.size as usize];
            let _ = ch.commands.read_exact(&mut payload, &Gone);
        }
    }
    if let Some(r) = ch.replies.first() {
        let h = frame::reply_header(4, frame::Status::Ok);
        let _ = r.write(&[&h, &[0; 4]], &Gone);
    }
}

/// The layout of a well-formed `Hello`, decoded the way `control::recv` decodes.
fn postcard_hello(msg: &[u8]) -> Option<ChannelLayout> {
    // `control` does not export its decoder; a socket round trip is the same code path.
    let (a, b) = pair();
    send_raw(a.as_fd(), msg, &[]);
    match control::recv(b.as_fd(), Some(Duration::ZERO)) {
        Ok((ControlMsg::Hello(h), _)) => Some(h.layout),
        _ => None,
    }
}

fn client_side(mut input: Input<'_>) {
    let (client, server) = pair();
    let fd_mode = input.byte();
    for _ in 0..2 {
        let len = input.u16() as usize;
        let msg = input.take(len);
        let extra: Vec<OwnedFd> = (0..fd_mode % 4).map(|_| memfd(4096)).collect();
        let fds: Vec<BorrowedFd<'_>> = extra.iter().map(|f| f.as_fd()).collect();
        send_raw(server.as_fd(), msg, &fds);
    }
    let channel = SharedMemory::create("fuzz-channel", 4096).expect("memfd");
    let hello = Hello {
        wire_version: WIRE_VERSION,
        vk_xml_version: wire::generated::VK_XML_VERSION,
        layout: ChannelLayout::default(),
        extensions: vec![],
        client_pid: 1,
    };
    if control::client_handshake(client.as_fd(), hello, channel.fd(), Some(Duration::ZERO)).is_ok()
    {
        // What the ICD waits for after MAP_MEMORY.
        let _ = control::recv(client.as_fd(), Some(Duration::ZERO));
    }
}

fn parsers(data: &[u8]) {
    for c in data.chunks_exact(REQUEST_HEADER) {
        let _ = RequestHeader::from_bytes(c.try_into().expect("16 bytes"));
    }
    for c in data.chunks_exact(REPLY_HEADER) {
        let _ = frame::parse_reply_header(c.try_into().expect("8 bytes"));
    }
}

/// Seed inputs built from the messages the ICD and the server really send (postcard through
/// `control::send`), one per mode and message kind.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    fn encode(msg: &ControlMsg) -> Vec<u8> {
        let (a, b) = pair();
        control::send(a.as_fd(), msg, &[]).expect("send");
        let mut buf = vec![0u8; control::MAX_CONTROL_MSG];
        let n = rustix::io::read(&b, &mut buf).expect("read");
        buf.truncate(n);
        buf
    }
    fn framed(mode: u8, fd_mode: u8, msgs: &[Vec<u8>], tail: &[u8]) -> Vec<u8> {
        let mut v = vec![mode, fd_mode];
        for m in msgs {
            v.extend((m.len() as u16).to_le_bytes());
            v.extend(m);
        }
        v.extend(tail);
        v
    }
    let ext = |n: &str, v| ExtensionInfo {
        name: n.into(),
        spec_version: v,
    };
    let hello = encode(&ControlMsg::Hello(Hello {
        wire_version: WIRE_VERSION,
        vk_xml_version: wire::generated::VK_XML_VERSION,
        // Small rings, so each run maps little.
        layout: ChannelLayout {
            command_ring: 4096,
            reply_ring: 4096,
            reply_slots: 2,
        },
        extensions: vec![ext("VK_KHR_surface", 25), ext("VK_EXT_debug_utils", 2)],
        client_pid: 4242,
    }));
    let welcome = encode(&ControlMsg::Welcome(Welcome {
        wire_version: WIRE_VERSION,
        vk_xml_version: wire::generated::VK_XML_VERSION,
        host_driver: "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so".into(),
        extensions: vec![ext("VK_KHR_surface", 25)],
        server_pid: 4243,
    }));
    let refused = encode(&ControlMsg::Refused {
        reason: "wire version mismatch".into(),
    });
    let memfd = encode(&ControlMsg::MemoryFd {
        memory: 7,
        size: 65536,
    });
    let feedback = encode(&ControlMsg::Feedback);
    // A request header in the command ring (offset 256: the data area), published by head.
    let mut ring = Vec::new();
    let req = RequestHeader {
        size: 8,
        command: 0,
        slot: 0,
        flags: frame::FLAG_REPLY,
    }
    .to_bytes();
    for (i, b) in req.iter().enumerate() {
        ring.extend((256 + i as u32).to_le_bytes());
        ring.push(*b);
    }
    ring.extend(64u32.to_le_bytes());
    ring.push(24);
    let mut headers = req.to_vec();
    headers.extend(frame::reply_header(12, frame::Status::BadRequest));
    vec![
        ("hello", framed(0, 1, std::slice::from_ref(&hello), &[])),
        (
            "hello_ring",
            framed(0, 1, std::slice::from_ref(&hello), &ring),
        ),
        (
            "hello_no_fd",
            framed(0, 0, std::slice::from_ref(&hello), &[]),
        ),
        (
            "welcome",
            framed(1, 0, &[welcome.clone(), memfd.clone()], &[]),
        ),
        ("feedback", framed(1, 1, &[welcome.clone(), feedback], &[])),
        ("welcome_fd", framed(1, 1, &[welcome, memfd], &[])),
        ("refused", framed(1, 0, &[refused], &[])),
        ("headers", [&[2u8][..], &headers].concat()),
    ]
}
