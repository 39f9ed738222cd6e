//! Command buffers: batches of recorded commands (`wire::private::RECORDED`) replayed onto
//! their host command buffer, and what becomes of a command buffer whose recording the server
//! could not replay.
//!
//! Every frame of a batch is checked like any request: a `vkCmd*` command, on the batch's
//! command buffer, decoded with the same zero-trust interpreter. The first bad frame ends the
//! batch and marks the command buffer broken, so that submitting it fails (`queue.rs`) instead
//! of running half a recording; beginning or resetting it again clears the mark.

use crate::dispatch::{Before, Hook, Route, Server, HOST};
use crate::generated::views;
use crate::objects::ClientId;
use crate::util::slice;
use ash::vk::{self, Handle};
use bumpalo::Bump;
use parking_lot::Mutex;
use std::collections::HashSet;
use tracing::warn;
use wire::codec::Encoder;
use wire::desc::CommandDesc;
use wire::frame::{RequestHeader, REQUEST_HEADER};
use wire::generated::commands::{id, COMMANDS};
use wire::interp::DecodedCall;

/// What the command buffer family keeps: the host command buffers whose recording could not be
/// replayed.
#[derive(Default)]
pub struct CommandBuffers {
    pub broken: Mutex<HashSet<u64>>,
}

impl CommandBuffers {
    pub fn any_broken(&self) -> bool {
        !self.broken.lock().is_empty()
    }

    /// The first of `used` (host command buffers) that is broken.
    pub fn first_broken(&self, used: &[u64]) -> Option<u64> {
        let broken = self.broken.lock();
        used.iter().copied().find(|c| broken.contains(c))
    }
}

/// Beginning or resetting a command buffer clears its mark; it records from a begin on.
///
/// # Safety
/// `args` are the decoded arguments of `vkBeginCommandBuffer` or `vkResetCommandBuffer`.
pub unsafe fn before_begin(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    let cb = if h.cmd.id == id::vkBeginCommandBuffer {
        views::BeginCommandBuffer::of(args).command_buffer
    } else {
        views::ResetCommandBuffer::of(args).command_buffer
    };
    server.command_buffers.broken.lock().remove(&cb.as_raw());
    if h.cmd.id == id::vkBeginCommandBuffer {
        server.pipelines.recording(cb.as_raw());
    }
    HOST
}

/// The new command buffers belong to their pool.
///
/// # Safety
/// `call` is a `vkAllocateCommandBuffers` that succeeded.
pub unsafe fn after_allocate(server: &Server, call: &DecodedCall) {
    let pool = (*views::AllocateCommandBuffers::of(&call.args).p_allocate_info).command_pool;
    crate::descriptor::adopt(server, vk::ObjectType::COMMAND_POOL, pool.as_raw(), call);
}

/// Command buffers that stop recording (ended, reset, freed, or gone with their pool) may
/// release postponed pipeline layouts (`pipeline.rs`).
pub fn recording_ended(server: &Server, cmd: &CommandDesc, args: &[u64]) {
    // SAFETY: the decoded arguments of the command `cmd` names.
    let ended: Vec<u64> = unsafe {
        match cmd.id {
            id::vkEndCommandBuffer => {
                vec![views::EndCommandBuffer::of(args).command_buffer.as_raw()]
            }
            id::vkResetCommandBuffer => {
                vec![views::ResetCommandBuffer::of(args).command_buffer.as_raw()]
            }
            id::vkFreeCommandBuffers => {
                let v = views::FreeCommandBuffers::of(args);
                let freed = slice(v.p_command_buffers, u64::from(v.command_buffer_count));
                freed.iter().map(|c| c.as_raw()).collect()
            }
            id::vkResetCommandPool | id::vkDestroyCommandPool => {
                let pool = if cmd.id == id::vkResetCommandPool {
                    views::ResetCommandPool::of(args).command_pool
                } else {
                    views::DestroyCommandPool::of(args).command_pool
                };
                let host = crate::objects::HostHandle(pool.as_raw());
                match server.objects.id_of(vk::ObjectType::COMMAND_POOL, host) {
                    Some(pool) => {
                        let children = server.objects.children_of(pool);
                        children.iter().map(|e| e.host.0).collect()
                    }
                    None => Vec::new(),
                }
            }
            _ => return,
        }
    };
    crate::pipeline::recording_ended(server, ended);
}

/// Replays a batch of recorded commands onto one host command buffer.
pub fn replay(server: &Server, payload: &[u8], arena: &mut Bump, out: &mut Encoder) {
    let Some((id, mut rest)) = payload.split_first_chunk::<8>() else {
        warn!("recorded batch without a command buffer id");
        return;
    };
    let id = ClientId(u64::from_le_bytes(*id));
    let host = match server.objects.lookup(vk::ObjectType::COMMAND_BUFFER, id) {
        Ok(e) => e.host,
        Err(e) => {
            warn!("recorded batch: {e}");
            return;
        }
    };
    let Some(route) = COMMANDS
        .iter()
        .find(|c| c.recorded)
        .and_then(|c| server.route(c, id).ok())
    else {
        warn!(command_buffer = id.0, "recorded batch: no device serves it");
        return;
    };
    let mut index = 0usize;
    while !rest.is_empty() {
        let why = match frame(server, id, &route, rest, arena, out) {
            Ok(used) => {
                rest = &rest[used..];
                index += 1;
                arena.reset();
                continue;
            }
            Err(why) => why,
        };
        warn!(
            command_buffer = id.0,
            index, "recorded batch: {why}; the command buffer is marked broken"
        );
        server.command_buffers.broken.lock().insert(host.0);
        return;
    }
}

/// Executes the frame at the start of `rest`; returns its length.
fn frame(
    server: &Server,
    id: ClientId,
    route: &Route,
    rest: &[u8],
    arena: &Bump,
    out: &mut Encoder,
) -> Result<usize, String> {
    let head: &[u8; REQUEST_HEADER] = rest
        .first_chunk()
        .ok_or_else(|| format!("truncated frame header ({} bytes)", rest.len()))?;
    let h = RequestHeader::from_bytes(head).map_err(|e| e.to_string())?;
    let end = REQUEST_HEADER + h.size as usize;
    let body = rest
        .get(REQUEST_HEADER..end)
        .ok_or_else(|| format!("frame of {} bytes overruns the batch", h.size))?;
    let cmd = COMMANDS
        .get(h.command as usize)
        .filter(|c| c.recorded)
        .ok_or_else(|| format!("command id {} is not a recorded command", h.command))?;
    if body.get(..8) != Some(&id.0.to_le_bytes()[..]) {
        return Err(format!("{} names another command buffer", cmd.name));
    }
    out.clear();
    server
        .execute_routed(cmd, body, arena, out, route, true)
        .map_err(|e| e.to_string())?;
    Ok(end)
}
