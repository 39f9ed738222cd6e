//! The generic path: every entry point takes it unless its family handles the command itself.
//! The call is encoded from the application's arguments (`wire::interp`, driven by the tables
//! generated from vk.xml), carried over the connection, and the reply written back into them.
//! `vkCmd*` calls do not come here: their entry points record them (`command_buffer.rs`).

use crate::allocation;
use crate::answers::{self, Answers};
use crate::conn::{self, Connection, Send};
use crate::limits::Credit;
use crate::log::log;
use crate::objects::{header, ClientCx, NoFacts};
use ash::vk;
use std::cell::RefCell;
use std::sync::Arc;
use wire::codec::{Decoder, Encoder};
use wire::desc::{CommandDesc, Level, Ret};
use wire::frame::{self, Status};
use wire::ignored::Facts;
use wire::interp;
use wire::private::CREDIT;

thread_local! {
    static BUFS: RefCell<(Encoder, Vec<u8>, Vec<u64>)> = RefCell::new((Encoder::new(), Vec::new(), Vec::new()));
}

/// Carries `cmd` with the application's arguments (each widened to 64 bits) to the server of
/// the object it is called on, and returns the C result widened likewise.
pub fn call(cmd: &'static CommandDesc, args: &[u64]) -> u64 {
    call_with(cmd, args, &NoFacts)
}

/// [`call`], with what the caller's family knows of the objects, for the members Vulkan says
/// are ignored (`wire::ignored`).
pub fn call_with(cmd: &'static CommandDesc, args: &[u64], facts: &dyn Facts) -> u64 {
    debug_assert!(!cmd.recorded, "{} is recorded, not called", cmd.name);
    let conn = match connection(cmd, args) {
        Ok(c) => c,
        Err(r) => return failure(cmd, r),
    };
    // SAFETY: the application's arguments, valid as Vulkan requires of them.
    let reserved = match unsafe { allocation::reserve(cmd, args) } {
        Ok(r) => r,
        Err(r) => {
            // SAFETY: as above.
            unsafe { interp::clear_created(cmd, args) }.ok();
            return failure(cmd, r);
        }
    };
    let r = carry(&conn, cmd, args, Send::from(cmd.needs_reply()), facts);
    if let Some(reserved) = reserved {
        // SAFETY: the call returned; the records were reserved for it.
        unsafe { allocation::created(reserved) };
    }
    if let Some(i) = cmd.destroys {
        // SAFETY: the application's arguments to a destroying command, as Vulkan requires them.
        unsafe {
            crate::private_data::destroyed(cmd, i, args);
            allocation::destroyed(cmd, i, args);
        }
    }
    if cmd.ret == Ret::Result && (r as i64 as i32) == vk::Result::ERROR_DEVICE_LOST.as_raw() {
        log!(debug, "airlock: {} returned VK_ERROR_DEVICE_LOST", cmd.name);
    }
    r
}

/// A `vkCreate*(parent, info, allocator, out)` call on the generic path, as a `VkResult`.
pub fn create<I, A, O>(
    cmd: &'static CommandDesc,
    parent: u64,
    info: *const I,
    allocator: *const A,
    out: *mut O,
) -> vk::Result {
    let args = [parent, info as u64, allocator as u64, out as u64];
    vk::Result::from_raw(call(cmd, &args) as i32)
}

/// Sends a call without waiting for it, for calls whose result the family answers itself
/// (`vkBeginCommandBuffer`, `vkFreeDescriptorSets` …). The server still applies them in order.
pub fn post(cmd: &'static CommandDesc, args: &[u64], facts: &dyn Facts) -> vk::Result {
    post_as(cmd, args, facts, Send::Post)
}

/// [`post`], without waking the server for it: for calls whose effect only later calls observe
/// (`vkResetFences`: the host fence matters to the submission that uses it next).
pub fn post_quiet(cmd: &'static CommandDesc, args: &[u64], facts: &dyn Facts) -> vk::Result {
    post_as(cmd, args, facts, Send::Quiet)
}

fn post_as(cmd: &'static CommandDesc, args: &[u64], facts: &dyn Facts, how: Send) -> vk::Result {
    debug_assert!(!cmd.params.iter().any(|p| p.kind.is_output()));
    let conn = match connection(cmd, args) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let r = vk::Result::from_raw(carry(&conn, cmd, args, how, facts) as i32);
    if let Some(i) = cmd.destroys {
        // SAFETY: the application's arguments to a destroying command, as Vulkan requires them.
        unsafe { crate::private_data::destroyed(cmd, i, args) };
    }
    r
}

/// Sends a creating call without waiting for it, for creations its family knows will succeed
/// (`vkAllocateDescriptorSets` within its pool's accounting): the client names new objects, so
/// their handles are known at once and written to `out`, `count` of them.
///
/// # Safety
/// `args` are the application's arguments for `cmd`; `out` has room for `count` handles, the
/// objects `cmd` creates.
pub unsafe fn post_creating(
    cmd: &'static CommandDesc,
    args: &[u64],
    facts: &dyn Facts,
    out: *mut u64,
    count: usize,
) -> vk::Result {
    let conn = match connection(cmd, args) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let r = vk::Result::from_raw(carry(&conn, cmd, args, Send::Post, facts) as i32);
    if r == vk::Result::SUCCESS {
        BUFS.with(|b| {
            let new_ids = &b.borrow().2;
            debug_assert_eq!(new_ids.len(), count);
            for (k, id) in new_ids.iter().take(count).enumerate() {
                out.add(k).write(*id);
            }
        });
    }
    r
}

/// Whether `n` objects may be created by a posted call on device wrapper `device`: room the
/// server set aside under its object limit for the device (`limits.rs`), asked for when short.
///
/// # Safety
/// `device` is a live device wrapper.
pub unsafe fn room_for_posted(device: u64, n: usize) -> bool {
    let h = header(device);
    h.families.get::<Credit>().take(n as u64, |wanted| {
        let conn = h.conn();
        let mut body = Vec::new();
        let request = [&h.id.to_le_bytes()[..], &wanted.to_le_bytes()];
        match conn.exchange_parts(CREDIT, &request, true, &mut body) {
            Ok(Some(Status::Ok)) => Decoder::new(&body).u64().ok(),
            Ok(_) => None,
            Err(e) => {
                conn.lose(&format!("CREDIT: {e}"));
                None
            }
        }
    })
}

/// A creating call on device wrapper `args[0]` that makes `n` objects into `out`: posted when
/// `plain` (only a lack of memory could make the host refuse it) and the object limit has room
/// set aside for them ([`room_for_posted`]), else a call. A posted creation the host still
/// refuses fails the device's next synchronisation (`server/src/queue.rs`,
/// `after_failed_post`).
///
/// # Safety
/// `args` are the application's arguments to `cmd`, whose first is a live device wrapper and
/// whose new objects go to `out`, room for `n`.
pub unsafe fn create_posted_if(
    plain: bool,
    cmd: &'static CommandDesc,
    args: &[u64],
    out: *mut u64,
    n: usize,
) -> vk::Result {
    if plain && room_for_posted(args[0], n) {
        post_creating(cmd, args, &NoFacts, out, n)
    } else {
        vk::Result::from_raw(call(cmd, args) as i32)
    }
}

/// The connection of the object a call is made on (its first argument), or the process's for
/// a global command.
pub fn connection(cmd: &CommandDesc, args: &[u64]) -> Result<Arc<Connection>, vk::Result> {
    match args.first() {
        Some(&h) if h != 0 && cmd.level != Level::Global => {
            // SAFETY: the first argument of a non-global command is a live dispatchable handle.
            Ok(Arc::clone(unsafe { header(h) }.conn()))
        }
        _ => conn::current(),
    }
}

fn carry(
    conn: &Arc<Connection>,
    cmd: &'static CommandDesc,
    args: &[u64],
    how: Send,
    facts: &dyn Facts,
) -> u64 {
    if conn.is_lost() {
        // SAFETY: the application's arguments, valid as Vulkan requires of them.
        return unsafe { after_loss(cmd, args) };
    }
    BUFS.with(|b| {
        let (enc, body, new_ids) = &mut *b.borrow_mut();
        enc.clear();
        new_ids.clear();
        let cx = ClientCx {
            parent: args.first().copied().unwrap_or(0),
            level: cmd.level,
            facts,
        };
        // SAFETY: the application's arguments, valid as Vulkan requires of them.
        if let Err(e) = unsafe { interp::encode_request(enc, cmd, args, &cx, new_ids) } {
            log!(error, "airlock: {}: cannot encode the call: {e}", cmd.name);
            return failure(cmd, vk::Result::ERROR_UNKNOWN);
        }
        // The server drops a client whose request is larger than any message may be; such
        // a call fails alone instead.
        if enc.buf.len() > frame::MAX_MESSAGE {
            log!(
                error,
                "airlock: {}: the request takes {} bytes, more than the {} a message may \
                 hold; VK_ERROR_OUT_OF_HOST_MEMORY",
                cmd.name,
                enc.buf.len(),
                frame::MAX_MESSAGE
            );
            return failure(cmd, vk::Result::ERROR_OUT_OF_HOST_MEMORY);
        }
        // What a physical device says of itself is asked once (`answers.rs`).
        let answers = match args.first() {
            Some(&pd) if pd != 0 && answers::immutable(cmd.id) => {
                // SAFETY: the first argument of these queries is a live physical device.
                Some(unsafe { Answers::of(pd) })
            }
            _ => None,
        };
        let kept = answers.and_then(|a| {
            a.with(cmd.id, &enc.buf, |reply| {
                let mut dc = Decoder::new(reply);
                // SAFETY: the same arguments the request was encoded from.
                unsafe { interp::decode_reply(&mut dc, cmd, args, &cx, new_ids) }.ok()
            })
        });
        if let Some(Some(r)) = kept {
            return r;
        }
        let status = match conn.exchange(cmd.id, &[&enc.buf], how, body) {
            Ok(None) => return 0,
            Ok(Some(s)) => s,
            Err(why) => {
                conn.lose(&format!("{}: {why}", cmd.name));
                // SAFETY: as above.
                return unsafe { after_loss(cmd, args) };
            }
        };
        match status {
            Status::Ok => {
                let mut dc = Decoder::new(body);
                // SAFETY: the same arguments the request was encoded from.
                match unsafe { interp::decode_reply(&mut dc, cmd, args, &cx, new_ids) } {
                    Ok(r) => {
                        if let Some(a) = answers.filter(|_| lasting(cmd, r)) {
                            a.keep(cmd.id, &enc.buf, body);
                        }
                        r
                    }
                    Err(e) => {
                        conn.lose(&format!("{}: malformed reply: {e}", cmd.name));
                        // SAFETY: as above.
                        unsafe { after_loss(cmd, args) }
                    }
                }
            }
            Status::BadRequest => {
                let why = String::from_utf8_lossy(body);
                log!(
                    error,
                    "airlock: the server rejected {}: {}",
                    cmd.name,
                    why.trim_end_matches('\0')
                );
                failure(cmd, vk::Result::ERROR_UNKNOWN)
            }
            Status::Unsupported => {
                log!(
                    warn,
                    "airlock: the host driver does not provide {}",
                    cmd.name
                );
                failure(cmd, vk::Result::ERROR_EXTENSION_NOT_PRESENT)
            }
        }
    })
}

/// Whether a physical device's answer `r` holds for good: not a lack of memory or a loss.
fn lasting(cmd: &CommandDesc, r: u64) -> bool {
    cmd.ret != Ret::Result || lasting_result(vk::Result::from_raw(r as i64 as i32))
}

/// [`lasting`] of a query's `VkResult`: success, or a refusal of what was asked about.
pub fn lasting_result(r: vk::Result) -> bool {
    r.as_raw() >= 0
        || r == vk::Result::ERROR_FORMAT_NOT_SUPPORTED
        || r == vk::Result::ERROR_IMAGE_USAGE_NOT_SUPPORTED_KHR
}

/// What a call gets once the server is gone: the result Vulkan allows that command after a lost
/// device (`VK_ERROR_DEVICE_LOST` where it may return that; see [`CommandDesc::lost`]), and
/// `VK_NULL_HANDLE` for every object it would have created.
///
/// # Safety
/// `args` must be the application's arguments for `cmd`, valid as Vulkan requires.
pub unsafe fn after_loss(cmd: &CommandDesc, args: &[u64]) -> u64 {
    if let Err(e) = interp::clear_created(cmd, args) {
        log!(error, "airlock: {}: {e}", cmd.name);
    }
    failure(cmd, cmd.lost)
}

/// What a call returns when it could not be carried.
pub fn failure(cmd: &CommandDesc, r: vk::Result) -> u64 {
    match cmd.ret {
        Ret::Result => r.as_raw() as i64 as u64,
        _ => 0,
    }
}
