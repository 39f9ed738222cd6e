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
use crate::objects::ClientId;
use ash::vk;
use bumpalo::Bump;
use std::collections::HashSet;
use wire::codec::Encoder;
use wire::control::ExtensionInfo;
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
pub struct Session {
    pub server: Server,
    policy: Policy,
    /// Under [`Policy::Fuzz`], the `vkCreateShaderModule` payloads executed; others are skipped.
    pub known_shaders: HashSet<Vec<u8>>,
    arena: Bump,
    out: Encoder,
}

impl Session {
    /// Loads the host driver the real server would load (`AIRLOCK_HOST_ICD` or lavapipe) and
    /// starts an empty server state for a client carrying every extension Airlock encodes, as
    /// the ICD's handshake says.
    pub fn new(policy: Policy) -> Result<Session, HostError> {
        let host = match policy {
            Policy::Replay => HostDriver::load_default()?,
            Policy::Fuzz => HostDriver::load_validated(&crate::host::default_path()?)?,
        };
        let extensions = ExtensionInfo::all();
        let arena = Bump::new();
        arena.set_allocation_limit(Some(ARENA_LIMIT));
        Ok(Session {
            server: Server::new(host, &extensions),
            policy,
            known_shaders: HashSet::new(),
            arena,
            out: Encoder::new(),
        })
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
        let outcome = match COMMANDS.get(header.command as usize) {
            None if header.command == private::RECORDED => self.recorded(payload),
            None if header.command == private::MAP_MEMORY => self.map_memory(payload),
            None if header.command == private::IMPORT_MEMORY => self.import_memory(payload),
            None => Outcome::Rejected(format!("unknown command id {}", header.command)),
            Some(cmd) => match self
                .server
                .execute(cmd, payload, &self.arena, &mut self.out)
            {
                Ok(()) => Outcome::Executed,
                Err(e @ (ExecError::Decode { .. } | ExecError::Refused(_))) => {
                    Outcome::Rejected(e.to_string())
                }
                Err(ExecError::Unsupported(_)) => Outcome::Unsupported,
            },
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

impl Drop for Session {
    /// Destroys what the stream left behind, as the server does when its client goes.
    fn drop(&mut self) {
        let all = self.server.objects.all();
        for (_, e) in all.iter().filter(|(_, e)| e.ty == vk::ObjectType::DEVICE) {
            crate::device::destroy(&self.server, e.host);
        }
        for (_, e) in all.iter().filter(|(_, e)| e.ty == vk::ObjectType::INSTANCE) {
            crate::instance::destroy(&self.server, e.host);
        }
    }
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
    mut each: impl FnMut(&Frame<'_>, &Outcome),
) -> Result<Tally, HostError> {
    let mut session = Session::new(policy)?;
    session.known_shaders.clone_from(known_shaders);
    let mut tally = Tally::default();
    let mut it = frames(stream);
    for f in it.by_ref() {
        let o = session.execute(f);
        each(&f, &o);
        tally.add(&o);
    }
    tally.trailing = it.rest().len();
    Ok(tally)
}
