//! Control channel: postcard messages over a `SOCK_SEQPACKET` Unix socket,
//! with file descriptors passed as `SCM_RIGHTS`.
//!
//! The socket also serves as the liveness signal for the shared-memory rings:
//! when either process dies its end closes and the other sees `POLLHUP`.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::{Deserialize, Serialize};

use crate::channel::ChannelLayout;
use crate::ring::{Liveness, RingError};

/// Version of the wire protocol; both sides must match exactly.
pub const WIRE_VERSION: u32 = 5;
/// Largest encoded control message accepted or sent.
pub const MAX_CONTROL_MSG: usize = 256 * 1024;
/// Most file descriptors accepted or sent with one message.
pub const MAX_FDS: usize = 16;

/// An instance or device extension and its spec version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExtensionInfo {
    pub name: String,
    pub spec_version: u32,
}

/// First message, client → server, sent with the channel memfd.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    pub wire_version: u32,
    pub vk_xml_version: u32,
    pub layout: ChannelLayout,
    pub extensions: Vec<ExtensionInfo>,
    pub client_pid: u32,
}

impl ExtensionInfo {
    /// Every extension this build of Airlock encodes, at the pinned vk.xml's spec versions.
    pub fn all() -> Vec<ExtensionInfo> {
        crate::generated::commands::EXTENSIONS
            .iter()
            .map(|e| ExtensionInfo {
                name: e.name.into(),
                spec_version: e.spec_version,
            })
            .collect()
    }
}

impl Hello {
    /// This process's hello: this build's wire and vk.xml versions and every extension it
    /// encodes.
    pub fn new(layout: ChannelLayout) -> Hello {
        Hello {
            wire_version: WIRE_VERSION,
            vk_xml_version: crate::generated::VK_XML_VERSION,
            layout,
            extensions: ExtensionInfo::all(),
            client_pid: std::process::id(),
        }
    }
}

/// Server → client acceptance of a [`Hello`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Welcome {
    pub wire_version: u32,
    pub vk_xml_version: u32,
    pub host_driver: String,
    pub extensions: Vec<ExtensionInfo>,
    pub server_pid: u32,
}

/// Everything that travels over the control socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ControlMsg {
    Hello(Hello),
    Welcome(Welcome),
    Refused {
        reason: String,
    },
    /// Server → client: the memfd behind device memory `memory` (one descriptor attached),
    /// `size` bytes long, sent in answer to [`crate::private::MAP_MEMORY`].
    MemoryFd {
        memory: u64,
        size: u64,
    },
    /// Client → server: a memfd the application imports as an opaque fd (one descriptor
    /// attached), sent just before [`crate::private::IMPORT_MEMORY`].
    ImportMemory,
    /// Server → client: the feedback region's memfd (one descriptor attached), sent in answer
    /// to [`crate::private::FEEDBACK`].
    Feedback,
}

/// Control-channel errors.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The peer closed its end of the socket.
    #[error("control socket closed by peer")]
    Closed,
    /// No message arrived within the timeout.
    #[error("timed out waiting for a control message")]
    Timeout,
    /// The message or its descriptors did not fit our bounded buffers.
    #[error("control message truncated (larger than {MAX_CONTROL_MSG} bytes or more than {MAX_FDS} fds)")]
    Truncated,
    /// The message could not be decoded or violates the protocol.
    #[error("malformed control message: {0}")]
    Malformed(String),
    /// Refusing to send a message larger than [`MAX_CONTROL_MSG`].
    #[error("control message of {0} bytes exceeds the {MAX_CONTROL_MSG}-byte limit")]
    TooLarge(usize),
    /// Refusing to send more than [`MAX_FDS`] descriptors.
    #[error("{0} file descriptors exceed the limit of {MAX_FDS}")]
    TooManyFds(usize),
    /// The server refused our `Hello`.
    #[error("refused by server: {0}")]
    Refused(String),
    /// We refused the peer's `Hello` (and told it why).
    #[error("incompatible client: {0}")]
    Incompatible(String),
    /// The server speaks a different wire version.
    #[error("wire version mismatch: we speak {ours}, peer speaks {theirs}")]
    VersionMismatch { ours: u32, theirs: u32 },
    /// Any other socket error.
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
}

/// Connects to a listening server socket at `path` (see [`listen`]).
pub fn connect(path: &std::path::Path) -> io::Result<OwnedFd> {
    let sock = net::socket_with(
        net::AddressFamily::UNIX,
        net::SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    net::connect(&sock, &net::SocketAddrUnix::new(path)?)?;
    Ok(sock)
}

/// A `SOCK_SEQPACKET` socket listening at `path` (an existing socket file there is replaced).
pub fn listen(path: &std::path::Path) -> io::Result<OwnedFd> {
    let sock = net::socket_with(
        net::AddressFamily::UNIX,
        net::SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let _ = std::fs::remove_file(path);
    net::bind(&sock, &net::SocketAddrUnix::new(path)?)?;
    net::listen(&sock, 64)?;
    Ok(sock)
}

/// The next connection on a [`listen`] socket.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    loop {
        match net::accept_with(listener, SocketFlags::CLOEXEC) {
            Err(Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// Starts `program --fd 3` with `sock` as its descriptor 3: how a server process receives its
/// client's connection, whether the ICD or a listening launcher starts it.
pub fn spawn_server(
    program: &std::path::Path,
    sock: BorrowedFd<'_>,
) -> io::Result<std::process::Child> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = sock.as_raw_fd();
    let mut cmd = std::process::Command::new(program);
    cmd.arg("--fd")
        .arg("3")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) run.
    unsafe {
        cmd.pre_exec(move || {
            let r = if fd == 3 {
                // Already in place: only let it survive exec.
                rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(3), rustix::io::FdFlags::empty())
            } else {
                // dup2 leaves the copy without close-on-exec; 3 must stay open here.
                let mut three = std::mem::ManuallyDrop::new(OwnedFd::from_raw_fd(3));
                rustix::io::dup2(BorrowedFd::borrow_raw(fd), &mut three)
            };
            r.map_err(io::Error::from)
        });
    }
    cmd.spawn()
}

/// Creates a connected `SOCK_SEQPACKET` pair (close-on-exec).
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Sends one message with `fds` attached as `SCM_RIGHTS`.
pub fn send(
    sock: BorrowedFd<'_>,
    msg: &ControlMsg,
    fds: &[BorrowedFd<'_>],
) -> Result<(), ControlError> {
    let bytes = postcard::to_stdvec(msg)
        .map_err(|e| ControlError::Malformed(format!("encoding failed: {e}")))?;
    if bytes.len() > MAX_CONTROL_MSG {
        return Err(ControlError::TooLarge(bytes.len()));
    }
    if fds.len() > MAX_FDS {
        return Err(ControlError::TooManyFds(fds.len()));
    }
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(ControlError::TooManyFds(fds.len()));
    }
    let iov = [IoSlice::new(&bytes)];
    loop {
        // NOSIGNAL: a dead peer must be an error, not SIGPIPE.
        match net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN) => {
                return Err(ControlError::Closed)
            }
            Err(e) => return Err(ControlError::Io(e.into())),
        }
    }
}

/// Receives one message and the descriptors sent with it.
///
/// `timeout: None` waits forever. Oversized messages and descriptor lists are
/// rejected as [`ControlError::Truncated`]; any descriptors that did arrive
/// with a rejected message are closed.
pub fn recv(
    sock: BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> Result<(ControlMsg, Vec<OwnedFd>), ControlError> {
    // A timeout too large for `Instant` behaves like no timeout.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut buf = vec![0u8; MAX_CONTROL_MSG];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    loop {
        wait_readable(sock, deadline)?;
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf)];
        // DONTWAIT: poll may report readiness spuriously; CMSG_CLOEXEC so
        // received fds never leak into exec'd children.
        let flags = RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC;
        let received = match net::recvmsg(sock, &mut iov, &mut control, flags) {
            Ok(r) => r,
            Err(Errno::INTR | Errno::AGAIN) => continue,
            Err(Errno::CONNRESET) => return Err(ControlError::Closed),
            Err(e) => return Err(ControlError::Io(e.into())),
        };
        // Take ownership of every fd first so each one is closed on any
        // early return below.
        let mut fds = Vec::new();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = msg {
                fds.extend(rights);
            }
        }
        // The control buffer carries alignment slack, so more than MAX_FDS
        // can fit without MSG_CTRUNC: enforce the limit ourselves.
        if received
            .flags
            .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
            || fds.len() > MAX_FDS
        {
            return Err(ControlError::Truncated);
        }
        if received.bytes == 0 {
            // SEQPACKET reports EOF as a zero-length read; a zero-length
            // datagram from a live peer is a protocol violation.
            return Err(if peer_hung_up(sock) {
                ControlError::Closed
            } else {
                ControlError::Malformed("empty message".into())
            });
        }
        let data = buf.get(..received.bytes).ok_or(ControlError::Truncated)?;
        return Ok((decode(data)?, fds));
    }
}

fn decode(bytes: &[u8]) -> Result<ControlMsg, ControlError> {
    let (msg, rest) = postcard::take_from_bytes::<ControlMsg>(bytes)
        .map_err(|e| ControlError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ControlError::Malformed(format!(
            "{} trailing bytes after message",
            rest.len()
        )));
    }
    Ok(msg)
}

/// Polls for input until `deadline` (`None`: forever).
fn wait_readable(sock: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<(), ControlError> {
    loop {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ts = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        let mut fds = [PollFd::new(&sock, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            // HUP/ERR also count as "readable": recvmsg then reports EOF.
            Ok(n) if n > 0 => return Ok(()),
            Ok(_) => return Err(ControlError::Timeout),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(ControlError::Io(e.into())),
        }
    }
}

/// Zero-timeout check whether the peer closed (or half-closed) its end.
fn peer_hung_up(sock: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(&sock, PollFlags::RDHUP)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(_) => fds[0]
            .revents()
            .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::RDHUP | PollFlags::NVAL),
        Err(_) => false,
    }
}

/// [`Liveness`] for blocking ring operations: the peer is gone once its end
/// of the control socket reports `POLLHUP`, `POLLERR` or `POLLRDHUP`.
#[derive(Debug, Clone, Copy)]
pub struct SocketLiveness<'a>(pub BorrowedFd<'a>);

impl Liveness for SocketLiveness<'_> {
    fn check(&self) -> Result<(), RingError> {
        if peer_hung_up(self.0) {
            Err(RingError::PeerGone)
        } else {
            Ok(())
        }
    }
}

/// Client side of the handshake: sends `hello` with the channel memfd and
/// waits for the server's answer.
pub fn client_handshake(
    sock: BorrowedFd<'_>,
    hello: Hello,
    channel_fd: BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> Result<Welcome, ControlError> {
    send(sock, &ControlMsg::Hello(hello), &[channel_fd])?;
    let (msg, fds) = recv(sock, timeout)?;
    if !fds.is_empty() {
        return Err(ControlError::Malformed(format!(
            "server sent {} unexpected file descriptors",
            fds.len()
        )));
    }
    match msg {
        ControlMsg::Welcome(w) if w.wire_version == WIRE_VERSION => Ok(w),
        ControlMsg::Welcome(w) => Err(ControlError::VersionMismatch {
            ours: WIRE_VERSION,
            theirs: w.wire_version,
        }),
        ControlMsg::Refused { reason } => Err(ControlError::Refused(reason)),
        other => Err(ControlError::Malformed(format!(
            "expected Welcome, got {other:?}"
        ))),
    }
}

/// Server side of the handshake: receives the client's `Hello` and its
/// channel memfd. Incompatible clients are sent `Refused` with the reason.
/// The caller answers a successful accept with a `Welcome`.
pub fn server_accept(
    sock: BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> Result<(Hello, OwnedFd), ControlError> {
    let (msg, mut fds) = recv(sock, timeout)?;
    let hello = match msg {
        ControlMsg::Hello(h) => h,
        _ => return Err(refuse(sock, "expected Hello as the first message".into())),
    };
    if hello.wire_version != WIRE_VERSION {
        return Err(refuse(
            sock,
            format!(
                "wire version mismatch: client speaks {}, server speaks {WIRE_VERSION}",
                hello.wire_version
            ),
        ));
    }
    if let Err(e) = hello.layout.validate() {
        return Err(refuse(sock, e.to_string()));
    }
    if fds.len() != 1 {
        return Err(refuse(
            sock,
            format!(
                "expected exactly one file descriptor with Hello, got {}",
                fds.len()
            ),
        ));
    }
    match fds.pop() {
        Some(fd) => Ok((hello, fd)),
        None => Err(refuse(sock, "missing channel file descriptor".into())),
    }
}

/// Best-effort `Refused` to the peer; returns the local error to report.
fn refuse(sock: BorrowedFd<'_>, reason: String) -> ControlError {
    tracing::info!(%reason, "refusing client");
    if let Err(e) = send(
        sock,
        &ControlMsg::Refused {
            reason: reason.clone(),
        },
        &[],
    ) {
        tracing::debug!(error = %e, "could not deliver Refused");
    }
    ControlError::Incompatible(reason)
}
