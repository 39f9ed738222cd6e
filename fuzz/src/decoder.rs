//! The `decoder` target: every generated command's request decoding (the server's side of the
//! wire) and reply write-back into application structures (the client's side), with no driver
//! and no server state, so that it runs at the decoder's own speed.
//!
//! An input is `[command: u16][request length: u16][request][reply]`. The request is decoded as
//! the server decodes it, into an arena; the reply is then written back into what that decoding
//! made, which has the layout of the application's own arguments (output structures with their
//! `pNext` chains, arrays with their capacities), as the ICD writes a reply into the
//! application's. Any handle is accepted: the tables that refuse unknown ones are the server's,
//! tested elsewhere; here only the decoders are.

use bumpalo::Bump;
use wire::codec::{DecodeError, Decoder};
use wire::generated::commands::COMMANDS;
use wire::interp::{self, ClientObjects, Handles, ServerObjects};

/// Most memory one input may make the decoder allocate. The server's own limit is 256 MiB, but
/// every byte allocated is zeroed first: with the server's limit, inputs that ask for tens of
/// MiB of output spent 70% of the target's time in memset. Past this one they take the same
/// refusal path (`TooLarge`) as the server's past its own.
const ARENA_LIMIT: usize = 1 << 20;

struct Anything;

impl Handles for Anything {
    fn encode_handle(
        &self,
        _ty: ash::vk::ObjectType,
        _dispatchable: bool,
        raw: u64,
    ) -> Result<u64, DecodeError> {
        Ok(raw)
    }
    fn decode_handle(
        &self,
        _ty: ash::vk::ObjectType,
        _dispatchable: bool,
        id: u64,
    ) -> Result<u64, DecodeError> {
        Ok(id)
    }
}

impl ServerObjects for Anything {
    fn check_new(&self, ty: ash::vk::ObjectType, id: u64) -> Result<(), DecodeError> {
        if id == 0 {
            return Err(DecodeError::BadNewHandle { ty, id });
        }
        Ok(())
    }
}

impl ClientObjects for Anything {
    fn new_id(&self) -> u64 {
        1
    }
    fn wrap_new(&self, _ty: ash::vk::ObjectType, _dispatchable: bool, id: u64) -> u64 {
        id
    }
}

/// Runs one input. Panics only on what a decoder must never do.
pub fn run(data: &[u8]) {
    let (Some(cmd), Some(len)) = (data.get(..2), data.get(2..4)) else {
        return;
    };
    let cmd = &COMMANDS[u16::from_le_bytes([cmd[0], cmd[1]]) as usize % COMMANDS.len()];
    let rest = &data[4..];
    let len = (u16::from_le_bytes([len[0], len[1]]) as usize).min(rest.len());
    let (request, reply) = rest.split_at(len);
    thread_local! {
        /// One arena for all inputs, reset between them as the server resets its own per
        /// request: a new one per input spent most of the time mapping and faulting pages in.
        static ARENA: std::cell::RefCell<Bump> = std::cell::RefCell::new({
            let arena = Bump::new();
            arena.set_allocation_limit(Some(ARENA_LIMIT));
            arena
        });
    }
    ARENA.with_borrow_mut(|arena| {
        arena.reset();
        run_in(cmd, request, reply, arena);
    });
}

fn run_in(cmd: &'static wire::desc::CommandDesc, request: &[u8], reply: &[u8], arena: &Bump) {
    let mut dc = Decoder::new(request);
    let Ok(call) = interp::decode_request(&mut dc, cmd, arena, &Anything) else {
        return;
    };
    let new_ids: Vec<u64> = call.new_handles.iter().map(|n| n.id).collect();
    let mut rd = Decoder::new(reply);
    // SAFETY: `call.args` are what the request decoded: every pointer in them points into
    // `arena`, at structures and arrays of the sizes the request declared, as the
    // application's arguments would.
    let _ = unsafe { interp::decode_reply(&mut rd, cmd, &call.args, &Anything, &new_ids) };
}

/// Seeds from recorded command streams: each generated command's request, with an empty
/// reply (the fuzzer grows one), and the commands inside recorded batches likewise.
pub fn seeds(streams: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |name: &str, command: u32, payload: &[u8]| {
        let Some(c) = COMMANDS.get(command as usize) else {
            return;
        };
        let Ok(len) = u16::try_from(payload.len()) else {
            return;
        };
        // One seed per command and request size: enough shapes, few files.
        if !seen.insert((command, payload.len())) {
            return;
        }
        let mut v = (command as u16).to_le_bytes().to_vec();
        v.extend(len.to_le_bytes());
        v.extend(payload);
        out.push((format!("{name}-{}-{}", c.name, payload.len()), v));
    };
    for (name, stream) in streams {
        for f in server::replay::frames(stream) {
            if f.header.command == wire::private::RECORDED {
                if let Some(batch) = f.payload.get(8..) {
                    for r in server::replay::frames(batch) {
                        add(name, r.header.command, r.payload);
                    }
                }
            } else {
                add(name, f.header.command, f.payload);
            }
        }
    }
    out
}
