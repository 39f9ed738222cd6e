//! Playing request frames against a server state without a client: what `airlock-replay`, the
//! `server_stream` fuzz target and the fuzz regression tests share.
//!
//! A stream is what `AIRLOCK_RECORD=<file>` writes in the ICD: request frames (16-byte header,
//! then the payload) exactly as they went into the command ring. [`Session::execute`] takes one
//! frame through the path of `conn.rs`'s `handle`: a generated command through
//! [`Server::execute`], a `RECORDED` batch through [`crate::recorded::replay`]. What differs, and
//! why:
//!
//! - Replies are encoded but dropped: there is no client to read them.
//! - `MAP_MEMORY` only checks the memory id: the real server answers it by sending a memfd over
//!   the control socket, and the pointer `vkMapMemory` returns exists only in the client.
//! - `IMPORT_MEMORY` takes a fresh memfd of [`IMPORTED_SIZE`] bytes in place of the one the
//!   client sent over the control socket.
//! - Everything runs on the calling thread, in stream order; the real server runs blocking
//!   commands on worker threads. A recorded stream in which one thread waits for another
//!   thread's later host-side signal would wait here (the workloads record none).
//! - Under [`Policy::Fuzz`], a few commands are skipped; see [`fuzz_skips`].

use crate::dispatch::{ExecError, Server};
use crate::host::{HostDriver, HostError};
use crate::objects::{ClientId, HostHandle};
use ash::vk::{self, Handle};
use bumpalo::Bump;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use wire::codec::Encoder;
use wire::control::ExtensionInfo;
use wire::desc::CommandDesc;
use wire::frame::{RequestHeader, REQUEST_HEADER};
use wire::generated::commands::{id, COMMANDS};
use wire::private;

/// Most memory one request may make the server allocate, as in `conn.rs`.
const ARENA_LIMIT: usize = 256 << 20;
/// The size of the memfd an `IMPORT_MEMORY` stands for (sparse: only touched pages cost).
pub const IMPORTED_SIZE: u64 = 256 << 20;

/// One request frame of a stream.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub header: RequestHeader,
    pub payload: &'a [u8],
}

/// The frames of a stream, in order. Ends at the end of the stream or at the first frame that
/// cannot be read (bad header, truncated payload); [`Frames::rest`] then says what is left.
pub struct Frames<'a> {
    rest: &'a [u8],
}

pub fn frames(stream: &[u8]) -> Frames<'_> {
    Frames { rest: stream }
}

impl<'a> Frames<'a> {
    /// The bytes not yet returned as frames (not empty after a truncated or bad frame).
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;
    fn next(&mut self) -> Option<Frame<'a>> {
        let head: &[u8; REQUEST_HEADER] = self.rest.first_chunk()?;
        let header = RequestHeader::from_bytes(head).ok()?;
        let end = REQUEST_HEADER.checked_add(header.size as usize)?;
        let payload = self.rest.get(REQUEST_HEADER..end)?;
        self.rest = &self.rest[end..];
        Some(Frame { header, payload })
    }
}

/// Which frames a [`Session`] executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Everything the real server would execute.
    Replay,
    /// Everything but [`fuzz_skips`], with the host driver behind the Khronos validation layer
    /// as `AIRLOCK_VALIDATE=1` puts it (`crate::validation`): lavapipe trusts Vulkan's valid
    /// usage and crashes on what breaks it (an image view outside its image, found by the
    /// fuzzer); the layer refuses those calls, so what the fuzzer finds is Airlock's.
    Fuzz,
}

/// Commands the fuzz target does not execute, and why. Not decoder limits: the server decodes
/// and checks them like any other command. They are the calls whose effect on arbitrary input
/// is, by Vulkan's contract, undefined or unbounded in the host driver:
///
/// - queue submission runs the recorded commands: the server checks every id, length and
///   enum, but not Vulkan's valid usage (copy regions inside their buffers, a pipeline bound
///   before a draw, ...), which lavapipe does not check either. A client that breaks valid usage
///   can crash its own server, which serves it alone inside its sandbox; the fuzzer would only
///   rediscover that on every run.
/// - waits with a client-chosen timeout, which may be forever by request (the real server
///   runs them on a worker thread; here they would stall the fuzzer).
///
/// And shader modules whose SPIR-V is not one of the seeds' ([`Session::known_shaders`]):
/// pipeline creation compiles it, and the host driver trusts it to be valid (the server does
/// not validate SPIR-V): one changed byte in a shader module makes lavapipe's compiler crash
/// (found by the fuzzer). Pipelines are created from the seeds' modules, everything around
/// them is mutated.
pub fn fuzz_skips(command: u32) -> Option<&'static str> {
    match command {
        id::vkQueueSubmit | id::vkQueueSubmit2 | id::vkQueueBindSparse => {
            Some("submission runs the recorded commands (valid usage is the client's)")
        }
        id::vkWaitForFences | id::vkWaitSemaphores => Some("waits as long as the client asks"),
        _ => None,
    }
}

/// What became of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Decoded and executed (the Vulkan result, if any, is in the dropped reply).
    Executed,
    /// Refused by the decoder or by a check of the server; the message the client would get.
    Rejected(String),
    /// The host driver lacks the command.
    Unsupported,
    /// Not executed here; why.
    Skipped(&'static str),
}

/// A server state of its own, as for one client connection.
pub struct Session<'k> {
    pub server: Server,
    policy: Policy,
    /// Under [`Policy::Fuzz`], the `vkCreateShaderModule` payloads executed; others are skipped.
    pub known_shaders: HashSet<Vec<u8>>,
    arena: Bump,
    out: Encoder,
    /// Host instances and devices shared with the sessions before and after this one.
    kept: Option<&'k mut Kept>,
    /// The requests that made this session's host instances and devices (kept under them).
    made: HashMap<u64, Made>,
}

/// What made a host instance or device: its request's bytes, and the physical device.
struct Made {
    request: Vec<u8>,
    physical: vk::PhysicalDevice,
}

fn load(policy: Policy) -> Result<HostDriver, HostError> {
    match policy {
        Policy::Replay => HostDriver::load_default(),
        Policy::Fuzz => HostDriver::load_validated(&crate::host::default_path()?),
    }
}

impl Session<'static> {
    /// Loads the host driver the real server would load (`AIRLOCK_HOST_ICD` or lavapipe) and
    /// starts an empty server state for a client carrying every extension Airlock encodes, as
    /// the ICD's handshake says.
    pub fn new(policy: Policy) -> Result<Session<'static>, HostError> {
        Ok(Session::with_host(Arc::new(load(policy)?), policy, None))
    }
}

impl<'k> Session<'k> {
    /// An empty server state on `kept`'s host driver, creating instances and devices from
    /// what `kept` holds where it can.
    pub fn kept(kept: &'k mut Kept) -> Session<'k> {
        let (host, policy) = (Arc::clone(&kept.host), kept.policy);
        Session::with_host(host, policy, Some(kept))
    }

    fn with_host(host: Arc<HostDriver>, policy: Policy, kept: Option<&'k mut Kept>) -> Self {
        let extensions = ExtensionInfo::all();
        let arena = Bump::new();
        arena.set_allocation_limit(Some(ARENA_LIMIT));
        Session {
            server: Server::new(host, &extensions),
            policy,
            known_shaders: HashSet::new(),
            arena,
            out: Encoder::new(),
            kept,
            made: HashMap::new(),
        }
    }

    /// Executes one frame, as the server's reader loop would.
    pub fn execute(&mut self, frame: Frame<'_>) -> Outcome {
        let Frame { header, payload } = frame;
        if self.policy == Policy::Fuzz {
            if let Some(why) = fuzz_skips(header.command) {
                return Outcome::Skipped(why);
            }
            if header.command == id::vkCreateShaderModule && !self.known_shaders.contains(payload) {
                return Outcome::Skipped("SPIR-V not from a seed (its validity is the client's)");
            }
        }
        self.out.clear();
        let posted = !header.wants_reply();
        let outcome = match COMMANDS.get(header.command as usize) {
            None if header.command == private::RECORDED => self.recorded(payload),
            None if header.command == private::MAP_MEMORY => self.map_memory(payload),
            None if header.command == private::IMPORT_MEMORY => self.import_memory(payload),
            // The region is made as for a client; its memfd goes nowhere.
            None if header.command == private::FEEDBACK => {
                let server = &self.server;
                let region = <[u8; 8]>::try_from(payload)
                    .map(|b| ClientId(u64::from_le_bytes(b)))
                    .map_err(|_| "expected one device id".to_string())
                    .and_then(|id| {
                        let e = server.objects.lookup(vk::ObjectType::DEVICE, id);
                        e.map_err(|e| e.to_string())
                    })
                    .and_then(|e| server.device_table(e.host).ok_or("no such device".into()))
                    .and_then(|t| server.feedback.region(&t));
                match region {
                    Ok(_) => Outcome::Executed,
                    Err(e) => Outcome::Rejected(format!("FEEDBACK: {e}")),
                }
            }
            None if header.command == private::WATCH => {
                match crate::queue::watch_request(&self.server, payload) {
                    Ok(()) => Outcome::Executed,
                    Err(e) => Outcome::Rejected(e),
                }
            }
            None if header.command == private::CREDIT => {
                match crate::device::credit_request(&self.server, payload) {
                    Ok(_) => Outcome::Executed,
                    Err(e) => Outcome::Rejected(e),
                }
            }
            None => Outcome::Rejected(format!("unknown command id {}", header.command)),
            Some(cmd) => self.kept_call(cmd, payload).unwrap_or_else(|| {
                outcome(
                    self.server
                        .execute(cmd, payload, &self.arena, &mut self.out, posted),
                )
            }),
        };
        if self.arena.allocated_bytes() > 16 << 20 {
            let arena = Bump::new();
            arena.set_allocation_limit(Some(ARENA_LIMIT));
            self.arena = arena;
        } else {
            self.arena.reset();
        }
        outcome
    }

    /// A `RECORDED` batch: rejected when the server marked its command buffer broken.
    fn recorded(&mut self, payload: &[u8]) -> Outcome {
        crate::command_buffer::replay(&self.server, payload, &mut self.arena, &mut self.out);
        let host = payload
            .first_chunk::<8>()
            .map(|b| ClientId(u64::from_le_bytes(*b)))
            .and_then(|id| {
                self.server
                    .objects
                    .lookup(vk::ObjectType::COMMAND_BUFFER, id)
                    .ok()
            })
            .map(|e| e.host);
        match host {
            Some(h) if self.server.command_buffers.first_broken(&[h.0]).is_none() => {
                Outcome::Executed
            }
            Some(_) => Outcome::Rejected("recorded batch: the command buffer is broken".into()),
            None => Outcome::Rejected("recorded batch: no such command buffer".into()),
        }
    }

    /// `MAP_MEMORY` up to where the real server sends the memfd to the client.
    fn map_memory(&self, payload: &[u8]) -> Outcome {
        let Ok(id) = <[u8; 8]>::try_from(payload).map(|b| ClientId(u64::from_le_bytes(b))) else {
            return Outcome::Rejected("MAP_MEMORY: expected one memory id".into());
        };
        match self
            .server
            .objects
            .lookup(vk::ObjectType::DEVICE_MEMORY, id)
        {
            Ok(_) => Outcome::Skipped("MAP_MEMORY hands a memfd to the client"),
            Err(e) => Outcome::Rejected(format!("MAP_MEMORY: {e}")),
        }
    }

    /// `IMPORT_MEMORY` with a memfd of the server's own making.
    fn import_memory(&self, payload: &[u8]) -> Outcome {
        if !payload.is_empty() {
            return Outcome::Rejected("IMPORT_MEMORY: expected no parameters".into());
        }
        let received = crate::memory::sealed_memfd(IMPORTED_SIZE)
            .map_err(|e| format!("memfd: {e}"))
            .and_then(|fd| self.server.memory.receive_import(fd));
        match received {
            Ok(()) => Outcome::Executed,
            Err(why) => Outcome::Rejected(format!("IMPORT_MEMORY: {why}")),
        }
    }
}

impl Session<'_> {
    /// With a [`Kept`]: a creation `kept` can serve from an object of an earlier session made
    /// from the same request bytes (on the same host physical device), and a destruction that
    /// hands the object to `kept` instead; `None` leaves the frame to the server. Other creations
    /// are noted, so that what they make can be kept later.
    fn kept_call(&mut self, cmd: &'static CommandDesc, payload: &[u8]) -> Option<Outcome> {
        let creates = matches!(cmd.id, id::vkCreateInstance | id::vkCreateDevice);
        let destroys = matches!(cmd.id, id::vkDestroyInstance | id::vkDestroyDevice);
        if self.kept.is_none() || !(creates || destroys) {
            return None;
        }
        // What the decoder refuses here, the server's own path refuses the same way.
        let (first, new) = {
            let call = self.server.decode(cmd, payload, &self.arena).ok()?;
            let new = call.new_handles.first().map(|n| (n.ty, ClientId(n.id)));
            (call.args[0], new)
        };
        if destroys {
            if first == 0 {
                // VK_NULL_HANDLE: nothing to keep; the server's own path does nothing.
                return None;
            }
            if cmd.id == id::vkDestroyDevice {
                self.keep_device(HostHandle(first));
            } else {
                self.keep_instance(HostHandle(first));
            }
            return Some(Outcome::Executed);
        }
        let (ty, id) = new?;
        self.server.objects.check_new(ty, id).ok()?;
        // vkCreateDevice's first parameter: the host physical device, decoded.
        let physical = if cmd.id == id::vkCreateDevice {
            vk::PhysicalDevice::from_raw(first)
        } else {
            vk::PhysicalDevice::null()
        };
        let kept = self.kept.as_deref_mut()?;
        let reused = if cmd.id == id::vkCreateDevice {
            let i = kept
                .devices
                .iter()
                .position(|(m, d)| d.physical == physical && m.request[..] == *payload);
            i.map(|i| {
                let (made, d) = kept.devices.swap_remove(i);
                let host = d.host;
                crate::device::adopt(&self.server, id, d);
                (host, made)
            })
        } else {
            let i = kept
                .instances
                .iter()
                .position(|(m, _)| m.request[..] == *payload);
            i.map(|i| {
                let (made, k) = kept.instances.swap_remove(i);
                let host = k.host;
                crate::instance::adopt(&self.server, id, k);
                (host, made)
            })
        };
        let outcome = match reused {
            Some((host, made)) => {
                kept.reused += 1;
                self.made.insert(host.0, made);
                Outcome::Executed
            }
            None => {
                let r = self
                    .server
                    .execute(cmd, payload, &self.arena, &mut self.out, false);
                if let Some(e) = self.server.objects.get(id).filter(|_| r.is_ok()) {
                    let request = payload.to_vec();
                    self.made.insert(e.host.0, Made { request, physical });
                }
                outcome(r)
            }
        };
        Some(outcome)
    }

    /// Hands device `host` to [`Kept`] (children destroyed), or destroys it when full.
    fn keep_device(&mut self, host: HostHandle) {
        let made = self.made.remove(&host.0);
        let kept = self.kept.as_deref_mut();
        match (made, kept) {
            (Some(m), Some(k)) if k.devices.len() < Kept::MOST => {
                if let Some(d) = crate::device::release(&self.server, host, m.physical) {
                    k.devices.push((m, d));
                }
            }
            _ => {
                crate::device::destroy(&self.server, host);
            }
        }
    }

    /// Hands instance `host` to [`Kept`], its devices first, or destroys it when full (and
    /// the devices kept on it: a kept device never outlives its instance).
    fn keep_instance(&mut self, host: HostHandle) {
        let instance = vk::Instance::from_raw(host.0);
        for (device, _) in self.server.devices_of(instance) {
            self.keep_device(device);
        }
        let made = self.made.remove(&host.0);
        if let (Some(m), Some(k)) = (made, self.kept.as_deref_mut()) {
            if k.instances.len() < Kept::MOST {
                if let Some(i) = crate::instance::release(&self.server, host) {
                    k.instances.push((m, i));
                    return;
                }
            }
        }
        if let Some(k) = self.kept.as_deref_mut() {
            let (gone, stay) = std::mem::take(&mut k.devices)
                .into_iter()
                .partition(|(_, d)| d.instance() == instance);
            k.devices = stay;
            for (_, d) in gone {
                crate::device::discard(&self.server, d);
            }
        }
        crate::instance::destroy(&self.server, host);
    }
}

/// What the server's answer to a frame makes of it.
fn outcome(r: Result<(), ExecError>) -> Outcome {
    match r {
        Ok(()) => Outcome::Executed,
        Err(e @ (ExecError::Decode { .. } | ExecError::Refused(_))) => {
            Outcome::Rejected(e.to_string())
        }
        Err(ExecError::Unsupported(_)) => Outcome::Unsupported,
    }
}

impl Drop for Session<'_> {
    /// Destroys what the stream left behind, as the server does when its client goes, or hands
    /// its instances and devices to [`Kept`].
    fn drop(&mut self) {
        let all = self.server.objects.all();
        for (_, e) in all.iter().filter(|(_, e)| e.ty == vk::ObjectType::DEVICE) {
            self.keep_device(e.host);
        }
        for (_, e) in all.iter().filter(|(_, e)| e.ty == vk::ObjectType::INSTANCE) {
            self.keep_instance(e.host);
        }
    }
}

/// What outlives one stream when one process plays many (the `server_stream` fuzz target): the
/// host driver, loaded once, and the host instances and devices the streams made. A stream's
/// `vkDestroyDevice`/`vkDestroyInstance` (or its end) destroys the object's children and keeps
/// the object; a later `vkCreateInstance`/`vkCreateDevice` with the same request bytes gets it
/// back under its own id. Creating a validated instance and device and resolving their
/// functions through the loader is most of what a short stream costs otherwise.
///
/// The price: host state outside objects (what lavapipe or the validation layer keeps per
/// device) carries from one stream to the next, so a crash found this way may need the
/// streams before it; `airlock-replay` and the regression tests replay each input fresh.
pub struct Kept {
    host: Arc<HostDriver>,
    policy: Policy,
    instances: Vec<(Made, crate::instance::KeptInstance)>,
    devices: Vec<(Made, crate::device::KeptDevice)>,
    /// How many creations were served from kept objects.
    pub reused: u64,
    /// Streams played since the last [`Kept::renew`].
    pub streams: u64,
}

impl Kept {
    /// Most instances, and most devices, kept at once (more are destroyed).
    const MOST: usize = 8;
    /// Streams one generation of kept objects serves: then [`Kept::renew`] destroys them. The
    /// host's own caches (compiled shaders per device, the layer's tables) grow by about 40 KB
    /// a stream, and a crash that needs the streams before it needs at most these.
    pub const GENERATION: u64 = 500;

    pub fn new(policy: Policy) -> Result<Kept, HostError> {
        Ok(Kept {
            host: Arc::new(load(policy)?),
            policy,
            instances: Vec::new(),
            devices: Vec::new(),
            reused: 0,
            streams: 0,
        })
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.renew();
    }
}

impl Kept {
    /// Destroys what is kept (through a last session that adopts all of it), for a new
    /// generation.
    pub fn renew(&mut self) {
        self.streams = 0;
        let s = Session::with_host(Arc::clone(&self.host), self.policy, None);
        for (_, d) in std::mem::take(&mut self.devices) {
            crate::device::discard(&s.server, d);
        }
        for (_, i) in std::mem::take(&mut self.instances) {
            crate::instance::discard(&s.server, i);
        }
    }
}

/// The streams of a history the fuzz target keeps (`AIRLOCK_FUZZ_LAST`): each after its
/// length, a little-endian u32; a record cut short ends the list.
pub fn history(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let Some((stream, tail)) = tail.split_at_checked(u32::from_le_bytes(*len) as usize) else {
            break;
        };
        out.push(stream);
        rest = tail;
    }
    out
}

/// Counts of what a stream's frames became.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub frames: u64,
    pub executed: u64,
    pub rejected: u64,
    pub unsupported: u64,
    pub skipped: u64,
    /// Bytes after the last whole frame (a truncated or unreadable frame).
    pub trailing: usize,
}

impl Tally {
    pub fn add(&mut self, o: &Outcome) {
        self.frames += 1;
        match o {
            Outcome::Executed => self.executed += 1,
            Outcome::Rejected(_) => self.rejected += 1,
            Outcome::Unsupported => self.unsupported += 1,
            Outcome::Skipped(_) => self.skipped += 1,
        }
    }
}

/// The `vkCreateShaderModule` payloads of `streams` (recorded seeds): the SPIR-V that
/// [`Policy::Fuzz`] lets the host compile.
pub fn shader_modules<'a>(streams: impl IntoIterator<Item = &'a [u8]>) -> HashSet<Vec<u8>> {
    streams
        .into_iter()
        .flat_map(frames)
        .filter(|f| f.header.command == id::vkCreateShaderModule)
        .map(|f| f.payload.to_vec())
        .collect()
}

/// Plays a whole stream against a fresh session; `each` sees every frame and its outcome.
pub fn play(
    stream: &[u8],
    policy: Policy,
    each: impl FnMut(&Frame<'_>, &Outcome),
) -> Result<Tally, HostError> {
    play_with(stream, policy, &HashSet::new(), each)
}

/// [`play`], with the shader modules [`Policy::Fuzz`] executes (see [`shader_modules`]).
pub fn play_with(
    stream: &[u8],
    policy: Policy,
    known_shaders: &HashSet<Vec<u8>>,
    each: impl FnMut(&Frame<'_>, &Outcome),
) -> Result<Tally, HostError> {
    let mut session = Session::new(policy)?;
    Ok(play_in(&mut session, stream, known_shaders, each))
}

/// [`play_with`] in a session on `kept`'s host driver and objects (the fuzz target's way).
pub fn play_kept(
    kept: &mut Kept,
    stream: &[u8],
    known_shaders: &HashSet<Vec<u8>>,
    each: impl FnMut(&Frame<'_>, &Outcome),
) -> Tally {
    kept.streams += 1;
    play_in(&mut Session::kept(kept), stream, known_shaders, each)
}

fn play_in(
    session: &mut Session<'_>,
    stream: &[u8],
    known_shaders: &HashSet<Vec<u8>>,
    mut each: impl FnMut(&Frame<'_>, &Outcome),
) -> Tally {
    session.known_shaders.clone_from(known_shaders);
    let mut tally = Tally::default();
    let mut it = frames(stream);
    for f in it.by_ref() {
        let o = session.execute(f);
        each(&f, &o);
        tally.add(&o);
    }
    tally.trailing = it.rest().len();
    tally
}
