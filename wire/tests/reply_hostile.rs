//! The server is untrusted too: whatever reply arrives, the client's `decode_reply` answers `Ok`
//! or a `DecodeError`, never panics, and never writes outside the memory the application
//! handed it: every output buffer sits between guard bytes that must survive, the counts
//! written back never exceed what the application offered, and the application's chains
//! (`sType`, `pNext`, structs Airlock does not carry) are left as they were.
//!
//! For every command with a reply: a valid reply is made by the real path (the request
//! encoded, decoded as the server would, the outputs filled as a driver would, the reply
//! encoded), then fed back truncated at every length, mutated, extended, and replaced by
//! random bytes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use ash::vk;
use bumpalo::Bump;
use wire::codec::{DecodeError, Decoder, Encoder};
use wire::desc::{CommandDesc, Kind, Len, Ret, Ty};
use wire::generated::commands::{handwritten, COMMANDS};
use wire::generated::structs::by_stype;
use wire::interp::{
    decode_reply, decode_request, encode_reply, encode_request, ClientObjects, Handles,
    ServerObjects, MAX_PARAMS,
};

mod support;
use support::*;

/// Identity handles on both sides; new ids rise from 0x1000.
#[derive(Default)]
struct Peer {
    next_id: std::cell::Cell<u64>,
}

impl Handles for Peer {
    fn encode_handle(&self, _: vk::ObjectType, _: bool, raw: u64) -> Result<u64, DecodeError> {
        Ok(raw)
    }
    fn decode_handle(&self, _: vk::ObjectType, _: bool, id: u64) -> Result<u64, DecodeError> {
        Ok(id)
    }
}

impl ClientObjects for Peer {
    fn new_id(&self) -> u64 {
        let id = self.next_id.get().max(0x1000) + 1;
        self.next_id.set(id);
        id
    }
    fn wrap_new(&self, _: vk::ObjectType, _: bool, id: u64) -> u64 {
        id
    }
}

impl ServerObjects for Peer {
    fn check_new(&self, _: vk::ObjectType, _: u64) -> Result<(), DecodeError> {
        Ok(())
    }
}

const GUARD: usize = 64;
const GUARD_BYTE: u8 = 0xA5;

/// One application output buffer, moved between guard bytes.
struct Guarded {
    /// The start of the front guard.
    start: *mut u8,
    len: usize,
}

impl Guarded {
    unsafe fn intact(&self) -> bool {
        let front = std::slice::from_raw_parts(self.start, GUARD);
        let back = std::slice::from_raw_parts(self.start.add(GUARD + self.len), GUARD);
        front.iter().chain(back).all(|b| *b == GUARD_BYTE)
    }
}

/// The application's side of one call: arguments with every output buffer guarded, and the
/// capacities it offered (restored before each reply, as a fresh call would have them).
struct App<'a> {
    g: Gen<'a>,
    args: [u64; MAX_PARAMS],
    guards: Vec<Guarded>,
    counts: Vec<(*mut u8, Ty, u64)>,
    new_ids: Vec<u64>,
    request: Vec<u8>,
}

/// Bytes the output parameter `i` of `cmd` spans in the application's memory.
unsafe fn out_len(cmd: &CommandDesc, i: usize, base: *const u8) -> Option<usize> {
    let n = |len| count_of(len, base, cmd.params) as usize;
    Some(match cmd.params[i].kind {
        Kind::Out(ty) | Kind::InOutCount(ty) => ty.c_size(),
        Kind::OutArray { elem, len } => elem.c_size() * n(len),
        Kind::OutCounted { elem, count } => elem.c_size() * n(Len::Sibling(count)),
        Kind::OutBytes { len } => n(len),
        Kind::OutCountedBytes { count } => n(Len::Sibling(count)),
        _ => return None,
    })
}

impl<'a> App<'a> {
    unsafe fn new(cmd: &CommandDesc, seed: u64, bump: &'a Bump) -> App<'a> {
        let mut app = App {
            g: Gen::new(seed, bump),
            args: [0; MAX_PARAMS],
            guards: Vec::new(),
            counts: Vec::new(),
            new_ids: Vec::new(),
            request: Vec::new(),
        };
        let base = app.args.as_mut_ptr() as *mut u8;
        app.g.args(cmd, base);
        // Sizes first: an array's size reads its count through the count's old address.
        let sizes: Vec<Option<usize>> = (0..cmd.params.len())
            .map(|i| out_len(cmd, i, base))
            .collect();
        for (i, size) in sizes.into_iter().enumerate() {
            let old = app.args[i] as *mut u8;
            let Some(len) = size.filter(|_| !old.is_null()) else {
                continue;
            };
            let start = zeroed(bump, len + 2 * GUARD, 16);
            ptr::write_bytes(start, GUARD_BYTE, GUARD);
            ptr::write_bytes(start.add(GUARD + len), GUARD_BYTE, GUARD);
            let new = start.add(GUARD);
            ptr::copy_nonoverlapping(old, new, len);
            app.args[i] = new as u64;
            // What the synthesizer remembered inside the old buffer now lives in the new one.
            let moved = |p: *const u8| -> *const u8 {
                if p >= old as *const u8 && p < old.add(len) as *const u8 {
                    new.offset(p.offset_from(old))
                } else {
                    p
                }
            };
            for l in &mut app.g.links {
                l.0 = moved(l.0);
            }
            for s in &mut app.g.stypes {
                s.0 = moved(s.0);
            }
            app.guards.push(Guarded { start, len });
            if let Kind::InOutCount(ty) = cmd.params[i].kind {
                app.counts.push((new, ty, rd(ty, new)));
            }
        }
        let mut e = Encoder::new();
        encode_request(&mut e, cmd, &app.args, &Peer::default(), &mut app.new_ids)
            .unwrap_or_else(|err| panic!("{}: encode_request: {err}", cmd.name));
        app.request = e.buf;
        app
    }

    /// Decodes `reply` into the application's memory (with its capacities restored) and checks
    /// that nothing outside its buffers and nothing of its chains changed.
    unsafe fn feed(
        &self,
        cmd: &CommandDesc,
        reply: &[u8],
    ) -> Result<Result<u64, DecodeError>, String> {
        for &(p, ty, v) in &self.counts {
            wr(ty, p, v);
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            decode_reply(
                &mut Decoder::new(reply),
                cmd,
                &self.args,
                &Peer::default(),
                &self.new_ids,
            )
        }))
        .map_err(|p| {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("decode_reply panicked on {} bytes: {what}", reply.len())
        })?;
        if let Some(k) = self.guards.iter().position(|g| !g.intact()) {
            return Err(format!(
                "a reply of {} bytes wrote past output buffer {k} ({} bytes)",
                reply.len(),
                self.guards[k].len
            ));
        }
        for &(p, ty, cap) in &self.counts {
            let filled = self.counts_array(cmd, p);
            if filled && rd(ty, p) > cap {
                return Err(format!(
                    "returned count {} exceeds the capacity {cap} offered",
                    rd(ty, p)
                ));
            }
        }
        self.g.check_untouched()?;
        Ok(r)
    }

    /// Whether the count at `p` sizes an array the application passed.
    unsafe fn counts_array(&self, cmd: &CommandDesc, p: *mut u8) -> bool {
        let Some(i) = (0..cmd.params.len()).find(|&i| self.args[i] as *mut u8 == p) else {
            return false;
        };
        cmd.params.iter().enumerate().any(|(j, f)| {
            matches!(f.kind, Kind::OutCounted { count, .. } | Kind::OutCountedBytes { count } if count as usize == i)
                && self.args[j] != 0
        })
    }
}

/// Fills the values of an output struct (and its chain) the way a driver would.
unsafe fn drive_value(ty: Ty, p: *mut u8, r: &mut Seeded) {
    match ty {
        Ty::Struct(d) => {
            for f in d.fields {
                let fp = p.add(f.offset);
                match f.kind {
                    Kind::Value(t) | Kind::Object(t) => drive_value(t, fp, r),
                    Kind::FixedArray(t, n) => {
                        for k in 0..n as usize {
                            drive_value(t, fp.add(k * t.c_size()), r);
                        }
                    }
                    Kind::PNext => {
                        let mut node = rd_ptr(fp);
                        while !node.is_null() {
                            if let Some(sd) = by_stype(vk::StructureType::from_raw(rd_stype(node)))
                            {
                                for f in sd.fields {
                                    if let Kind::Value(t) | Kind::Object(t) = f.kind {
                                        drive_value(t, node.add(f.offset), r);
                                    }
                                }
                            }
                            node = rd_ptr(node.add(8));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ty::U8 | Ty::U16 | Ty::U32 | Ty::I32 | Ty::F32 | Ty::U64 | Ty::I64 | Ty::F64 => {
            wr(ty, p, r.next())
        }
        Ty::Usize => wr(ty, p, r.next() & 0xFFFF_FFFF),
        Ty::Handle(_) | Ty::Dispatchable(_) => wr(Ty::U64, p, r.next() | 1),
        Ty::Union(n, _) => {
            for k in 0..n {
                *p.add(k) = r.next() as u8;
            }
        }
    }
}

/// A valid reply to the application's request, as the server would send it.
unsafe fn valid_reply(cmd: &CommandDesc, app: &App, r: &mut Seeded) -> Vec<u8> {
    let arena = Bump::new();
    let peer = Peer::default();
    let mut call = decode_request(&mut Decoder::new(&app.request), cmd, &arena, &peer)
        .unwrap_or_else(|e| panic!("{}: decode_request: {e}", cmd.name));
    let base = call.args.as_mut_ptr() as *mut u8;
    // Counts first (within what the application offered), then the elements they count.
    for (i, f) in cmd.params.iter().enumerate() {
        if let Kind::InOutCount(ty) = f.kind {
            let q = call.args[i] as *mut u8;
            if q.is_null() {
                continue;
            }
            let filled = app.counts_array(cmd, app.args[i] as *mut u8);
            let v = if filled {
                r.below(rd(ty, q) + 1)
            } else {
                r.below(11)
            };
            wr(ty, q, v);
        }
    }
    for (i, f) in cmd.params.iter().enumerate() {
        let q = call.args[i] as *mut u8;
        if q.is_null() {
            continue;
        }
        let (elem, n) = match f.kind {
            Kind::Out(ty) => (ty, 1),
            Kind::OutArray { elem, len } => (elem, count_of(len, base, cmd.params)),
            Kind::OutCounted { elem, count } => {
                (elem, count_of(Len::Sibling(count), base, cmd.params))
            }
            Kind::OutBytes { len } => (Ty::U8, count_of(len, base, cmd.params)),
            Kind::OutCountedBytes { count } => {
                (Ty::U8, count_of(Len::Sibling(count), base, cmd.params))
            }
            _ => continue,
        };
        for k in 0..n as usize {
            drive_value(elem, q.add(k * elem.c_size()), r);
        }
    }
    let ret = match cmd.ret {
        Ret::Result => [0i64, 0, 5, -1, -4][r.below(5) as usize] as u64,
        Ret::Void => 0,
        _ => r.next() & 0xFFFF_FFFF,
    };
    let mut e = Encoder::new();
    encode_reply(&mut e, cmd, &call, ret, &peer)
        .unwrap_or_else(|err| panic!("{}: encode_reply: {err}", cmd.name));
    e.buf
}

/// 1 to 4 edits of the words decoders branch on: counts, presence flags, structure types.
fn mutate(msg: &mut Vec<u8>, r: &mut Seeded) {
    for _ in 0..1 + r.below(4) {
        let words = msg.len() / 4;
        match r.below(7) {
            0 | 1 if words > 0 => {
                let at = 4 * r.below(words as u64) as usize;
                let v: u32 = [
                    0,
                    1,
                    2,
                    3,
                    7,
                    64,
                    0xFFFF,
                    0x8000_0000,
                    u32::MAX,
                    r.next() as u32,
                ][r.below(10) as usize];
                msg[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            2 if words > 1 => {
                let at = 4 * r.below(words as u64 - 1) as usize;
                let v: u64 = [u64::MAX, 1 << 32, 1 << 40, 6, r.next()][r.below(5) as usize];
                msg[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            3 if !msg.is_empty() => {
                let at = r.below(msg.len() as u64) as usize;
                msg[at] ^= 1 << r.below(8);
            }
            4 => {
                let at = 4 * r.below(words as u64 + 1) as usize;
                let ins: Vec<u8> = (0..4 * (1 + r.below(4)))
                    .map(|_| if r.one_in(2) { 0 } else { r.next() as u8 })
                    .collect();
                msg.splice(at..at, ins);
            }
            5 if words > 0 => {
                let at = 4 * r.below(words as u64) as usize;
                msg.drain(at..at + 4);
            }
            _ => msg.truncate(r.below(msg.len() as u64 + 1) as usize),
        }
    }
}

fn replied_commands() -> Vec<&'static CommandDesc> {
    COMMANDS
        .iter()
        .copied()
        .filter(|c| !(handwritten(c.id) && c.params.is_empty()) && c.needs_reply())
        .collect()
}

/// Runs `case` for seeds `0..seeds` of every command with a reply; reports every failure.
fn for_each(seeds: u64, case: impl Fn(&'static CommandDesc, u64) -> Result<(), String>) {
    let cmds = replied_commands();
    let failures: Vec<String> = cmds
        .iter()
        .flat_map(|&cmd| {
            (0..seeds).find_map(|s| {
                case(cmd, s)
                    .err()
                    .map(|e| format!("{} (seed {s}): {e}", cmd.name))
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} commands failed:\n{}",
        failures.len(),
        cmds.len(),
        failures.join("\n")
    );
}

#[test]
fn valid_replies_are_accepted_and_stay_in_bounds() {
    for_each(8, |cmd, seed| unsafe {
        let bump = Bump::new();
        let app = App::new(cmd, seed, &bump);
        let reply = valid_reply(cmd, &app, &mut Seeded(seed ^ 0x5EED));
        match app.feed(cmd, &reply)? {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("valid reply refused: {e}")),
        }
    });
}

#[test]
fn truncated_and_extended_replies_are_refused() {
    for_each(4, |cmd, seed| unsafe {
        let bump = Bump::new();
        let app = App::new(cmd, seed, &bump);
        let reply = valid_reply(cmd, &app, &mut Seeded(seed ^ 0x7EED));
        // Every prefix of short replies; a sample of the long ones.
        let step = (reply.len() / 64).max(1);
        for cut in (0..reply.len()).step_by(step) {
            if app.feed(cmd, &reply[..cut])?.is_ok() {
                return Err(format!("accepted {cut} of {} bytes", reply.len()));
            }
        }
        let mut longer = reply.clone();
        longer.extend_from_slice(&[0; 4]);
        match app.feed(cmd, &longer)? {
            Err(DecodeError::Trailing(4)) => Ok(()),
            other => Err(format!("4 trailing bytes: {other:?}")),
        }
    });
}

#[test]
fn mutated_replies_never_panic_nor_write_outside_the_applications_memory() {
    for_each(6, |cmd, seed| unsafe {
        let bump = Bump::new();
        let app = App::new(cmd, seed, &bump);
        let mut r = Seeded(seed ^ 0xBAD);
        let reply = valid_reply(cmd, &app, &mut r);
        for _ in 0..24 {
            let mut m = reply.clone();
            mutate(&mut m, &mut r);
            let _ = app.feed(cmd, &m)?;
        }
        Ok(())
    });
}

#[test]
fn random_replies_never_panic_nor_write_outside_the_applications_memory() {
    for_each(4, |cmd, seed| unsafe {
        let bump = Bump::new();
        let app = App::new(cmd, seed, &bump);
        let mut r = Seeded(seed ^ 0xF00D);
        for _ in 0..8 {
            let len = 4 * r.below(128) as usize;
            let m: Vec<u8> = (0..len)
                .map(|_| match r.below(4) {
                    0 => 0,
                    1 => 0xFF,
                    _ => r.next() as u8,
                })
                .collect();
            let _ = app.feed(cmd, &m)?;
        }
        Ok(())
    });
}

#[test]
fn a_count_beyond_the_capacity_offered_is_refused_before_any_element_is_written() {
    let cmd = COMMANDS
        .iter()
        .find(|c| c.name == "vkGetPhysicalDeviceQueueFamilyProperties")
        .unwrap();
    let mut family = [[GUARD_BYTE; 24]; 3];
    let mut count = 2u32;
    let args = [
        0x8000_0000_0000_0001u64,
        &mut count as *mut u32 as u64,
        family[1].as_mut_ptr() as u64,
    ];
    let mut reply = Encoder::new();
    reply.u64(0);
    reply.u64(3);
    for _ in 0..3 {
        for _ in 0..6 {
            reply.u32(0);
        }
    }
    // SAFETY: the arguments of the call, its array of `count` elements between two guards.
    let r = unsafe {
        decode_reply(
            &mut Decoder::new(&reply.buf),
            cmd,
            &args,
            &Peer::default(),
            &[],
        )
    };
    assert!(r.is_err(), "{r:?}");
    assert_eq!(count, 2, "the count the application offered stays");
    assert!(family.iter().flatten().all(|b| *b == GUARD_BYTE));

    // A 32-bit count above 2^32 with no array to fill is refused, not truncated.
    let mut count = 0u32;
    let args = [0x8000_0000_0000_0001u64, &mut count as *mut u32 as u64, 0];
    let mut reply = Encoder::new();
    reply.u64(0);
    reply.u64(1 << 32 | 1);
    // SAFETY: as above, without an array.
    let r = unsafe {
        decode_reply(
            &mut Decoder::new(&reply.buf),
            cmd,
            &args,
            &Peer::default(),
            &[],
        )
    };
    assert_eq!(r, Err(DecodeError::Invalid("returned count")));
}
