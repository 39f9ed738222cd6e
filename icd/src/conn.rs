//! The connection to `airlock-server`, transport only: starting the server, the handshake,
//! writing requests into the command ring, waiting for replies, descriptors over the socket.
//! What a call means is the generic path's (`call.rs`) and its family's.
//!
//! One server per client process, started on first need. Requests from all threads go into the
//! one command ring under a short lock; each waiting thread owns a reply slot, so threads wait
//! independently. A server that dies marks the connection lost: waits notice through the
//! socket's hang-up, within the ring's liveness interval, and every later call fails at once.

use crate::log::log;
use ash::vk;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use wire::channel::{Channel, ChannelLayout};
use wire::codec::DecodeError;
use wire::control::{self, Hello, SocketLiveness, Welcome};
use wire::desc::CommandDesc;
use wire::frame::{self, RequestHeader, Status, FLAG_REPLY, REPLY_HEADER};
use wire::ring::RingError;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A descriptor the server announced arrives with its reply or not at all; this only bounds a
/// broken server.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Connection {
    sock: OwnedFd,
    channel: Channel,
    send: Mutex<()>,
    free_slots: Mutex<Vec<u32>>,
    slot_freed: Condvar,
    lost: AtomicBool,
    child: Mutex<Option<Child>>,
    pub welcome: Welcome,
    /// Held across a request and the descriptor that goes with it (a memory's memfd either
    /// way), which the two sides pair by their order on the socket.
    handover: Mutex<()>,
}

/// Why the connection could not carry a request; it is lost then.
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("sending: {0}")]
    Send(RingError),
    #[error("waiting for the reply: {0}")]
    Reply(RingError),
    #[error("waiting for the reply: {0}")]
    BadReply(DecodeError),
}

/// Why the server could not be started or reached.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("connecting to {path}: {err}")]
    Connect { path: PathBuf, err: std::io::Error },
    #[error("socketpair: {0}")]
    Socketpair(std::io::Error),
    #[error("{path}: {err}")]
    Spawn { path: PathBuf, err: std::io::Error },
    #[error("shared memory: {0}")]
    SharedMemory(String),
    #[error("handshake with {path}: {err}")]
    Handshake { path: PathBuf, err: String },
    #[error("cannot find where libvulkan_airlock.so is loaded from; set AIRLOCK_SERVER")]
    NoLibraryPath,
    #[error(
        "this process set PR_SET_MDWE, which a server started from it would inherit (the host \
         driver's JIT needs executable memory), and no server listens on $XDG_RUNTIME_DIR/\
         airlock.sock: enable the per-user socket that `make install` installs (`systemctl \
         --user enable --now airlock.socket`), or start `airlock-server --listen <socket>` \
         outside this process and set AIRLOCK_SOCKET=<socket>"
    )]
    InheritedMdwe,
}

static CURRENT: Mutex<Option<Arc<Connection>>> = Mutex::new(None);

/// The process's connection, started if there is none or the last one was lost.
/// How a request goes to the server.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Send {
    /// And the caller waits for the reply.
    Reply,
    /// Posted: nobody waits; the server is woken for it.
    Post,
    /// Posted without waking the server: for requests whose effect only later requests
    /// observe (a fence reset before the submission that uses it), which wake it.
    Quiet,
}

impl From<bool> for Send {
    fn from(wants: bool) -> Send {
        if wants {
            Send::Reply
        } else {
            Send::Post
        }
    }
}

pub fn current() -> Result<Arc<Connection>, vk::Result> {
    let mut cur = CURRENT.lock();
    if let Some(c) = cur.as_ref() {
        if !c.is_lost() {
            return Ok(Arc::clone(c));
        }
    }
    match Connection::start() {
        Ok(c) => {
            let c = Arc::new(c);
            *cur = Some(Arc::clone(&c));
            Ok(c)
        }
        Err(why) => {
            log!(error, "airlock: cannot start the server: {why}");
            Err(vk::Result::ERROR_INITIALIZATION_FAILED)
        }
    }
}

/// `AIRLOCK_ABORT_ON_LOSS=1`: a lost server ends the application (SIGABRT) instead of leaving it
/// a lost device.
fn abort_on_loss() -> bool {
    std::env::var("AIRLOCK_ABORT_ON_LOSS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A server started from here inherits this process's `PR_SET_MDWE` (unless it was set with
/// `PR_MDWE_NO_INHERIT`), and the host driver's JIT cannot work under it. Such a process needs a
/// server started elsewhere: `airlock-server --listen`, named by `AIRLOCK_SOCKET`.
fn refuse_inherited_mdwe() -> Result<(), StartError> {
    const PR_GET_MDWE: i32 = 66;
    const REFUSE_EXEC_GAIN: i32 = 1;
    const NO_INHERIT: i32 = 2;
    // SAFETY: prctl with integer arguments only.
    let flags = unsafe { libc::prctl(PR_GET_MDWE, 0u64, 0u64, 0u64, 0u64) };
    if flags > 0 && flags & REFUSE_EXEC_GAIN != 0 && flags & NO_INHERIT == 0 {
        return Err(StartError::InheritedMdwe);
    }
    Ok(())
}

/// `$XDG_RUNTIME_DIR/airlock.sock`, where the per-user socket unit listens (`make install`), if
/// a socket is there, and the connection to it.
fn user_socket() -> Option<(PathBuf, std::io::Result<OwnedFd>)> {
    use std::os::unix::fs::FileTypeExt;
    let dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
    let path = PathBuf::from(dir).join("airlock.sock");
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.file_type().is_socket() {
        return None;
    }
    let sock = control::connect(&path);
    Some((path, sock))
}

/// Where the server binary is: `AIRLOCK_SERVER`, else next to this library.
fn server_path() -> Result<PathBuf, StartError> {
    if let Some(p) = std::env::var_os("AIRLOCK_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address of a function of this library.
    let ok = unsafe { libc::dladdr(server_path as *const libc::c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return Err(StartError::NoLibraryPath);
    }
    let lib = PathBuf::from(
        unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }
            .to_string_lossy()
            .into_owned(),
    );
    Ok(lib
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("airlock-server"))
}

impl Connection {
    fn start() -> Result<Connection, StartError> {
        let explicit = std::env::var_os("AIRLOCK_SOCKET").map(PathBuf::from);
        // The per-user socket of the systemd units `make install` installs (one server per
        // connection, started outside this process), when AIRLOCK_SOCKET names none. A socket
        // nobody listens on any more (the unit stopped) is passed over.
        let user = match &explicit {
            None => user_socket(),
            Some(_) => None,
        };
        let (ours, child, path) = match (explicit, user) {
            // A server launcher outside this process tree (`airlock-server --listen`).
            (Some(path), _) => {
                let sock = control::connect(&path).map_err(|err| StartError::Connect {
                    path: path.clone(),
                    err,
                })?;
                (sock, None, path)
            }
            (None, Some((path, Ok(sock)))) => (sock, None, path),
            (None, user) => {
                if let Some((path, Err(e))) = user {
                    log!(debug, "airlock: {}: {e}; starting a server", path.display());
                }
                let path = server_path()?;
                refuse_inherited_mdwe()?;
                let (ours, theirs) = control::socketpair().map_err(StartError::Socketpair)?;
                let child = control::spawn_server(&path, theirs.as_fd()).map_err(|err| {
                    StartError::Spawn {
                        path: path.clone(),
                        err,
                    }
                })?;
                (ours, Some(child), path)
            }
        };
        let layout = ChannelLayout::default();
        let channel =
            Channel::create(layout).map_err(|e| StartError::SharedMemory(e.to_string()))?;
        let hello = Hello::new(layout);
        let welcome =
            control::client_handshake(ours.as_fd(), hello, channel.fd(), Some(HANDSHAKE_TIMEOUT))
                .map_err(|e| StartError::Handshake {
                path: path.clone(),
                err: e.to_string(),
            })?;
        log!(info, server_pid = welcome.server_pid, host = %welcome.host_driver, "airlock: connected");
        Ok(Connection {
            sock: ours,
            free_slots: Mutex::new((0..layout.reply_slots).rev().collect()),
            slot_freed: Condvar::new(),
            channel,
            send: Mutex::new(()),
            lost: AtomicBool::new(false),
            child: Mutex::new(child),
            welcome,
            handover: Mutex::new(()),
        })
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Whether the server is still there; a hung-up socket loses the connection. For waits
    /// that sleep outside the rings (the feedback region).
    pub fn alive(&self) -> bool {
        use wire::ring::Liveness;
        if SocketLiveness(self.sock.as_fd()).check().is_err() {
            self.lose("the server hung up");
            return false;
        }
        true
    }

    /// Marks the connection lost, once, with a log line saying why.
    pub fn lose(&self, why: &str) {
        if !self.lost.swap(true, Ordering::AcqRel) {
            log!(
                error,
                "airlock: lost the server: {why}; every later call fails as on a lost device \
                 (VK_ERROR_DEVICE_LOST where Vulkan allows it)"
            );
            if let Some(mut c) = self.child.lock().take() {
                let _ = c.try_wait();
            }
            if abort_on_loss() {
                // For test runners (the CTS): a driver that crashes natively takes its process
                // with it, and the runner goes on with the next case in a fresh one.
                log!(
                    error,
                    "airlock: AIRLOCK_ABORT_ON_LOSS is set: aborting the process"
                );
                std::process::abort();
            }
        }
    }

    fn acquire_slot(&self) -> u32 {
        let mut free = self.free_slots.lock();
        loop {
            if let Some(s) = free.pop() {
                return s;
            }
            self.slot_freed.wait(&mut free);
        }
    }

    fn release_slot(&self, s: u32) {
        self.free_slots.lock().push(s);
        self.slot_freed.notify_one();
    }

    /// The lock that pairs a request with the descriptor that goes with it.
    pub fn handover(&self) -> MutexGuard<'_, ()> {
        self.handover.lock()
    }

    /// Sends one request whose parameters are `parts` (concatenated) and, when `wants` a
    /// reply, waits for it into `body`. An error means the connection is unusable.
    pub fn exchange_parts(
        &self,
        command: u32,
        parts: &[&[u8]],
        wants: bool,
        body: &mut Vec<u8>,
    ) -> Result<Option<Status>, TransportError> {
        self.exchange(command, parts, Send::from(wants), body)
    }

    /// [`Connection::exchange_parts`], saying how the request goes.
    pub fn exchange(
        &self,
        command: u32,
        parts: &[&[u8]],
        how: Send,
        body: &mut Vec<u8>,
    ) -> Result<Option<Status>, TransportError> {
        let wants = how == Send::Reply;
        let slot = if wants { self.acquire_slot() } else { 0 };
        let size: usize = parts.iter().map(|p| p.len()).sum();
        let header = RequestHeader {
            size: size as u32,
            command,
            slot,
            flags: if wants { FLAG_REPLY } else { 0 },
        };
        let header = header.to_bytes();
        let mut all: [&[u8]; 4] = [&header, &[], &[], &[]];
        let n = parts.len().min(3);
        all[1..=n].copy_from_slice(&parts[..n]);
        let live = SocketLiveness(self.sock.as_fd());
        // `AIRLOCK_RECORD=<file>` appends every request frame, exactly as written to the ring,
        // to <file> (`%p` in it becomes the process id): the seeds of the fuzz targets and the
        // input of `airlock-replay`. The variable is read once; unset, this costs one load.
        static RECORD: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
        let record = RECORD.get_or_init(|| {
            let path = std::env::var("AIRLOCK_RECORD")
                .ok()
                .filter(|p| !p.is_empty())?;
            let path = path.replace("%p", &std::process::id().to_string());
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| log!(warn, "airlock: AIRLOCK_RECORD={path}: {e}"))
                .ok()
        });
        let sent = {
            let _g = self.send.lock();
            if let Some(mut file) = record.as_ref() {
                // Under the send lock, so the file holds the frames in ring order.
                use std::io::Write;
                if let Err(e) = all[..=n].iter().try_for_each(|p| file.write_all(p)) {
                    log!(warn, "airlock: AIRLOCK_RECORD: {e}");
                }
            }
            if how == Send::Quiet {
                self.channel.commands.write_quiet(&all[..=n], &live)
            } else {
                self.channel.commands.write(&all[..=n], &live)
            }
        };
        crate::stats::sent(frame::REQUEST_HEADER + size, wants);
        if let Err(e) = sent {
            if wants {
                self.release_slot(slot);
            }
            return Err(TransportError::Send(e));
        }
        if !wants {
            return Ok(None);
        }
        let reply = self.read_reply(slot, body);
        // A slot whose reply was not read whole cannot be reused; the connection is lost then.
        self.release_slot(slot);
        reply.map(Some)
    }

    /// Marks the connection lost after a failed exchange for `cmd`; what `cmd` returns then
    /// (see `call::after_loss`).
    pub fn fail(&self, cmd: &CommandDesc, why: &str) -> vk::Result {
        self.lose(&format!("{}: {why}", cmd.name));
        cmd.lost
    }

    /// Sends a control message with descriptors to the server.
    pub fn send_control(
        &self,
        msg: &control::ControlMsg,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<(), control::ControlError> {
        control::send(self.sock.as_fd(), msg, fds)
    }

    /// Waits for the next control message (a descriptor the server hands over).
    pub fn recv_control(
        &self,
    ) -> Result<(control::ControlMsg, Vec<OwnedFd>), control::ControlError> {
        control::recv(self.sock.as_fd(), Some(CONTROL_TIMEOUT))
    }

    fn read_reply(&self, slot: u32, body: &mut Vec<u8>) -> Result<Status, TransportError> {
        let ring = &self.channel.replies[slot as usize];
        let live = SocketLiveness(self.sock.as_fd());
        let mut h = [0u8; REPLY_HEADER];
        ring.read_exact(&mut h, &live)
            .map_err(TransportError::Reply)?;
        let (size, status) = frame::parse_reply_header(&h).map_err(TransportError::BadReply)?;
        body.resize(size, 0);
        ring.read_exact(body, &live)
            .map_err(TransportError::Reply)?;
        Ok(status)
    }
}
