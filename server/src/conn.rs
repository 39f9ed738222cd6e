//! One client connection: handshake, the reader loop, worker threads, replies, cleanup.
//!
//! The reader thread copies each request out of the ring and executes it. Commands marked
//! blocking (waits, pipeline compiles) go to worker threads, so a thread of the client that
//! waits never stalls the calls of its other threads; everything else runs in ring order.

use crate::dispatch::{ExecError, Server};
use crate::host::HostDriver;
use ash::vk;
use bumpalo::Bump;
use parking_lot::Mutex;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, error, info, warn};
use wire::channel::Channel;
use wire::codec::Encoder;
use wire::control::{self, ControlMsg, ExtensionInfo, SocketLiveness, Welcome, WIRE_VERSION};
use wire::frame::{self, RequestHeader, Status, REQUEST_HEADER};
use wire::generated::commands::COMMANDS;
use wire::generated::VK_XML_VERSION;
use wire::private;
use wire::ring::RingError;

/// Most threads running blocking commands at once.
const MAX_WORKERS: usize = 64;
/// Most memory one request may make the server allocate while decoding and calling.
const ARENA_LIMIT: usize = 256 << 20;
/// How long an import waits for the memfd the client sends ahead of its request.
const IMPORT_WAIT: Duration = Duration::from_secs(1);

fn arena() -> Bump {
    let a = Bump::new();
    a.set_allocation_limit(Some(ARENA_LIMIT));
    a
}

struct Shared {
    server: Server,
    channel: Channel,
    sock: OwnedFd,
    /// One writer per reply ring at a time, whichever thread finished the call.
    reply_locks: Vec<Mutex<()>>,
}

struct Job {
    header: RequestHeader,
    payload: Vec<u8>,
}

/// Serves the client on `sock` until it disconnects. Returns an error only for a failed
/// handshake or host driver; a client that misbehaves later is dropped with a log line.
pub fn serve(sock: OwnedFd) -> Result<(), String> {
    let (hello, fd) = control::server_accept(sock.as_fd(), Some(Duration::from_secs(10)))
        .map_err(|e| format!("handshake: {e}"))?;
    let refuse = |reason: String| {
        let _ = control::send(
            sock.as_fd(),
            &ControlMsg::Refused {
                reason: reason.clone(),
            },
            &[],
        );
        reason
    };
    let channel = Channel::attach(fd, hello.layout).map_err(|e| refuse(format!("channel: {e}")))?;
    let host = HostDriver::load_default().map_err(|e| refuse(e.to_string()))?;
    info!(library = %host.library.display(), client_pid = hello.client_pid, "host driver loaded");
    let server = Server::new(host, &hello.extensions);
    // Locked down before the client is welcomed: a strict sandbox that cannot be applied is a
    // refusal the client sees (VK_ERROR_INITIALIZATION_FAILED).
    crate::sandbox::after_init(&server.host, sock.as_fd()).map_err(|e| refuse(e.to_string()))?;
    let welcome = Welcome {
        wire_version: WIRE_VERSION,
        vk_xml_version: VK_XML_VERSION,
        host_driver: server.host.library.display().to_string(),
        extensions: crate::instance::extensions(&server)
            .iter()
            .map(|p| ExtensionInfo {
                name: p
                    .extension_name_as_c_str()
                    .map(|c| c.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                spec_version: p.spec_version,
            })
            .collect(),
        server_pid: std::process::id(),
    };
    control::send(sock.as_fd(), &ControlMsg::Welcome(welcome), &[])
        .map_err(|e| format!("sending welcome: {e}"))?;
    let reply_locks = (0..channel.replies.len()).map(|_| Mutex::new(())).collect();
    let shared = Arc::new(Shared {
        server,
        channel,
        sock,
        reply_locks,
    });
    run(&shared);
    cleanup(&shared.server);
    Ok(())
}

/// The threads that run blocking commands. A new one starts whenever a blocking command
/// arrives and none is idle, so waits can never hold up a compile (or another wait) that the
/// application needs to make progress.
struct Workers {
    tx: mpsc::Sender<Job>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    idle: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn new() -> Workers {
        let (tx, rx) = mpsc::channel::<Job>();
        Workers {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            idle: Arc::new(AtomicUsize::new(0)),
            threads: Vec::new(),
        }
    }

    fn run(&mut self, shared: &Arc<Shared>, job: Job) -> bool {
        if self.idle.load(Ordering::Acquire) == 0 && self.threads.len() < MAX_WORKERS {
            let (shared, rx, idle) = (
                Arc::clone(shared),
                Arc::clone(&self.rx),
                Arc::clone(&self.idle),
            );
            // Counted idle from the start, so the next job does not start yet another.
            idle.fetch_add(1, Ordering::AcqRel);
            let spawned = std::thread::Builder::new()
                .name(format!("airlock-worker-{}", self.threads.len()))
                .spawn(move || {
                    let mut arena = arena();
                    let mut out = Encoder::new();
                    loop {
                        let Some(job) = next_job(&rx.lock()) else {
                            break;
                        };
                        idle.fetch_sub(1, Ordering::AcqRel);
                        handle(&shared, job.header, &job.payload, &mut arena, &mut out);
                        idle.fetch_add(1, Ordering::AcqRel);
                    }
                });
            match spawned {
                Ok(t) => self.threads.push(t),
                Err(e) => {
                    self.idle.fetch_sub(1, Ordering::AcqRel);
                    warn!("cannot start a worker thread: {e}");
                }
            }
        }
        self.tx.send(job).is_ok()
    }

    fn join(self) {
        drop(self.tx);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// How long an idle worker looks for the next job before it sleeps: a wait often follows the
/// submission it waits for by a few microseconds, and waking a sleeping thread costs more.
/// Only the worker holding the queue's lock polls; the others sleep on the lock.
const WORKER_POLL: Duration = Duration::from_micros(30);

fn next_job(rx: &mpsc::Receiver<Job>) -> Option<Job> {
    let t = std::time::Instant::now();
    loop {
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if t.elapsed() < WORKER_POLL => std::hint::spin_loop(),
            Err(mpsc::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

fn run(shared: &Arc<Shared>) {
    let mut workers = Workers::new();
    let live = SocketLiveness(shared.sock.as_fd());
    let mut arena = arena();
    let mut out = Encoder::new();
    let mut payload = Vec::new();
    let mut served: u64 = 0;
    loop {
        let mut hb = [0u8; REQUEST_HEADER];
        match shared.channel.commands.read_exact(&mut hb, &live) {
            Ok(()) => {}
            Err(RingError::PeerGone) => {
                info!("client disconnected");
                break;
            }
            Err(e) => {
                error!("command ring: {e}; dropping the client");
                break;
            }
        }
        let header = match RequestHeader::from_bytes(&hb) {
            Ok(h) if (h.slot as usize) < shared.channel.replies.len() || !h.wants_reply() => h,
            Ok(h) => {
                error!(
                    slot = h.slot,
                    "request names a reply slot that does not exist; dropping the client"
                );
                break;
            }
            Err(e) => {
                error!("request header: {e}; dropping the client");
                break;
            }
        };
        payload.resize(header.size as usize, 0);
        if let Err(e) = shared.channel.commands.read_exact(&mut payload, &live) {
            warn!("command ring while reading a request body: {e}");
            break;
        }
        served += 1;
        let blocking = COMMANDS
            .get(header.command as usize)
            .is_some_and(|c| c.blocking);
        if blocking {
            let job = Job {
                header,
                payload: std::mem::take(&mut payload),
            };
            if !workers.run(shared, job) {
                break;
            }
        } else {
            handle(shared, header, &payload, &mut arena, &mut out);
        }
    }
    workers.join();
    info!(requests = served, "connection closed");
}

fn handle(
    shared: &Shared,
    header: RequestHeader,
    payload: &[u8],
    arena: &mut Bump,
    out: &mut Encoder,
) {
    out.clear();
    let status = match COMMANDS.get(header.command as usize) {
        None if header.command == private::RECORDED => {
            crate::command_buffer::replay(&shared.server, payload, arena, out);
            Status::Ok
        }
        None if header.command == private::MAP_MEMORY => map_memory(shared, payload, out),
        None if header.command == private::IMPORT_MEMORY => import_memory(shared, payload, out),
        None if header.command == private::FEEDBACK => {
            crate::queue::feedback_request(&shared.server, payload, out, |fd| {
                control::send(shared.sock.as_fd(), &ControlMsg::Feedback, &[fd])
            })
        }
        None if header.command == private::CREDIT => {
            match crate::device::credit_request(&shared.server, payload) {
                Ok(granted) => {
                    out.u64(granted);
                    Status::Ok
                }
                Err(e) => {
                    warn!("{e}");
                    out.bytes(e.as_bytes());
                    Status::BadRequest
                }
            }
        }
        None if header.command == private::WATCH => {
            if let Err(e) = crate::queue::watch_request(&shared.server, payload) {
                warn!("{e}");
            }
            Status::Ok
        }
        None => {
            warn!(command = header.command, "unknown command id");
            out.bytes(format!("unknown command id {}", header.command).as_bytes());
            Status::BadRequest
        }
        Some(cmd) => match shared
            .server
            .execute(cmd, payload, arena, out, !header.wants_reply())
        {
            Ok(()) => Status::Ok,
            Err(e @ (ExecError::Decode { .. } | ExecError::Refused(_))) => {
                warn!("rejected request: {e}");
                if !header.wants_reply() {
                    crate::queue::post_rejected(&shared.server, cmd, payload);
                }
                out.clear();
                out.bytes(e.to_string().as_bytes());
                Status::BadRequest
            }
            Err(e @ ExecError::Unsupported(_)) => {
                warn!("{e}");
                out.clear();
                Status::Unsupported
            }
        },
    };
    if arena.allocated_bytes() > 16 << 20 {
        // A large request grew the arena: give the memory back rather than keep it.
        *arena = self::arena();
    } else {
        arena.reset();
    }
    if status != Status::Ok {
        debug!(command = header.command, ?status, "request failed");
    }
    if header.wants_reply() {
        let slot = header.slot as usize;
        let _g = shared.reply_locks[slot].lock();
        let live = SocketLiveness(shared.sock.as_fd());
        let h = frame::reply_header(out.len() as u32, status);
        if let Err(e) = shared.channel.replies[slot].write(&[&h, &out.buf], &live) {
            warn!(slot, "writing a reply: {e}");
        }
    }
}

/// Hands the memfd behind a client memory object to the client (`private::MAP_MEMORY`).
fn map_memory(shared: &Shared, payload: &[u8], out: &mut Encoder) -> Status {
    crate::memory::map_request(&shared.server, payload, out, |fd, msg| {
        control::send(shared.sock.as_fd(), msg, &[fd])
    })
}

/// Takes the memfd the client sent for its next opaque-fd import (`private::IMPORT_MEMORY`).
fn import_memory(shared: &Shared, payload: &[u8], out: &mut Encoder) -> Status {
    crate::memory::import_request(&shared.server, payload, out, || {
        import_fd(shared.sock.as_fd(), IMPORT_WAIT)
    })
}

/// The one descriptor of the `ImportMemory` message the client sends ahead of its
/// `IMPORT_MEMORY` request: it is waiting in the socket already, so a short wait is enough and
/// a client that sent none (or something else) gets an error, not a hung reader thread.
fn import_fd(sock: BorrowedFd<'_>, wait: Duration) -> Result<OwnedFd, String> {
    let (msg, mut fds) = control::recv(sock, Some(wait)).map_err(|e| e.to_string())?;
    match (msg, fds.len()) {
        (ControlMsg::ImportMemory, 1) => Ok(fds.remove(0)),
        (msg, n) => Err(format!(
            "expected a memfd to import, got {msg:?} with {n} fds"
        )),
    }
}

/// Destroys what the client left behind: devices first, then instances.
fn cleanup(server: &Server) {
    let all = server.objects.all();
    let mut freed = 0;
    for (_, e) in all.iter().filter(|(_, e)| e.ty == vk::ObjectType::DEVICE) {
        freed += 1 + crate::device::destroy(server, e.host);
    }
    for (_, e) in all.iter().filter(|(_, e)| e.ty == vk::ObjectType::INSTANCE) {
        crate::instance::destroy(server, e.host);
        freed += 1;
    }
    info!(objects = freed, "cleaned up after the client");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn pair() -> (OwnedFd, OwnedFd) {
        control::socketpair().unwrap()
    }

    #[test]
    fn an_import_takes_the_descriptor_sent_ahead() {
        let (client, server) = pair();
        let memfd = rustix::fs::memfd_create("import", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        control::send(client.as_fd(), &ControlMsg::ImportMemory, &[memfd.as_fd()]).unwrap();
        let got = import_fd(server.as_fd(), IMPORT_WAIT).unwrap();
        let (a, b) = (
            rustix::fs::fstat(&memfd).unwrap(),
            rustix::fs::fstat(&got).unwrap(),
        );
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
    }

    #[test]
    fn an_import_without_a_descriptor_fails_after_the_wait() {
        let (_client, server) = pair();
        let t = Instant::now();
        let e = import_fd(server.as_fd(), Duration::from_millis(50)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(!e.is_empty());
    }

    #[test]
    fn an_import_refuses_other_messages_and_descriptor_counts() {
        let (client, server) = pair();
        let memfd = rustix::fs::memfd_create("import", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        control::send(client.as_fd(), &ControlMsg::ImportMemory, &[]).unwrap();
        let e = import_fd(server.as_fd(), IMPORT_WAIT).unwrap_err();
        assert!(e.contains("with 0 fds"), "{e}");
        control::send(
            client.as_fd(),
            &ControlMsg::ImportMemory,
            &[memfd.as_fd(), memfd.as_fd()],
        )
        .unwrap();
        let e = import_fd(server.as_fd(), IMPORT_WAIT).unwrap_err();
        assert!(e.contains("with 2 fds"), "{e}");
        let other = ControlMsg::Refused { reason: "x".into() };
        control::send(client.as_fd(), &other, &[memfd.as_fd()]).unwrap();
        let e = import_fd(server.as_fd(), IMPORT_WAIT).unwrap_err();
        assert!(e.contains("Refused"), "{e}");
        drop(client);
        assert!(import_fd(server.as_fd(), IMPORT_WAIT).is_err());
    }
}
