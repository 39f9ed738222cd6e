//! Control channel: handshake, refusals and hostile datagrams.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::thread;
use std::time::{Duration, Instant};

use rustix::io::FdFlags;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use wire::channel::{Channel, ChannelLayout};
use wire::control::{
    self, ControlError, ControlMsg, ExtensionInfo, Hello, SocketLiveness, Welcome, MAX_CONTROL_MSG,
    MAX_FDS, WIRE_VERSION,
};
use wire::ring::{AlwaysAlive, Liveness, RingError};
use wire::shm::SharedMemory;

const TIMEOUT: Option<Duration> = Some(Duration::from_secs(5));

fn small_layout() -> ChannelLayout {
    ChannelLayout {
        command_ring: 64 * 1024,
        reply_ring: 4096,
        reply_slots: 4,
    }
}

fn hello(layout: ChannelLayout) -> Hello {
    Hello {
        wire_version: WIRE_VERSION,
        vk_xml_version: 4242,
        layout,
        extensions: vec![ExtensionInfo {
            name: "VK_KHR_surface".into(),
            spec_version: 25,
        }],
        client_pid: std::process::id(),
    }
}

fn welcome() -> Welcome {
    Welcome {
        wire_version: WIRE_VERSION,
        vk_xml_version: 4242,
        host_driver: "test driver".into(),
        extensions: Vec::new(),
        server_pid: 1,
    }
}

fn send_raw(sock: BorrowedFd<'_>, bytes: &[u8]) {
    rustix::net::send(sock, bytes, SendFlags::NOSIGNAL).expect("raw send");
}

#[test]
fn handshake_round_trip_shares_memory() {
    let (client_sock, server_sock) = control::socketpair().unwrap();
    let server = thread::spawn(move || {
        let (hello, fd) = control::server_accept(server_sock.as_fd(), TIMEOUT).unwrap();
        let flags = rustix::io::fcntl_getfd(&fd).unwrap();
        assert!(
            flags.contains(FdFlags::CLOEXEC),
            "received fd must be CLOEXEC"
        );
        let channel = Channel::attach(fd, hello.layout).unwrap();
        control::send(server_sock.as_fd(), &ControlMsg::Welcome(welcome()), &[]).unwrap();
        let live = SocketLiveness(server_sock.as_fd());
        let mut buf = [0u8; 5];
        channel.commands.read_exact(&mut buf, &live).unwrap();
        buf.reverse();
        channel.replies[3].write(&[&buf], &live).unwrap();
        hello
    });

    let layout = small_layout();
    let channel = Channel::create(layout).unwrap();
    let got = control::client_handshake(client_sock.as_fd(), hello(layout), channel.fd(), TIMEOUT)
        .unwrap();
    assert_eq!(got, welcome());

    let live = SocketLiveness(client_sock.as_fd());
    channel
        .commands
        .write(&[&b"hel"[..], b"lo"], &live)
        .unwrap();
    let mut reply = [0u8; 5];
    channel.replies[3].read_exact(&mut reply, &live).unwrap();
    assert_eq!(&reply, b"olleh");
    assert_eq!(server.join().unwrap(), hello(layout));
}

#[test]
fn passed_fd_maps_the_same_memory() {
    let (a, b) = control::socketpair().unwrap();
    let mem = SharedMemory::create("fd-pass", 8192).unwrap();
    control::send(
        a.as_fd(),
        &ControlMsg::Hello(hello(small_layout())),
        &[mem.fd()],
    )
    .unwrap();
    let (_, mut fds) = control::recv(b.as_fd(), TIMEOUT).unwrap();
    assert_eq!(fds.len(), 1);
    let other = SharedMemory::from_fd(fds.remove(0), 8192).unwrap();
    // SAFETY: both mappings are 8192 bytes; single-threaded access.
    unsafe {
        mem.as_ptr().add(4000).write_volatile(0xa5);
        assert_eq!(other.as_ptr().add(4000).read_volatile(), 0xa5);
        other.as_ptr().add(8191).write_volatile(0x3c);
        assert_eq!(mem.as_ptr().add(8191).read_volatile(), 0x3c);
    }
}

#[test]
fn unsealed_or_small_memfd_is_rejected() {
    let mem = SharedMemory::create("small", 4096).unwrap();
    let dup = |m: &SharedMemory| m.fd().try_clone_to_owned().unwrap();
    assert!(SharedMemory::from_fd(dup(&mem), 8192).is_err());
    assert!(SharedMemory::from_fd(dup(&mem), 4096).is_ok());

    // An unsealed memfd could be truncated under us: refuse it.
    let raw = rustix::fs::memfd_create("unsealed", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&raw, 4096).unwrap();
    assert!(SharedMemory::from_fd(raw, 4096).is_err());

    // Not a memfd at all.
    let (a, _b) = control::socketpair().unwrap();
    assert!(SharedMemory::from_fd(a, 4096).is_err());
}

#[test]
fn version_mismatch_is_refused_with_reason() {
    let (client_sock, server_sock) = control::socketpair().unwrap();
    let server = thread::spawn(move || control::server_accept(server_sock.as_fd(), TIMEOUT));
    let channel = Channel::create(small_layout()).unwrap();
    let mut h = hello(small_layout());
    h.wire_version = WIRE_VERSION + 1;
    let err = control::client_handshake(client_sock.as_fd(), h, channel.fd(), TIMEOUT).unwrap_err();
    match err {
        ControlError::Refused(reason) => assert!(reason.contains("wire version"), "{reason}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(matches!(
        server.join().unwrap(),
        Err(ControlError::Incompatible(_))
    ));
}

#[test]
fn client_rejects_other_wire_version() {
    let (client_sock, server_sock) = control::socketpair().unwrap();
    let server = thread::spawn(move || {
        let (_hello, _fd) = control::server_accept(server_sock.as_fd(), TIMEOUT).unwrap();
        let mut w = welcome();
        w.wire_version = WIRE_VERSION + 7;
        control::send(server_sock.as_fd(), &ControlMsg::Welcome(w), &[]).unwrap();
        server_sock
    });
    let channel = Channel::create(small_layout()).unwrap();
    let err = control::client_handshake(
        client_sock.as_fd(),
        hello(small_layout()),
        channel.fd(),
        TIMEOUT,
    )
    .unwrap_err();
    assert!(
        matches!(err, ControlError::VersionMismatch { ours, theirs } if ours == WIRE_VERSION && theirs == WIRE_VERSION + 7),
        "{err:?}"
    );
    drop(server.join().unwrap());
}

#[test]
fn bad_layout_and_fd_count_are_refused() {
    let mem = SharedMemory::create("refuse", 4096).unwrap();
    let cases: Vec<(Hello, usize, &str)> = vec![
        (
            hello(ChannelLayout {
                command_ring: 5000,
                ..small_layout()
            }),
            1,
            "command ring",
        ),
        (
            hello(ChannelLayout {
                reply_slots: 0,
                ..small_layout()
            }),
            1,
            "reply slots",
        ),
        (
            hello(ChannelLayout {
                command_ring: 64 << 20,
                reply_ring: 64 << 20,
                reply_slots: 256,
            }),
            1,
            "256 MiB",
        ),
        (hello(small_layout()), 0, "exactly one"),
        (hello(small_layout()), 2, "exactly one"),
    ];
    for (h, nfds, expect) in cases {
        let (client_sock, server_sock) = control::socketpair().unwrap();
        let fds = vec![mem.fd(); nfds];
        control::send(client_sock.as_fd(), &ControlMsg::Hello(h), &fds).unwrap();
        let err = control::server_accept(server_sock.as_fd(), TIMEOUT).unwrap_err();
        assert!(
            matches!(&err, ControlError::Incompatible(r) if r.contains(expect)),
            "{err:?}"
        );
        match control::recv(client_sock.as_fd(), TIMEOUT).unwrap() {
            (ControlMsg::Refused { reason }, fds) => {
                assert!(reason.contains(expect), "{reason}");
                assert!(fds.is_empty());
            }
            other => panic!("expected Refused, got {other:?}"),
        }
    }
}

#[test]
fn layout_validation_bounds() {
    assert!(ChannelLayout::default().validate().is_ok());
    let d = ChannelLayout::default();
    for bad in [
        ChannelLayout {
            command_ring: 0,
            ..d
        },
        ChannelLayout {
            command_ring: 2048,
            ..d
        },
        ChannelLayout {
            command_ring: 128 << 20,
            ..d
        },
        ChannelLayout {
            reply_ring: 3 << 12,
            ..d
        },
        ChannelLayout {
            reply_ring: u32::MAX,
            ..d
        },
        ChannelLayout {
            reply_slots: 257,
            ..d
        },
        ChannelLayout {
            reply_slots: u32::MAX,
            ..d
        },
        ChannelLayout {
            command_ring: 64 << 20,
            reply_ring: 16 << 20,
            reply_slots: 12,
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?} accepted");
        assert!(Channel::create(bad).is_err());
    }
}

#[test]
fn attach_rejects_memfd_smaller_than_layout() {
    let small = Channel::create(small_layout()).unwrap();
    let bigger = ChannelLayout {
        reply_slots: 8,
        ..small_layout()
    };
    let fd = small.fd().try_clone_to_owned().unwrap();
    assert!(Channel::attach(fd, bigger).is_err());
}

#[test]
fn garbage_datagrams_are_malformed() {
    let (a, b) = control::socketpair().unwrap();
    let encoded = postcard::to_stdvec(&ControlMsg::Hello(hello(small_layout()))).unwrap();

    // Every strict prefix of a valid message.
    for cut in 1..encoded.len() {
        send_raw(a.as_fd(), &encoded[..cut]);
        let err = control::recv(b.as_fd(), TIMEOUT).unwrap_err();
        assert!(
            matches!(err, ControlError::Malformed(_)),
            "prefix {cut}: {err:?}"
        );
    }
    // Trailing junk, unknown variant, absurd length prefix, empty datagram.
    let mut trailing = encoded.clone();
    trailing.push(0);
    let huge_string = [2u8, 0xff, 0xff, 0xff, 0xff, 0x0f, b'x'];
    for bad in [&trailing[..], &[9u8][..], &huge_string[..], &[][..]] {
        send_raw(a.as_fd(), bad);
        let err = control::recv(b.as_fd(), TIMEOUT).unwrap_err();
        assert!(
            matches!(err, ControlError::Malformed(_)),
            "{bad:?}: {err:?}"
        );
    }
    // Random bytes: decoding may succeed by chance, but must never panic
    // or fail in any other way.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize + 1;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8)
            .collect();
        send_raw(a.as_fd(), &bytes);
        match control::recv(b.as_fd(), TIMEOUT) {
            Ok(_) | Err(ControlError::Malformed(_)) => {}
            Err(e) => panic!("unexpected error for {bytes:?}: {e:?}"),
        }
    }
    // The socket is still usable afterwards.
    control::send(a.as_fd(), &ControlMsg::Welcome(welcome()), &[]).unwrap();
    let (msg, _) = control::recv(b.as_fd(), TIMEOUT).unwrap();
    assert_eq!(msg, ControlMsg::Welcome(welcome()));
}

#[test]
fn oversize_messages_are_rejected() {
    let (a, b) = control::socketpair().unwrap();
    let mut h = hello(small_layout());
    h.extensions.push(ExtensionInfo {
        name: "x".repeat(MAX_CONTROL_MSG),
        spec_version: 1,
    });
    let err = control::send(a.as_fd(), &ControlMsg::Hello(h), &[]).unwrap_err();
    assert!(
        matches!(err, ControlError::TooLarge(n) if n > MAX_CONTROL_MSG),
        "{err:?}"
    );

    // A hostile peer bypassing `send`: the receiver's buffer is bounded.
    rustix::net::sockopt::set_socket_send_buffer_size(&a, 4 * MAX_CONTROL_MSG).unwrap();
    send_raw(a.as_fd(), &vec![0u8; MAX_CONTROL_MSG + 1]);
    let err = control::recv(b.as_fd(), TIMEOUT).unwrap_err();
    assert!(matches!(err, ControlError::Truncated), "{err:?}");

    // The next message is received normally.
    control::send(a.as_fd(), &ControlMsg::Welcome(welcome()), &[]).unwrap();
    assert_eq!(
        control::recv(b.as_fd(), TIMEOUT).unwrap().0,
        ControlMsg::Welcome(welcome())
    );
}

#[test]
fn too_many_fds_are_rejected() {
    let (a, b) = control::socketpair().unwrap();
    let mem = SharedMemory::create("fds", 4096).unwrap();
    let fds = vec![mem.fd(); MAX_FDS + 1];
    let msg = ControlMsg::Welcome(welcome());
    let err = control::send(a.as_fd(), &msg, &fds).unwrap_err();
    assert!(
        matches!(err, ControlError::TooManyFds(n) if n == MAX_FDS + 1),
        "{err:?}"
    );

    // Raw sendmsg with more fds than the receiver accepts: MSG_CTRUNC.
    let bytes = postcard::to_stdvec(&msg).unwrap();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS + 1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    assert!(cmsg.push(SendAncillaryMessage::ScmRights(&fds)));
    rustix::net::sendmsg(&a, &[IoSlice::new(&bytes)], &mut cmsg, SendFlags::empty()).unwrap();
    let err = control::recv(b.as_fd(), TIMEOUT).unwrap_err();
    assert!(matches!(err, ControlError::Truncated), "{err:?}");

    // Exactly MAX_FDS is fine.
    control::send(a.as_fd(), &msg, &fds[..MAX_FDS]).unwrap();
    let (_, got) = control::recv(b.as_fd(), TIMEOUT).unwrap();
    assert_eq!(got.len(), MAX_FDS);
}

#[test]
fn closed_peer_is_reported() {
    let (a, b) = control::socketpair().unwrap();
    // A message queued before close is still delivered, then Closed.
    control::send(b.as_fd(), &ControlMsg::Welcome(welcome()), &[]).unwrap();
    drop(b);
    assert!(control::recv(a.as_fd(), TIMEOUT).is_ok());
    let err = control::recv(a.as_fd(), TIMEOUT).unwrap_err();
    assert!(matches!(err, ControlError::Closed), "{err:?}");
    let err = control::recv(a.as_fd(), None).unwrap_err();
    assert!(matches!(err, ControlError::Closed), "{err:?}");
    let err = control::send(a.as_fd(), &ControlMsg::Welcome(welcome()), &[]).unwrap_err();
    assert!(matches!(err, ControlError::Closed), "{err:?}");

    // Handshake against a server that dies without answering.
    let (client_sock, server_sock) = control::socketpair().unwrap();
    let server = thread::spawn(move || {
        let _ = control::recv(server_sock.as_fd(), TIMEOUT);
        drop(server_sock);
    });
    let channel = Channel::create(small_layout()).unwrap();
    let err = control::client_handshake(
        client_sock.as_fd(),
        hello(small_layout()),
        channel.fd(),
        TIMEOUT,
    )
    .unwrap_err();
    assert!(matches!(err, ControlError::Closed), "{err:?}");
    server.join().unwrap();
}

#[test]
fn recv_times_out_on_silence() {
    let (a, _b) = control::socketpair().unwrap();
    let start = Instant::now();
    let err = control::recv(a.as_fd(), Some(Duration::from_millis(50))).unwrap_err();
    assert!(matches!(err, ControlError::Timeout), "{err:?}");
    assert!(start.elapsed() >= Duration::from_millis(50));
    let err = control::server_accept(a.as_fd(), Some(Duration::ZERO)).unwrap_err();
    assert!(matches!(err, ControlError::Timeout), "{err:?}");
}

#[test]
fn socket_liveness_tracks_peer() {
    let (a, b) = control::socketpair().unwrap();
    let live = SocketLiveness(a.as_fd());
    assert!(live.check().is_ok());
    // Pending data is not death.
    control::send(b.as_fd(), &ControlMsg::Welcome(welcome()), &[]).unwrap();
    assert!(live.check().is_ok());
    drop(b);
    assert!(matches!(live.check(), Err(RingError::PeerGone)));
    assert!(AlwaysAlive.check().is_ok());
}
