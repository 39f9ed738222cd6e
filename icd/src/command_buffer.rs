//! Command buffers: every `vkCmd*` is encoded into the command buffer's own memory here and
//! reaches the server in batches (when the batch grows large and at `vkEndCommandBuffer`), so
//! recording costs no message and no system call per command.
//!
//! Begin, end and reset are answered here and sent without waiting: the server applies them in
//! order with the batches. A command the ICD cannot encode makes `vkEndCommandBuffer` fail.

use crate::call::call;
use crate::conn::Connection;
use crate::log::log;
use crate::objects::{ClientCx, Dispatchable};
use ash::vk::{self, Handle};
use std::collections::HashMap;
use std::sync::OnceLock;
use wire::codec::Encoder;
use wire::desc::{CommandDesc, Kind, Ty};
use wire::frame::{RequestHeader, REQUEST_HEADER};
use wire::generated::commands::{
    C_vkAllocateCommandBuffers, C_vkBeginCommandBuffer, C_vkDestroyCommandPool,
    C_vkEndCommandBuffer, C_vkFreeCommandBuffers, C_vkResetCommandBuffer, COMMANDS,
};
use wire::interp;
use wire::private::RECORDED;

/// A batch is shipped once it holds this many bytes, so the server replays a long recording
/// while the application is still recording it.
const FLUSH_AT: usize = 256 << 10;

/// The unshipped part of one command buffer's recording.
#[derive(Default)]
pub struct Recording {
    frames: Encoder,
    commands: u64,
    primary: bool,
    /// The id of the device it was allocated from.
    device: u64,
    /// The first command that could not be encoded; `vkEndCommandBuffer` reports it.
    error: Option<vk::Result>,
}

impl Recording {
    fn discard(&mut self) {
        self.frames.clear();
        self.commands = 0;
        self.error = None;
    }
}

/// Command buffer wrappers of each pool, freed with it.
#[derive(Default)]
pub struct Pools(HashMap<u64, Vec<u64>>);

/// # Safety
/// `handle` is a live command buffer wrapper, used by one thread at a time as Vulkan requires.
unsafe fn recording<'a>(handle: u64) -> &'a mut Recording {
    &mut *(*(handle as *const Dispatchable)).rec.get()
}

/// Encodes one `vkCmd*` call into its command buffer's batch.
///
/// # Safety
/// `args` are the application's arguments; `args[0]` a command buffer in the recording state.
pub unsafe fn record(cmd: &'static CommandDesc, args: &[u64]) {
    let handle = args[0];
    let rec = recording(handle);
    let conn = Dispatchable::conn_borrowed(handle);
    if conn.is_lost() {
        // Nothing recorded can run any more (vkEndCommandBuffer and every submission say so):
        // keep no bytes and spend no time on it.
        rec.discard();
        return;
    }
    let start = rec.frames.len();
    rec.frames.buf.extend_from_slice(&[0; REQUEST_HEADER]);
    if is_flat(cmd) {
        put_flat(&mut rec.frames.buf, cmd, args);
    } else if let Err(e) = encode(rec, cmd, args, &conn, handle) {
        rec.frames.buf.truncate(start);
        log!(error, "airlock: {}: cannot encode the call: {e}", cmd.name);
        rec.error.get_or_insert(vk::Result::ERROR_UNKNOWN);
        return;
    }
    let header = RequestHeader {
        size: (rec.frames.len() - start - REQUEST_HEADER) as u32,
        command: cmd.id,
        slot: 0,
        flags: 0,
    };
    rec.frames.buf[start..start + REQUEST_HEADER].copy_from_slice(&header.to_bytes());
    rec.commands += 1;
    if rec.frames.len() >= FLUSH_AT {
        flush(&conn, handle, rec);
    }
}

/// The general encoder, for commands with arrays, structs or pointers.
unsafe fn encode(
    rec: &mut Recording,
    cmd: &'static CommandDesc,
    args: &[u64],
    conn: &std::sync::Arc<Connection>,
    handle: u64,
) -> Result<(), wire::codec::DecodeError> {
    let cx = ClientCx {
        conn,
        parent: handle,
        level: cmd.level,
    };
    // Recorded commands create nothing, so no ids are named.
    let mut no_ids = Vec::new();
    interp::encode_request(&mut rec.frames, cmd, args, &cx, &mut no_ids)
}

/// Whether every parameter of `cmd` is a plain value (most draws, dispatches, state setters):
/// those are written straight from the argument words, as the general encoder would write them.
fn is_flat(cmd: &CommandDesc) -> bool {
    static FLAT: OnceLock<Vec<bool>> = OnceLock::new();
    FLAT.get_or_init(|| {
        COMMANDS
            .iter()
            .map(|c| c.params.iter().all(|p| flat_width(p.kind).is_some()))
            .collect()
    })[cmd.id as usize]
}

/// Wire bytes of a plain-value parameter; `None` for anything else.
fn flat_width(kind: Kind) -> Option<usize> {
    match kind {
        Kind::Value(Ty::U8 | Ty::U16 | Ty::U32 | Ty::I32 | Ty::F32) => Some(4),
        Kind::Value(Ty::U64 | Ty::I64 | Ty::F64 | Ty::Usize | Ty::Handle(_)) => Some(8),
        Kind::Value(Ty::Dispatchable(_)) | Kind::Object(Ty::Handle(_) | Ty::Dispatchable(_)) => {
            Some(8)
        }
        _ => None,
    }
}

/// # Safety
/// `cmd` is flat ([`is_flat`]); `args` are its arguments, dispatchable ones live wrappers.
unsafe fn put_flat(buf: &mut Vec<u8>, cmd: &CommandDesc, args: &[u64]) {
    buf.reserve(cmd.params.len() * 8);
    for (p, &a) in cmd.params.iter().zip(args) {
        match p.kind {
            Kind::Value(Ty::Dispatchable(_)) | Kind::Object(Ty::Dispatchable(_)) => {
                buf.extend_from_slice(&Dispatchable::id_of(a).to_le_bytes())
            }
            Kind::Value(Ty::U8) => buf.extend_from_slice(&(a as u8 as u32).to_le_bytes()),
            Kind::Value(Ty::U16) => buf.extend_from_slice(&(a as u16 as u32).to_le_bytes()),
            k if flat_width(k) == Some(4) => buf.extend_from_slice(&(a as u32).to_le_bytes()),
            _ => buf.extend_from_slice(&a.to_le_bytes()),
        }
    }
}

/// Ships what `handle` has recorded so far.
fn flush(conn: &Connection, handle: u64, rec: &mut Recording) {
    if rec.commands == 0 {
        return;
    }
    // SAFETY: a live wrapper.
    let id = unsafe { Dispatchable::id_of(handle) };
    let sent = conn.exchange_parts(
        RECORDED,
        &[&id.to_le_bytes(), &rec.frames.buf],
        false,
        &mut Vec::new(),
    );
    if let Err(why) = sent {
        let _ = conn.fail(
            &C_vkEndCommandBuffer,
            &format!("shipping recorded commands: {why}"),
        );
    }
    crate::stats::batch(rec.commands);
    rec.frames.clear();
    rec.commands = 0;
}

pub unsafe extern "system" fn vkAllocateCommandBuffers(
    device: vk::Device,
    info: *const vk::CommandBufferAllocateInfo<'_>,
    out: *mut vk::CommandBuffer,
) -> vk::Result {
    let r = vk::Result::from_raw(call(
        &C_vkAllocateCommandBuffers,
        &[device.as_raw(), info as u64, out as u64],
    ) as i32);
    if r != vk::Result::SUCCESS {
        return r;
    }
    let info = &*info;
    let device_id = Dispatchable::id_of(device.as_raw());
    let handles = std::slice::from_raw_parts(out, info.command_buffer_count as usize);
    for h in handles {
        let rec = recording(h.as_raw());
        rec.primary = info.level == vk::CommandBufferLevel::PRIMARY;
        rec.device = device_id;
    }
    let conn = Dispatchable::conn(device.as_raw());
    conn.pools
        .lock()
        .0
        .entry(info.command_pool.as_raw())
        .or_default()
        .extend(handles.iter().map(|h| h.as_raw()));
    r
}

pub unsafe extern "system" fn vkFreeCommandBuffers(
    device: vk::Device,
    pool: vk::CommandPool,
    count: u32,
    buffers: *const vk::CommandBuffer,
) {
    if buffers.is_null() {
        return;
    }
    call(
        &C_vkFreeCommandBuffers,
        &[device.as_raw(), pool.as_raw(), count as u64, buffers as u64],
    );
    let conn = Dispatchable::conn(device.as_raw());
    let freed: Vec<u64> = std::slice::from_raw_parts(buffers, count as usize)
        .iter()
        .map(|h| h.as_raw())
        .filter(|h| *h != 0)
        .collect();
    if let Some(list) = conn.pools.lock().0.get_mut(&pool.as_raw()) {
        list.retain(|h| !freed.contains(h));
    }
    for h in freed {
        Dispatchable::free(h);
    }
}

pub unsafe extern "system" fn vkDestroyCommandPool(
    device: vk::Device,
    pool: vk::CommandPool,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    if pool == vk::CommandPool::null() {
        return;
    }
    call(
        &C_vkDestroyCommandPool,
        &[device.as_raw(), pool.as_raw(), allocator as u64],
    );
    let conn = Dispatchable::conn(device.as_raw());
    let buffers = conn.pools.lock().0.remove(&pool.as_raw());
    for h in buffers.unwrap_or_default() {
        Dispatchable::free(h);
    }
}

/// Frees the command buffer wrappers of every pool of a device being destroyed.
pub fn forget_pools(conn: &Connection, device: u64) {
    let mut pools = conn.pools.lock();
    pools.0.retain(|_, buffers| {
        // SAFETY: wrappers of the device's command buffers; the device is gone.
        let ours = buffers
            .first()
            .is_some_and(|h| unsafe { owner_device(*h) } == device);
        if ours {
            for h in buffers.drain(..) {
                unsafe { Dispatchable::free(h) };
            }
        }
        !ours
    });
}

/// The device id a command buffer wrapper was allocated from.
unsafe fn owner_device(handle: u64) -> u64 {
    recording(handle).device
}

pub unsafe extern "system" fn vkBeginCommandBuffer(
    cb: vk::CommandBuffer,
    info: *const vk::CommandBufferBeginInfo<'_>,
) -> vk::Result {
    let h = cb.as_raw();
    recording(h).discard();
    // What the inheritance info holds for a primary command buffer, or outside a render pass,
    // is ignored and does not travel (`wire::ignored`, which asks [`is_primary`]).
    let conn = Dispatchable::conn_borrowed(h);
    conn.post(&C_vkBeginCommandBuffer, &[h, info as u64])
}

/// Whether a command buffer was allocated primary.
///
/// # Safety
/// `handle` is a live command buffer wrapper.
pub unsafe fn is_primary(handle: u64) -> bool {
    recording(handle).primary
}

pub unsafe extern "system" fn vkEndCommandBuffer(cb: vk::CommandBuffer) -> vk::Result {
    let h = cb.as_raw();
    let rec = recording(h);
    let conn = Dispatchable::conn_borrowed(h);
    flush(&conn, h, rec);
    let r = conn.post(&C_vkEndCommandBuffer, &[h]);
    rec.error.take().unwrap_or(r)
}

pub unsafe extern "system" fn vkResetCommandBuffer(
    cb: vk::CommandBuffer,
    flags: vk::CommandBufferResetFlags,
) -> vk::Result {
    let h = cb.as_raw();
    recording(h).discard();
    let conn = Dispatchable::conn_borrowed(h);
    conn.post(&C_vkResetCommandBuffer, &[h, flags.as_raw() as u64])
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::codec::DecodeError;
    use wire::interp::{ClientObjects, Handles};

    /// Handles as the client sees them when no dispatchable object is involved.
    struct Plain;
    impl Handles for Plain {
        fn encode_handle(&self, _: vk::ObjectType, _: bool, raw: u64) -> Result<u64, DecodeError> {
            Ok(raw)
        }
        fn decode_handle(&self, _: vk::ObjectType, _: bool, id: u64) -> Result<u64, DecodeError> {
            Ok(id)
        }
    }
    impl ClientObjects for Plain {
        fn new_id(&self) -> u64 {
            0
        }
        fn wrap_new(&self, _: vk::ObjectType, _: bool, id: u64) -> u64 {
            id
        }
    }

    #[test]
    fn the_flat_encoder_writes_what_the_general_one_writes() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut checked = 0;
        for cmd in COMMANDS.iter().filter(|c| c.recorded && is_flat(c)) {
            for _ in 0..16 {
                // Dispatchable arguments stay null: their ids need live wrappers.
                let args: Vec<u64> = cmd
                    .params
                    .iter()
                    .map(|p| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        match p.kind {
                            Kind::Value(Ty::Dispatchable(_))
                            | Kind::Object(Ty::Dispatchable(_)) => 0,
                            k if flat_width(k) == Some(4) => seed & 0xFFFF_FFFF,
                            _ => seed,
                        }
                    })
                    .collect();
                let mut general = Encoder::new();
                unsafe {
                    interp::encode_request(&mut general, cmd, &args, &Plain, &mut Vec::new())
                        .unwrap();
                }
                let mut flat = Vec::new();
                unsafe { put_flat(&mut flat, cmd, &args) };
                assert_eq!(flat, general.buf, "{}", cmd.name);
            }
            checked += 1;
        }
        assert!(checked > 50, "only {checked} flat recorded commands");
    }
}
