//! Command buffers: every `vkCmd*` is encoded into the command buffer's own memory here and
//! reaches the server in batches (when the batch grows large and at `vkEndCommandBuffer`), so
//! recording costs no message and no system call per command.
//!
//! Begin, end and reset are answered here and sent without waiting: the server applies them in
//! order with the batches. A command the ICD cannot encode makes `vkEndCommandBuffer` fail.
//! Command buffers belong to their pool, and pools to their device: freeing a pool or the device
//! frees their wrappers.

use crate::call::{call, create_posted_if, post};
use crate::conn::Connection;
use crate::descriptor::{self, DescriptorFacts};
use crate::log::log;
use crate::objects::{header, ClientCx, Header, Object};
use ash::vk::{self, Handle};
use parking_lot::Mutex;
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::OnceLock;
use wire::codec::Encoder;
use wire::desc::{CommandDesc, Kind, Ty};
use wire::frame::{RequestHeader, REQUEST_HEADER};
use wire::generated::commands::id;
use wire::generated::commands::{
    C_vkAllocateCommandBuffers, C_vkBeginCommandBuffer, C_vkCmdDrawMultiEXT,
    C_vkCmdDrawMultiIndexedEXT, C_vkCmdPushDescriptorSetKHR, C_vkDestroyCommandPool,
    C_vkEndCommandBuffer, C_vkFreeCommandBuffers, C_vkResetCommandBuffer, COMMANDS,
};
use wire::ignored::Facts;
use wire::interp;
use wire::private::RECORDED;

/// A batch is shipped once it holds this many bytes, so the server replays a long recording
/// while the application is still recording it.
const FLUSH_AT: usize = 256 << 10;

/// A command buffer's own state.
pub struct CommandBuffer {
    primary: bool,
    /// Used by one thread at a time, as Vulkan requires of a command buffer.
    rec: UnsafeCell<Recording>,
}

// SAFETY: the recording is touched only by the thread Vulkan lets use the command buffer.
unsafe impl Sync for CommandBuffer {}

/// The unshipped part of one command buffer's recording.
#[derive(Default)]
struct Recording {
    frames: Encoder,
    commands: u64,
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

/// A device's command pools: the wrappers of each pool's command buffers, freed with it.
#[derive(Default)]
struct Pools(Mutex<HashMap<u64, Vec<u64>>>);

impl Drop for Pools {
    fn drop(&mut self) {
        for h in self.0.get_mut().values().flatten() {
            // SAFETY: the device is destroyed, and its command buffers with it.
            unsafe { Object::<CommandBuffer>::free(*h) };
        }
    }
}

/// # Safety
/// `handle` is a live command buffer wrapper.
unsafe fn object<'a>(handle: u64) -> &'a Object<CommandBuffer> {
    Object::<CommandBuffer>::get(handle)
}

/// # Safety
/// `handle` is a live command buffer wrapper, used by one thread at a time as Vulkan requires.
unsafe fn recording<'a>(handle: u64) -> &'a mut Recording {
    &mut *object(handle).state.rec.get()
}

/// What the command buffer family knows for the encoder's rules: whether command buffers are
/// primary, and (its device's) which bindings have immutable samplers.
struct CommandBufferFacts<'a> {
    device: &'a Header,
}

impl Facts for CommandBufferFacts<'_> {
    fn is_primary(&self, command_buffer: u64) -> bool {
        // SAFETY: the application's command buffer, live while it begins.
        command_buffer != 0 && unsafe { object(command_buffer) }.state.primary
    }

    fn set_binding_immutable(&self, set: u64, binding: u32) -> bool {
        DescriptorFacts(self.device).set_binding_immutable(set, binding)
    }

    fn layout_binding_immutable(&self, layout: u64, set: u32, binding: u32) -> bool {
        DescriptorFacts(self.device).layout_binding_immutable(layout, set, binding)
    }
}

/// Encodes one `vkCmd*` call into its command buffer's batch.
///
/// # Safety
/// `args` are the application's arguments; `args[0]` a command buffer in the recording state.
pub unsafe fn record(cmd: &'static CommandDesc, args: &[u64]) {
    let handle = args[0];
    let rec = recording(handle);
    let cb = header(handle);
    let conn = cb.conn();
    if conn.is_lost() {
        // Nothing recorded can run any more (vkEndCommandBuffer and every submission say so):
        // keep no bytes and spend no time on it.
        rec.discard();
        return;
    }
    if matches!(
        cmd.id,
        id::vkCmdSetEvent | id::vkCmdResetEvent | id::vkCmdSetEvent2 | id::vkCmdResetEvent2
    ) {
        crate::queue::recorded_event(cb.parent, args[1]);
    }
    let start = rec.frames.len();
    rec.frames.buf.extend_from_slice(&[0; REQUEST_HEADER]);
    if is_flat(cmd) {
        put_flat(&mut rec.frames.buf, cmd, args);
    } else {
        let facts = CommandBufferFacts {
            device: header(cb.parent),
        };
        let cx = ClientCx {
            parent: handle,
            level: cmd.level,
            facts: &facts,
        };
        // Recorded commands create nothing, so no ids are named.
        let encoded = interp::encode_request(&mut rec.frames, cmd, args, &cx, &mut Vec::new());
        if let Err(e) = encoded {
            rec.frames.buf.truncate(start);
            log!(error, "airlock: {}: cannot encode the call: {e}", cmd.name);
            rec.error.get_or_insert(vk::Result::ERROR_UNKNOWN);
            return;
        }
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
        flush(conn, handle, rec);
    }
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
                buf.extend_from_slice(&crate::objects::id_of(a).to_le_bytes())
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
    let id = unsafe { header(handle) }.id;
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
    let args = [device.as_raw(), info as u64, out as u64];
    // Posted when only a lack of memory could make the host refuse it (no extension structure)
    // and the object limit has room (`call::create_posted_if`): a program that allocates a
    // command buffer per submission saves a round trip each.
    let n = if info.is_null() {
        0
    } else {
        (*info).command_buffer_count as usize
    };
    let plain = !info.is_null() && (*info).p_next.is_null();
    let r = create_posted_if(plain, &C_vkAllocateCommandBuffers, &args, out.cast(), n);
    if r != vk::Result::SUCCESS {
        return r;
    }
    let info = &*info;
    let dev = header(device.as_raw());
    let handles = std::slice::from_raw_parts_mut(out, info.command_buffer_count as usize);
    // The generic path leaves the new command buffers' ids; the wrappers carry their state.
    for h in handles.iter_mut() {
        let state = CommandBuffer {
            primary: info.level == vk::CommandBufferLevel::PRIMARY,
            rec: Default::default(),
        };
        *h = vk::CommandBuffer::from_raw(Object::create(
            h.as_raw(),
            dev.conn(),
            device.as_raw(),
            state,
        ));
    }
    dev.families
        .get::<Pools>()
        .0
        .lock()
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
    let freed: Vec<u64> = std::slice::from_raw_parts(buffers, count as usize)
        .iter()
        .map(|h| h.as_raw())
        .filter(|h| *h != 0)
        .collect();
    let pools = header(device.as_raw()).families.get::<Pools>();
    if let Some(list) = pools.0.lock().get_mut(&pool.as_raw()) {
        list.retain(|h| !freed.contains(h));
    }
    for h in freed {
        Object::<CommandBuffer>::free(h);
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
    let pools = header(device.as_raw()).families.get::<Pools>();
    let buffers = pools.0.lock().remove(&pool.as_raw());
    for h in buffers.unwrap_or_default() {
        Object::<CommandBuffer>::free(h);
    }
}

pub unsafe extern "system" fn vkBeginCommandBuffer(
    cb: vk::CommandBuffer,
    info: *const vk::CommandBufferBeginInfo<'_>,
) -> vk::Result {
    let h = cb.as_raw();
    recording(h).discard();
    // What the inheritance info holds for a primary command buffer, or outside a render pass,
    // is ignored and does not travel (`wire::ignored`, which asks `is_primary`).
    let facts = CommandBufferFacts {
        device: header(header(h).parent),
    };
    post(&C_vkBeginCommandBuffer, &[h, info as u64], &facts)
}

pub unsafe extern "system" fn vkEndCommandBuffer(cb: vk::CommandBuffer) -> vk::Result {
    let h = cb.as_raw();
    let rec = recording(h);
    flush(header(h).conn(), h, rec);
    let r = post(&C_vkEndCommandBuffer, &[h], &crate::objects::NoFacts);
    rec.error.take().unwrap_or(r)
}

pub unsafe extern "system" fn vkResetCommandBuffer(
    cb: vk::CommandBuffer,
    flags: vk::CommandBufferResetFlags,
) -> vk::Result {
    let h = cb.as_raw();
    recording(h).discard();
    post(
        &C_vkResetCommandBuffer,
        &[h, flags.as_raw() as u64],
        &crate::objects::NoFacts,
    )
}

/// Push descriptors through a template: the template's writes (`descriptor.rs`), recorded as
/// `vkCmdPushDescriptorSetKHR`.
pub unsafe extern "system" fn vkCmdPushDescriptorSetWithTemplateKHR(
    cb: vk::CommandBuffer,
    template: vk::DescriptorUpdateTemplate,
    layout: vk::PipelineLayout,
    set: u32,
    data: *const c_void,
) {
    let device = header(header(cb.as_raw()).parent);
    let Some(t) = descriptor::template(device, template) else {
        return;
    };
    let x = descriptor::expand(&t, vk::DescriptorSet::null(), data);
    record(
        &C_vkCmdPushDescriptorSetKHR,
        &[
            cb.as_raw(),
            t.bind_point.as_raw() as u32 as u64,
            layout.as_raw(),
            set as u64,
            x.writes.len() as u64,
            x.writes.as_ptr() as u64,
        ],
    );
}

/// `count` elements of `T` read every `stride` bytes from `p`.
unsafe fn packed<T: Copy>(p: *const T, count: u32, stride: u32) -> Vec<T> {
    if p.is_null() {
        return Vec::new();
    }
    (0..count as usize)
        .map(|i| std::ptr::read_unaligned((p as *const u8).add(i * stride as usize) as *const T))
        .collect()
}

/// The array's address as a call argument; NULL when empty, as the application may pass.
fn address<T>(v: &[T]) -> u64 {
    if v.is_empty() {
        0
    } else {
        v.as_ptr() as u64
    }
}

/// Multi-draws: their arrays are spaced by the application's own `stride`, not by the element
/// size the encoder assumes, so they are gathered into a packed copy first.
pub unsafe extern "system" fn vkCmdDrawMultiEXT(
    cb: vk::CommandBuffer,
    count: u32,
    draws: *const vk::MultiDrawInfoEXT,
    instances: u32,
    first_instance: u32,
    stride: u32,
) {
    let draws = packed(draws, count, stride);
    record(
        &C_vkCmdDrawMultiEXT,
        &[
            cb.as_raw(),
            count as u64,
            address(&draws),
            instances as u64,
            first_instance as u64,
            std::mem::size_of::<vk::MultiDrawInfoEXT>() as u64,
        ],
    );
}

pub unsafe extern "system" fn vkCmdDrawMultiIndexedEXT(
    cb: vk::CommandBuffer,
    count: u32,
    draws: *const vk::MultiDrawIndexedInfoEXT,
    instances: u32,
    first_instance: u32,
    stride: u32,
    vertex_offset: *const i32,
) {
    let draws = packed(draws, count, stride);
    record(
        &C_vkCmdDrawMultiIndexedEXT,
        &[
            cb.as_raw(),
            count as u64,
            address(&draws),
            instances as u64,
            first_instance as u64,
            std::mem::size_of::<vk::MultiDrawIndexedInfoEXT>() as u64,
            vertex_offset as u64,
        ],
    );
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
