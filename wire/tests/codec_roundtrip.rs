//! Property-based round trips through the one descriptor interpreter (`wire::interp`):
//!
//! - every generated struct codec: a random valid C struct (with a random `pNext` chain, random
//!   arrays, strings and handles) is encoded, decoded into an arena, compared member by member
//!   with the original and encoded again, which must give the very same bytes;
//! - every returned-only struct through the write-back target, into an application struct with
//!   its own chain, which must keep its `sType`s, `pNext`s and foreign chain members;
//! - whole calls of every generated command: the client encodes the request, the server decodes
//!   it, a simulated driver fills the outputs, the server encodes the reply and the client writes
//!   it back into the application's memory, where every value, count and new handle must land.
//!
//! The random instances come from a seed that proptest draws; a failure names the struct or
//! command and the seed.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;

use ash::vk;
use bumpalo::Bump;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use wire::codec::{DecodeError, Decoder, Encoder};
use wire::desc::{CommandDesc, Field, Kind, Len, Ret, StructDesc, Ty};
use wire::generated::commands::COMMANDS;
use wire::generated::structs::{by_stype, ALL};
use wire::interp::{
    decode_reply, decode_request, encode_reply, encode_request, get_struct, put_struct,
    ClientObjects, Handles, ServerObjects, Target, MAX_PARAMS,
};

// ------------------------------------------------------------------ objects on both sides

/// What the client's `wrap_new` turns an id into, so the test can tell a wrapped id from a raw one.
const WRAP: u64 = 0x5A00_0000_0000_0000;

/// Identity handle translation on both sides; records what the interpreter asks of it.
#[derive(Default)]
struct Objects {
    next_id: Cell<u64>,
    checked_new: RefCell<Vec<(vk::ObjectType, u64)>>,
    wrapped: RefCell<Vec<(vk::ObjectType, bool, u64)>>,
}

impl Handles for Objects {
    fn encode_handle(&self, _: vk::ObjectType, _: bool, raw: u64) -> Result<u64, DecodeError> {
        Ok(raw)
    }
    fn decode_handle(&self, _: vk::ObjectType, _: bool, id: u64) -> Result<u64, DecodeError> {
        Ok(id)
    }
}

impl ClientObjects for Objects {
    fn new_id(&self) -> u64 {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        id
    }
    fn wrap_new(&self, ty: vk::ObjectType, dispatchable: bool, id: u64) -> u64 {
        self.wrapped.borrow_mut().push((ty, dispatchable, id));
        id ^ WRAP
    }
}

impl ServerObjects for Objects {
    fn check_new(&self, ty: vk::ObjectType, id: u64) -> Result<(), DecodeError> {
        self.checked_new.borrow_mut().push((ty, id));
        Ok(())
    }
}

/// The chain members of `d` (only those the interpreter carries) starting at the link `link`.
unsafe fn chain_of(d: &StructDesc, link: *const u8) -> Vec<(vk::StructureType, *mut u8)> {
    let mut v = Vec::new();
    let mut n = rd_ptr(link);
    while !n.is_null() {
        let st = vk::StructureType::from_raw(rd_stype(n));
        if d.extended_by.contains(&st) && by_stype(st).is_some() {
            v.push((st, n));
        }
        n = rd_ptr(n.add(8));
    }
    v
}

mod support;
use support::*;

impl Gen<'_> {
    // -------------------------------------------------------------- the simulated driver

    /// Writes random results into an output element the server decoded (walking its chain).
    unsafe fn result(&mut self, ty: Ty, p: *mut u8) {
        match ty {
            Ty::Struct(d) => self.result_struct(d, p, false),
            t => self.value(t, p, 9),
        }
    }

    unsafe fn result_struct(&mut self, d: &StructDesc, p: *mut u8, in_chain: bool) {
        for f in d.fields {
            let fp = p.add(f.offset);
            match f.kind {
                Kind::PNext if !in_chain => {
                    let mut n = rd_ptr(fp);
                    while !n.is_null() {
                        let sd = by_stype(vk::StructureType::from_raw(rd_stype(n)))
                            .expect("server chain member");
                        self.result_struct(sd, n, true);
                        n = rd_ptr(n.add(pnext_offset(sd).unwrap()));
                    }
                }
                Kind::Value(t) | Kind::Object(t) => self.result(t, fp),
                Kind::FixedArray(t, n) => {
                    for i in 0..n as usize {
                        self.result(t, fp.add(i * t.c_size()));
                    }
                }
                _ => {}
            }
        }
    }
}

// ------------------------------------------------------------------ deep comparison

/// Compares the struct `d` at `a` (the original) with `b` (what came out of the codec), member by
/// member, following pointers. `stype`: also compare `sType`s (not for write-back, where the
/// application keeps its own).
unsafe fn cmp_struct(
    d: &StructDesc,
    a: *const u8,
    b: *const u8,
    in_chain: bool,
    stype: bool,
    path: &str,
) -> Result<(), String> {
    for f in d.fields {
        let path = format!("{path}.{}", f.name);
        let (fa, fb) = (a.add(f.offset), b.add(f.offset));
        match f.kind {
            Kind::SType => {
                if stype
                    && (rd_stype(fa) != rd_stype(fb)
                        || Some(rd_stype(fb)) != d.s_type.map(|s| s.as_raw()))
                {
                    return Err(format!("{path}: {} vs {}", rd_stype(fa), rd_stype(fb)));
                }
            }
            Kind::PNext => {
                if !in_chain {
                    let (ca, cb) = (chain_of(d, fa), chain_of(d, fb));
                    let (ta, tb): (Vec<_>, Vec<_>) = (
                        ca.iter().map(|c| c.0).collect(),
                        cb.iter().map(|c| c.0).collect(),
                    );
                    if ta != tb {
                        return Err(format!("{path}: chain {ta:?} vs {tb:?}"));
                    }
                    for ((st, na), (_, nb)) in ca.into_iter().zip(cb) {
                        let sd = by_stype(st).unwrap();
                        cmp_struct(sd, na, nb, true, stype, &format!("{path}->{}", sd.name))?;
                    }
                }
            }
            k => cmp_member(k, f, a, b, d.fields, stype, &path)?,
        }
    }
    Ok(())
}

/// Compares one input member (or parameter) of the structs (or argument lists) at `a` and `b`.
unsafe fn cmp_member(
    k: Kind,
    f: &Field,
    a: *const u8,
    b: *const u8,
    fields: &[Field],
    stype: bool,
    path: &str,
) -> Result<(), String> {
    let (fa, fb) = (a.add(f.offset), b.add(f.offset));
    match k {
        Kind::Value(t) | Kind::Object(t) => cmp_value(t, fa, fb, stype, path),
        Kind::FixedArray(t, n) => {
            for i in 0..n as usize {
                cmp_value(
                    t,
                    fa.add(i * t.c_size()),
                    fb.add(i * t.c_size()),
                    stype,
                    &format!("{path}[{i}]"),
                )?;
            }
            Ok(())
        }
        Kind::Ptr { elem, .. } => match (rd_ptr(fa), rd_ptr(fb)) {
            (pa, pb) if pa.is_null() && pb.is_null() => Ok(()),
            (pa, pb) if !pa.is_null() && !pb.is_null() => {
                cmp_value(elem, pa, pb, stype, &format!("{path}*"))
            }
            (pa, pb) => Err(format!("{path}: pointer {pa:?} vs {pb:?}")),
        },
        Kind::Array { elem, len, .. } => cmp_array(elem, len, fa, fb, a, b, fields, stype, path),
        Kind::Bytes { len } => cmp_array(Ty::U8, len, fa, fb, a, b, fields, stype, path),
        Kind::Str { .. } => cmp_str(rd_ptr(fa), rd_ptr(fb), path),
        Kind::StrArray { len } => {
            let (na, nb) = (count_of(len, a, fields), count_of(len, b, fields));
            if na != nb {
                return Err(format!("{path}: count {na} vs {nb}"));
            }
            let (pa, pb) = (rd_ptr(fa), rd_ptr(fb));
            let present = !pa.is_null() && na > 0;
            if present == pb.is_null() {
                return Err(format!("{path}: pointer {pa:?} (count {na}) vs {pb:?}"));
            }
            if present {
                for i in 0..na as usize {
                    cmp_str(
                        rd_ptr(pa.add(8 * i)),
                        rd_ptr(pb.add(8 * i)),
                        &format!("{path}[{i}]"),
                    )?;
                }
            }
            Ok(())
        }
        Kind::Null => match rd_ptr(fb) {
            p if p.is_null() => Ok(()),
            p => Err(format!(
                "{path}: a pointer that never crosses arrived as {p:?}"
            )),
        },
        _ => Ok(()),
    }
}

/// Compares arrays of `elem` whose pointers are at `fa`/`fb` in the structs at `a`/`b`.
#[allow(clippy::too_many_arguments)]
unsafe fn cmp_array(
    elem: Ty,
    len: Len,
    fa: *const u8,
    fb: *const u8,
    a: *const u8,
    b: *const u8,
    fields: &[Field],
    stype: bool,
    path: &str,
) -> Result<(), String> {
    let (na, nb) = (count_of(len, a, fields), count_of(len, b, fields));
    if na != nb {
        return Err(format!("{path}: count {na} vs {nb}"));
    }
    let (pa, pb) = (rd_ptr(fa), rd_ptr(fb));
    let present = !pa.is_null() && na > 0;
    if present == pb.is_null() {
        return Err(format!("{path}: pointer {pa:?} (count {na}) vs {pb:?}"));
    }
    if present {
        for i in 0..na as usize {
            cmp_value(
                elem,
                pa.add(i * elem.c_size()),
                pb.add(i * elem.c_size()),
                stype,
                &format!("{path}[{i}]"),
            )?;
        }
    }
    Ok(())
}

unsafe fn cmp_str(a: *const u8, b: *const u8, path: &str) -> Result<(), String> {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ok(()),
        (false, false) => {
            let (sa, sb) = (CStr::from_ptr(a as *const _), CStr::from_ptr(b as *const _));
            if sa == sb {
                Ok(())
            } else {
                Err(format!("{path}: {sa:?} vs {sb:?}"))
            }
        }
        _ => Err(format!("{path}: string {a:?} vs {b:?}")),
    }
}

unsafe fn cmp_value(
    ty: Ty,
    a: *const u8,
    b: *const u8,
    stype: bool,
    path: &str,
) -> Result<(), String> {
    match ty {
        Ty::Struct(d) => cmp_struct(d, a, b, false, stype, path),
        _ => {
            let n = ty.c_size();
            let (sa, sb) = (
                std::slice::from_raw_parts(a, n),
                std::slice::from_raw_parts(b, n),
            );
            if sa == sb {
                Ok(())
            } else {
                Err(format!("{path}: {sa:02x?} vs {sb:02x?}"))
            }
        }
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    format!(
        "encodings differ at byte {at} (lengths {} and {})",
        a.len(),
        b.len()
    )
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        max_shrink_iters: 0,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs `case` for `cases` random seeds per item and reports every item that failed.
fn for_each_seeded<T: Copy>(
    items: &[T],
    name: impl Fn(T) -> &'static str,
    cases: u32,
    case: impl Fn(T, u64) -> Result<(), String>,
) {
    let mut failures = Vec::new();
    for &item in items {
        let mut runner = TestRunner::new(config(cases));
        if let Err(e) = runner.run(&any::<u64>(), |seed| {
            case(item, seed).map_err(TestCaseError::fail)
        }) {
            failures.push(format!("{}: {e}", name(item)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        items.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------------------------ structs

fn struct_round_trip(d: &'static StructDesc, seed: u64) -> Result<(), String> {
    let app = Bump::new();
    let mut g = Gen::new(seed, &app);
    let a = g.alloc(d.size, d.align);
    let h = Objects::default();
    let mut e1 = Encoder::new();
    // SAFETY: `a` is a valid `d` built by `Gen`; the decoded struct lives in `arena`.
    unsafe {
        g.fill(d, a, false, 0);
        put_struct(&mut e1, d, a, &h, false).map_err(|e| format!("encode: {e}"))?;
        let arena = Bump::new();
        let b = zeroed(&arena, d.size, d.align);
        let mut dc = Decoder::new(&e1.buf);
        get_struct(&mut dc, d, b, Target::Arena(&arena), &h, false)
            .map_err(|e| format!("decode: {e:?}"))?;
        dc.finish().map_err(|e| format!("decode: {e:?}"))?;
        cmp_struct(d, a, b, false, true, d.name)?;
        let mut e2 = Encoder::new();
        put_struct(&mut e2, d, b, &h, false).map_err(|e| format!("re-encode: {e}"))?;
        if e1.buf != e2.buf {
            return Err(first_difference(&e1.buf, &e2.buf));
        }
        g.check_untouched()
    }
}

#[test]
fn every_struct_round_trips() {
    for_each_seeded(ALL, |d| d.name, 32, struct_round_trip);
}

fn struct_write_back(d: &'static StructDesc, seed: u64) -> Result<(), String> {
    let app = Bump::new();
    let mut g = Gen::new(seed, &app);
    let h = Objects::default();
    let mut e = Encoder::new();
    // SAFETY: `a` and `b` are valid `d`s built by `Gen`, `b` with a chain of the same shape.
    unsafe {
        let a = g.alloc(d.size, d.align);
        g.fill(d, a, false, 0);
        put_struct(&mut e, d, a, &h, false).map_err(|e| format!("encode: {e}"))?;
        let shape: Vec<vk::StructureType> = match pnext_offset(d) {
            Some(off) => chain_of(d, a.add(off)).into_iter().map(|c| c.0).collect(),
            None => Vec::new(),
        };
        let b = g.alloc(d.size, d.align);
        g.out_elem(Ty::Struct(d), b, Some(&shape));
        let mut dc = Decoder::new(&e.buf);
        get_struct(&mut dc, d, b, Target::Writeback, &h, false)
            .map_err(|e| format!("write-back: {e:?}"))?;
        dc.finish().map_err(|e| format!("write-back: {e:?}"))?;
        cmp_struct(d, a, b, false, false, d.name)?;
        g.check_untouched()
    }
}

#[test]
fn every_returned_struct_writes_back_into_the_applications_chain() {
    let returned: Vec<&'static StructDesc> =
        ALL.iter().copied().filter(|d| d.returned_only).collect();
    assert!(
        returned.len() > 40,
        "only {} returned-only structs",
        returned.len()
    );
    for_each_seeded(&returned, |d| d.name, 32, struct_write_back);
}

/// `Ty::min_wire_size` bounds how many elements a count from a peer may claim; it must never be
/// more than what an element really takes, or valid messages are refused as `TooMany`.
#[test]
fn min_wire_size_is_a_lower_bound_of_every_struct_encoding() {
    let mut failures = Vec::new();
    for d in ALL {
        let app = Bump::new();
        let mut g = Gen::new(1, &app);
        g.minimal = true;
        let a = g.alloc(d.size, d.align);
        let mut e = Encoder::new();
        // SAFETY: `a` is a valid `d`.
        unsafe {
            g.fill(d, a, false, 0);
            put_struct(&mut e, d, a, &Objects::default(), false).unwrap();
        }
        let claimed = Ty::Struct(d).min_wire_size();
        if e.len() < claimed {
            failures.push(format!(
                "{}: min_wire_size {claimed}, smallest encoding {}",
                d.name,
                e.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} structs encode smaller than min_wire_size claims:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The interpreter decodes members in order, so a count must come before every array it sizes,
/// in structs and in parameter lists alike.
#[test]
fn lengths_precede_the_arrays_they_size() {
    fn check(owner: &str, fields: &[Field], failures: &mut Vec<String>) {
        for (j, f) in fields.iter().enumerate() {
            let len = match f.kind {
                Kind::Array { len, .. }
                | Kind::StrArray { len }
                | Kind::Bytes { len }
                | Kind::OutArray { len, .. }
                | Kind::OutBytes { len } => len,
                Kind::OutCounted { count, .. } | Kind::OutCountedBytes { count } => {
                    Len::Sibling(count)
                }
                _ => continue,
            };
            let i = match len {
                Len::Sibling(i) | Len::SampleMaskWords(i) => i,
                Len::SiblingMember { index, .. } => index,
                Len::Const(_) => continue,
            } as usize;
            let ok = i < j
                && match (len, fields.get(i).map(|l| l.kind)) {
                    (Len::Sibling(_), Some(Kind::Value(Ty::U32 | Ty::U64 | Ty::Usize))) => {
                        !matches!(
                            f.kind,
                            Kind::OutCounted { .. } | Kind::OutCountedBytes { .. }
                        )
                    }
                    (Len::Sibling(_), Some(Kind::InOutCount(_))) => {
                        matches!(
                            f.kind,
                            Kind::OutCounted { .. } | Kind::OutCountedBytes { .. }
                        )
                    }
                    (Len::SampleMaskWords(_), Some(Kind::Value(Ty::U32 | Ty::I32))) => true,
                    (
                        Len::SiblingMember { .. },
                        Some(Kind::Ptr {
                            elem: Ty::Struct(_),
                            optional: false,
                        }),
                    ) => true,
                    _ => false,
                };
            if !ok {
                failures.push(format!("{owner}.{}: length {len:?}", f.name));
            }
        }
    }
    let mut failures = Vec::new();
    for d in ALL {
        check(d.name, d.fields, &mut failures);
    }
    for c in COMMANDS {
        check(c.name, c.params, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ------------------------------------------------------------------ whole calls

fn is_output(k: Kind) -> bool {
    k.is_output()
}

/// Output elements of `p` for a parameter and how many of them the request names.
unsafe fn out_elems(cmd: &CommandDesc, i: usize, base: *const u8) -> Option<(Ty, *mut u8, usize)> {
    let f = &cmd.params[i];
    let p = rd_ptr(base.add(f.offset));
    let (ty, n) = match f.kind {
        Kind::Out(t) => (t, 1),
        Kind::OutArray { elem, len } => (elem, count_of(len, base, cmd.params)),
        Kind::OutCounted { elem, count } => (elem, count_of(Len::Sibling(count), base, cmd.params)),
        Kind::OutBytes { len } => (Ty::U8, count_of(len, base, cmd.params)),
        Kind::OutCountedBytes { count } => {
            (Ty::U8, count_of(Len::Sibling(count), base, cmd.params))
        }
        _ => return None,
    };
    if p.is_null() {
        None
    } else {
        Some((ty, p, n as usize))
    }
}

fn is_new_handle(cmd: &CommandDesc, ty: Ty) -> bool {
    cmd.creates && matches!(ty, Ty::Handle(_) | Ty::Dispatchable(_))
}

impl Gen<'_> {
    /// Plays the host driver: writes counts and results into the decoded call's outputs.
    unsafe fn drive(&mut self, cmd: &CommandDesc, base: *mut u8) {
        for (i, f) in cmd.params.iter().enumerate() {
            if let Kind::InOutCount(ty) = f.kind {
                let q = rd_ptr(base.add(f.offset));
                let cap = rd(ty, q);
                let filled = cmd.params.iter().any(|p| {
                    matches!(p.kind, Kind::OutCounted { count, .. } | Kind::OutCountedBytes { count } if count as usize == i)
                        && !rd_ptr(base.add(p.offset)).is_null()
                });
                wr(
                    ty,
                    q,
                    if filled {
                        self.rng.below(cap + 1)
                    } else {
                        self.rng.below(11)
                    },
                );
            }
        }
        for i in 0..cmd.params.len() {
            if let Some((ty, q, n)) = out_elems(cmd, i, base) {
                for k in 0..n {
                    let e = q.add(k * ty.c_size());
                    if is_new_handle(cmd, ty) {
                        // The host's own handle, which stays on the server. Pipeline commands
                        // may leave some VK_NULL_HANDLE, whatever they return.
                        let null = cmd.name.contains("Pipelines") && self.rng.below(3) == 0;
                        wr(Ty::U64, e, if null { 0 } else { self.rng.next() | 1 });
                    } else {
                        self.result(ty, e);
                    }
                }
            }
        }
    }
}

fn call_round_trip(cmd: &'static CommandDesc, seed: u64) -> Result<(), String> {
    let app = Bump::new();
    let mut g = Gen::new(seed, &app);
    let mut args = [0u64; MAX_PARAMS];
    let base = args.as_mut_ptr() as *mut u8;
    let client = Objects::default();
    client.next_id.set(1000 + (seed % 1000) * 1000);
    let server = Objects::default();
    let arena = Bump::new();
    let mut req = Encoder::new();
    let mut new_ids = Vec::new();
    // SAFETY: the arguments are built by `Gen` as Vulkan requires; the server's point into `arena`.
    unsafe {
        g.args(cmd, base);
        encode_request(&mut req, cmd, &args, &client, &mut new_ids)
            .map_err(|e| format!("encode_request: {e}"))?;
        let mut call = decode_request(&mut Decoder::new(&req.buf), cmd, &arena, &server)
            .map_err(|e| format!("decode_request: {e:?}"))?;
        let sbase = call.args.as_mut_ptr() as *mut u8;

        // The server sees the application's inputs and the shape of its outputs.
        let mut expected_new = Vec::new();
        for (i, f) in cmd.params.iter().enumerate() {
            let path = format!("{}.{}", cmd.name, f.name);
            if !is_output(f.kind) {
                cmp_member(f.kind, f, base, sbase, cmd.params, true, &path)?;
                continue;
            }
            let (ap, sp) = (rd_ptr(base.add(f.offset)), rd_ptr(sbase.add(f.offset)));
            if ap.is_null() != sp.is_null() {
                return Err(format!(
                    "{path}: application pointer {ap:?}, server pointer {sp:?}"
                ));
            }
            if let Kind::InOutCount(ty) = f.kind {
                if rd(ty, ap) != rd(ty, sp) {
                    return Err(format!(
                        "{path}: capacity {} arrived as {}",
                        rd(ty, ap),
                        rd(ty, sp)
                    ));
                }
            }
            let (Some((ty, aq, n)), Some((_, sq, sn))) =
                (out_elems(cmd, i, base), out_elems(cmd, i, sbase))
            else {
                continue;
            };
            if n != sn {
                return Err(format!(
                    "{path}: {n} output elements, server allocated {sn}"
                ));
            }
            for k in 0..n {
                if is_new_handle(cmd, ty) {
                    expected_new.push((ty, sq.add(8 * k) as *const u64));
                } else if let Ty::Struct(d) = ty {
                    let (ae, se) = (aq.add(k * d.size), sq.add(k * d.size));
                    if d.s_type
                        .map(|s| s.as_raw())
                        .is_some_and(|s| s != rd_stype(se))
                    {
                        return Err(format!("{path}[{k}]: server sType {}", rd_stype(se)));
                    }
                    if let Some(off) = pnext_offset(d) {
                        let ta: Vec<_> =
                            chain_of(d, ae.add(off)).into_iter().map(|c| c.0).collect();
                        let ts: Vec<_> =
                            chain_of(d, se.add(off)).into_iter().map(|c| c.0).collect();
                        if ta != ts {
                            return Err(format!(
                                "{path}[{k}]: chain shape {ta:?} arrived as {ts:?}"
                            ));
                        }
                    }
                }
            }
        }
        if expected_new.len() != new_ids.len() || expected_new.len() != call.new_handles.len() {
            return Err(format!(
                "{} new handles expected, client named {}, server got {}",
                expected_new.len(),
                new_ids.len(),
                call.new_handles.len()
            ));
        }
        let mut checked = Vec::new();
        for ((&(ty, slot), &id), nh) in expected_new
            .iter()
            .zip(&new_ids)
            .zip(call.new_handles.iter())
        {
            let (Ty::Handle(t) | Ty::Dispatchable(t)) = ty else {
                unreachable!()
            };
            if nh.ty != t || nh.id != id || nh.slot != slot {
                return Err(format!(
                    "new handle {:?} {} at {:?}, expected {t:?} {id} at {slot:?}",
                    nh.ty, nh.id, nh.slot
                ));
            }
            checked.push((t, id));
        }
        if *server.checked_new.borrow() != checked {
            return Err(format!(
                "check_new saw {:?}, expected {checked:?}",
                server.checked_new.borrow()
            ));
        }

        // The driver runs; the reply carries its results back.
        let ret = match cmd.ret {
            Ret::Result => [0i64, 0, 5, -1, -2][g.rng.below(5) as usize] as u64,
            Ret::Void => 0,
            _ => g.rng.next() & 0xFFFF_FFFF,
        };
        g.drive(cmd, sbase);
        let mut rep = Encoder::new();
        encode_reply(&mut rep, cmd, &call, ret, &server)
            .map_err(|e| format!("encode_reply: {e}"))?;
        let got = decode_reply(&mut Decoder::new(&rep.buf), cmd, &args, &client, &new_ids)
            .map_err(|e| format!("decode_reply: {e:?}"))?;
        if got != ret {
            return Err(format!("returned {got:#x}, driver returned {ret:#x}"));
        }

        let ok = cmd.ret != Ret::Result || (ret as i64) >= 0;
        let mut ids = new_ids.iter();
        let mut wrapped = Vec::new();
        for (i, f) in cmd.params.iter().enumerate() {
            let path = format!("{}.{}", cmd.name, f.name);
            if let Kind::InOutCount(ty) = f.kind {
                let (a, s) = (
                    rd(ty, rd_ptr(base.add(f.offset))),
                    rd(ty, rd_ptr(sbase.add(f.offset))),
                );
                if a != s {
                    return Err(format!("{path}: count {a}, driver wrote {s}"));
                }
            }
            // Counts are written now, so the filled parts are what both sides agree on.
            let (Some((ty, aq, n)), Some((_, sq, _))) =
                (out_elems(cmd, i, base), out_elems(cmd, i, sbase))
            else {
                continue;
            };
            for k in 0..n {
                let (ae, se) = (aq.add(k * ty.c_size()), sq.add(k * ty.c_size()));
                if is_new_handle(cmd, ty) {
                    let (Ty::Handle(t) | Ty::Dispatchable(t)) = ty else {
                        unreachable!()
                    };
                    let id = *ids.next().unwrap();
                    // An object exists where the driver made one: after success, and after a
                    // failure only from pipeline commands, which make what they can.
                    let made = rd(Ty::U64, se) != 0;
                    let exists = made && (ok || cmd.name.contains("Pipelines"));
                    let want = if exists { id ^ WRAP } else { 0 };
                    if exists {
                        wrapped.push((t, matches!(ty, Ty::Dispatchable(_)), id));
                    }
                    if rd(Ty::U64, ae) != want {
                        return Err(format!(
                            "{path}[{k}]: application got {:#x}, expected {want:#x}",
                            rd(Ty::U64, ae)
                        ));
                    }
                } else {
                    cmp_value(ty, se, ae, false, &format!("{path}[{k}]"))?;
                }
            }
        }
        if *client.wrapped.borrow() != wrapped {
            return Err(format!(
                "wrap_new saw {:?}, expected {wrapped:?}",
                client.wrapped.borrow()
            ));
        }
        g.check_untouched()
    }
}

/// Commands the whole-call test must cover.
const MUST_COVER: &[&str] = &[
    "vkGetPhysicalDeviceProperties2",
    "vkGetPhysicalDeviceQueueFamilyProperties2",
    "vkGetPhysicalDeviceFormatProperties2",
    "vkGetPhysicalDeviceImageFormatProperties2",
    "vkGetPhysicalDeviceFeatures2",
    "vkGetPhysicalDeviceMemoryProperties2",
    "vkEnumeratePhysicalDevices",
    "vkCreateBuffer",
    "vkDestroyBuffer",
    "vkAllocateCommandBuffers",
    "vkAllocateDescriptorSets",
    "vkCreateGraphicsPipelines",
    "vkGetPipelineCacheData",
    "vkGetQueryPoolResults",
    "vkGetDeviceQueue",
    "vkCreateDevice",
    "vkQueueSubmit",
    "vkCmdPipelineBarrier",
    "vkUpdateDescriptorSets",
];

#[test]
fn every_generated_command_makes_the_whole_trip() {
    let carried: Vec<&'static CommandDesc> = COMMANDS
        .iter()
        .copied()
        // Every command with a generated encoding; most hand-written entry points use it too.
        .filter(|c| !c.params.is_empty())
        .collect();
    for name in MUST_COVER {
        assert!(
            carried.iter().any(|c| c.name == *name),
            "{name} is not a generated command"
        );
    }
    for_each_seeded(&carried, |c| c.name, 32, call_round_trip);
}

/// A pipeline barrier with only memory barriers: each `VkMemoryBarrier` takes 12 bytes on the wire
/// (pNext terminator and two masks), and the count check must accept that many.
#[test]
fn pipeline_barrier_with_many_memory_barriers_decodes() {
    let cmd = COMMANDS
        .iter()
        .find(|c| c.name == "vkCmdPipelineBarrier")
        .unwrap();
    let barriers = [vk::MemoryBarrier::default()
        .src_access_mask(vk::AccessFlags::SHADER_WRITE)
        .dst_access_mask(vk::AccessFlags::SHADER_READ); 8];
    for n in 0..=barriers.len() {
        let mut args = [0u64; MAX_PARAMS];
        args[0] = 0x1000; // commandBuffer
        args[1] = vk::PipelineStageFlags::COMPUTE_SHADER.as_raw() as u64;
        args[2] = vk::PipelineStageFlags::COMPUTE_SHADER.as_raw() as u64;
        args[4] = n as u64; // memoryBarrierCount
        args[5] = barriers.as_ptr() as u64;
        let objects = Objects::default();
        let mut e = Encoder::new();
        // SAFETY: valid arguments for vkCmdPipelineBarrier.
        unsafe { encode_request(&mut e, cmd, &args, &objects, &mut Vec::new()) }.unwrap();
        let arena = Bump::new();
        let r = decode_request(&mut Decoder::new(&e.buf), cmd, &arena, &objects);
        assert!(
            r.is_ok(),
            "{n} memory barriers ({} bytes): {:?}",
            e.len(),
            r.err()
        );
    }
}
