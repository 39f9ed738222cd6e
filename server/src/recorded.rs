//! Replaying a batch of recorded commands (`wire::private::RECORDED`) onto one host command
//! buffer.
//!
//! Every frame is checked like any request: a `vkCmd*` command, on the batch's command buffer,
//! decoded with the same zero-trust interpreter. The first bad frame ends the batch and marks
//! the command buffer broken, so that submitting it fails instead of running half a recording.

use crate::dispatch::{Route, Server};
use ash::vk;
use bumpalo::Bump;
use tracing::warn;
use wire::codec::Encoder;
use wire::frame::{RequestHeader, REQUEST_HEADER};
use wire::generated::commands::COMMANDS;

pub fn replay(server: &Server, payload: &[u8], arena: &mut Bump, out: &mut Encoder) {
    let Some((id, mut rest)) = payload.split_first_chunk::<8>() else {
        warn!("recorded batch without a command buffer id");
        return;
    };
    let id = u64::from_le_bytes(*id);
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
        warn!(command_buffer = id, "recorded batch: no device serves it");
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
            command_buffer = id,
            index, "recorded batch: {why}; the command buffer is marked broken"
        );
        server.broken.lock().insert(host);
        return;
    }
}

/// Executes the frame at the start of `rest`; returns its length.
fn frame(
    server: &Server,
    id: u64,
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
    if body.get(..8) != Some(&id.to_le_bytes()[..]) {
        return Err(format!("{} names another command buffer", cmd.name));
    }
    out.clear();
    server
        .execute_routed(cmd, body, arena, out, route)
        .map_err(|e| e.to_string())?;
    Ok(end)
}
