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

use std::alloc::Layout;
use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::ptr;

use ash::vk;
use bumpalo::Bump;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use wire::codec::{DecodeError, Decoder, Encoder};
use wire::desc::{CommandDesc, Field, Kind, Len, Ret, StructDesc, Ty};
use wire::generated::commands::{handwritten, COMMANDS};
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
    fn to_wire(&self, _: vk::ObjectType, _: bool, raw: u64) -> Result<u64, DecodeError> {
        Ok(raw)
    }
    fn from_wire(&self, _: vk::ObjectType, _: bool, id: u64) -> Result<u64, DecodeError> {
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

// ------------------------------------------------------------------ memory helpers

unsafe fn rd(ty: Ty, p: *const u8) -> u64 {
    match ty.c_size() {
        1 => *p as u64,
        2 => ptr::read_unaligned(p as *const u16) as u64,
        4 => ptr::read_unaligned(p as *const u32) as u64,
        8 => ptr::read_unaligned(p as *const u64),
        n => panic!("not a scalar: {ty:?} ({n} bytes)"),
    }
}

unsafe fn wr(ty: Ty, p: *mut u8, v: u64) {
    match ty.c_size() {
        1 => *p = v as u8,
        2 => ptr::write_unaligned(p as *mut u16, v as u16),
        4 => ptr::write_unaligned(p as *mut u32, v as u32),
        8 => ptr::write_unaligned(p as *mut u64, v),
        n => panic!("not a scalar: {ty:?} ({n} bytes)"),
    }
}

unsafe fn rd_ptr(p: *const u8) -> *mut u8 {
    ptr::read_unaligned(p as *const *mut u8)
}

unsafe fn wr_ptr(p: *mut u8, v: *const u8) {
    ptr::write_unaligned(p as *mut *const u8, v)
}

unsafe fn rd_stype(p: *const u8) -> i32 {
    ptr::read_unaligned(p as *const i32)
}

fn zeroed(bump: &Bump, size: usize, align: usize) -> *mut u8 {
    let p = bump
        .alloc_layout(Layout::from_size_align(size.max(1), align.max(1)).unwrap())
        .as_ptr();
    // SAFETY: freshly allocated, at least `size` bytes.
    unsafe { ptr::write_bytes(p, 0, size.max(1)) };
    p
}

fn pnext_offset(d: &StructDesc) -> Option<usize> {
    d.fields
        .iter()
        .find(|f| matches!(f.kind, Kind::PNext))
        .map(|f| f.offset)
}

/// The element count `len` names, computed independently of the interpreter.
unsafe fn count_of(len: Len, base: *const u8, fields: &[Field]) -> u64 {
    match len {
        Len::Const(n) => n as u64,
        Len::Sibling(i) => {
            let f = &fields[i as usize];
            match f.kind {
                Kind::Value(t) => rd(t, base.add(f.offset)),
                Kind::InOutCount(t) => {
                    let q = rd_ptr(base.add(f.offset));
                    if q.is_null() {
                        0
                    } else {
                        rd(t, q)
                    }
                }
                ref k => panic!("length member {} is {k:?}", f.name),
            }
        }
        Len::SampleMaskWords(i) => rd(Ty::U32, base.add(fields[i as usize].offset)).div_ceil(32),
        Len::SiblingMember { index, offset, ty } => {
            let q = rd_ptr(base.add(fields[index as usize].offset));
            assert!(!q.is_null(), "length struct is NULL");
            rd(ty, q.add(offset as usize))
        }
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

// ------------------------------------------------------------------ random instances

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// A structure type no parent accepts: the interpreter must skip such chain members.
const FOREIGN_STYPE: i32 = 0x7EAD_BEE0;
const FOREIGN_SIZE: usize = 32;
/// Stands in for `pAllocator` and the like: never read, never sent.
const NEVER_READ: usize = 0xDEAD_BEE0;
const SAMPLE_COUNTS: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];

/// Builds random valid Vulkan structures and argument lists in an arena, and remembers the parts
/// of application chains that a write-back must leave alone.
struct Gen<'a> {
    rng: Rng,
    bump: &'a Bump,
    /// Every count 0, every optional pointer NULL, no chains: the smallest encoding.
    minimal: bool,
    /// (address of a `pNext` member, the value it must keep).
    links: Vec<(*const u8, *const u8)>,
    /// (address of an `sType`, the value it must keep).
    stypes: Vec<(*const u8, i32)>,
    /// Bytes of foreign chain members that nobody may write.
    payloads: Vec<(*const u8, Vec<u8>)>,
}

impl<'a> Gen<'a> {
    fn new(seed: u64, bump: &'a Bump) -> Self {
        Gen {
            rng: Rng(seed),
            bump,
            minimal: false,
            links: Vec::new(),
            stypes: Vec::new(),
            payloads: Vec::new(),
        }
    }

    fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        zeroed(self.bump, size, align)
    }

    fn count(&mut self, depth: u32) -> u64 {
        if self.minimal {
            return 0;
        }
        let max = match depth {
            0 if self.rng.one_in(4) => 12,
            0 => 4,
            1 | 2 => 3,
            _ => 1,
        };
        self.rng.below(max + 1)
    }

    unsafe fn string(&mut self) -> *mut u8 {
        let n = if self.minimal {
            0
        } else {
            self.rng.below(24) as usize
        };
        let p = self.alloc(n + 1, 1);
        for i in 0..n {
            *p.add(i) = b' ' + self.rng.below(95) as u8;
        }
        p
    }

    unsafe fn random_bytes(&mut self, p: *mut u8, n: usize) {
        for i in 0..n {
            *p.add(i) = self.rng.next() as u8;
        }
    }

    /// Chooses the counts of all arrays of a struct or argument list and writes them into their
    /// length members; returns which members are lengths.
    unsafe fn choose_lengths(&mut self, fields: &[Field], base: *mut u8, depth: u32) -> Vec<bool> {
        let mut is_len = vec![false; fields.len()];
        for f in fields {
            let (len, bytes) = match f.kind {
                Kind::Array { len, .. } | Kind::StrArray { len } | Kind::OutArray { len, .. } => {
                    (len, false)
                }
                Kind::Bytes { len } | Kind::OutBytes { len } => (len, true),
                _ => continue,
            };
            let (i, v) = match len {
                Len::Sibling(i) if !is_len[i as usize] => {
                    let v = if bytes && !self.minimal {
                        self.rng.below(if depth == 0 { 49 } else { 9 })
                    } else {
                        self.count(depth)
                    };
                    (i as usize, v)
                }
                Len::SampleMaskWords(i) => (i as usize, SAMPLE_COUNTS[self.rng.below(7) as usize]),
                _ => continue,
            };
            let lf = &fields[i];
            match lf.kind {
                Kind::Value(t) => wr(t, base.add(lf.offset), v),
                ref k => panic!("{}: length member {} is {k:?}", f.name, lf.name),
            }
            is_len[i] = true;
        }
        is_len
    }

    /// Fills the struct `d` at `p` (zeroed memory). A chain member leaves its `pNext` to the
    /// chain's builder.
    unsafe fn fill(&mut self, d: &StructDesc, p: *mut u8, in_chain: bool, depth: u32) {
        let is_len = self.choose_lengths(d.fields, p, depth);
        for (i, f) in d.fields.iter().enumerate() {
            let fp = p.add(f.offset);
            match f.kind {
                Kind::SType => wr(
                    Ty::I32,
                    fp,
                    d.s_type.expect("sType member without a type").as_raw() as u32 as u64,
                ),
                Kind::PNext => {
                    if !in_chain {
                        self.chain(d, fp, depth)
                    }
                }
                _ if is_len[i] => {}
                k => self.input(k, fp, p, d.fields, depth),
            }
        }
    }

    /// Fills one input member or parameter of kind `k` at `fp`; `base` and `fields` are the
    /// struct (or argument list) it belongs to.
    unsafe fn input(&mut self, k: Kind, fp: *mut u8, base: *mut u8, fields: &[Field], depth: u32) {
        match k {
            Kind::Value(t) => self.value(t, fp, depth),
            Kind::FixedArray(t, n) => {
                for i in 0..n as usize {
                    self.value(t, fp.add(i * t.c_size()), depth);
                }
            }
            Kind::Ptr { elem, optional } => {
                if !(optional && (self.minimal || self.rng.one_in(3))) {
                    let q = self.alloc(elem.c_size(), elem.c_align());
                    self.value(elem, q, depth + 1);
                    wr_ptr(fp, q);
                }
            }
            Kind::Array {
                elem,
                len,
                optional,
            } => {
                let n = count_of(len, base, fields) as usize;
                if n == 0 {
                    if self.rng.one_in(2) {
                        // A pointer to nothing: travels as absent.
                        wr_ptr(fp, self.alloc(1, 8));
                    }
                } else if !self.rng.one_in(if optional { 3 } else { 12 }) {
                    let q = self.alloc(elem.c_size() * n, elem.c_align());
                    for i in 0..n {
                        self.value(elem, q.add(i * elem.c_size()), depth + 1);
                    }
                    wr_ptr(fp, q);
                }
            }
            Kind::Bytes { len } => {
                let n = count_of(len, base, fields) as usize;
                if n > 0 && !self.rng.one_in(12) {
                    let q = self.alloc(n, 8);
                    self.random_bytes(q, n);
                    wr_ptr(fp, q);
                }
            }
            Kind::Str { optional } => {
                if !(optional && (self.minimal || self.rng.one_in(3))) {
                    let s = self.string();
                    wr_ptr(fp, s);
                }
            }
            Kind::StrArray { len } => {
                let n = count_of(len, base, fields) as usize;
                if n > 0 && !self.rng.one_in(12) {
                    let q = self.alloc(8 * n, 8);
                    for i in 0..n {
                        let s = self.string();
                        wr_ptr(q.add(8 * i), s);
                    }
                    wr_ptr(fp, q);
                }
            }
            Kind::Null => wr_ptr(fp, NEVER_READ as *const u8),
            k => panic!("not an input member: {k:?}"),
        }
    }

    unsafe fn value(&mut self, ty: Ty, p: *mut u8, depth: u32) {
        match ty {
            Ty::U8 | Ty::U16 | Ty::U32 | Ty::I32 | Ty::F32 | Ty::U64 | Ty::I64 | Ty::F64 => {
                wr(ty, p, self.rng.next())
            }
            Ty::Usize => wr(ty, p, self.rng.next() & 0xFFFF_FFFF),
            Ty::Handle(_) | Ty::Dispatchable(_) => {
                let v = if self.rng.one_in(8) {
                    0
                } else {
                    self.rng.next() | 1
                };
                wr(Ty::U64, p, v)
            }
            Ty::Struct(d) => self.fill(d, p, false, depth),
            Ty::Union(n, _) => self.random_bytes(p, n),
        }
    }

    /// A chain member of a type no parent takes, with a payload nobody may touch.
    unsafe fn foreign(&mut self) -> *mut u8 {
        let node = self.alloc(FOREIGN_SIZE, 8);
        wr(Ty::I32, node, FOREIGN_STYPE as u32 as u64);
        self.random_bytes(node.add(16), FOREIGN_SIZE - 16);
        self.payloads.push((
            node.add(16),
            std::slice::from_raw_parts(node.add(16), FOREIGN_SIZE - 16).to_vec(),
        ));
        node
    }

    /// Builds a random input chain for `d` at the link `link`.
    unsafe fn chain(&mut self, d: &StructDesc, link: *mut u8, depth: u32) {
        if self.minimal {
            return;
        }
        let members: Vec<&StructDesc> = d
            .extended_by
            .iter()
            .filter_map(|&st| by_stype(st))
            .collect();
        let k = if depth < 2 {
            self.rng.below(4)
        } else {
            self.rng.below(2)
        };
        let mut link = link;
        for _ in 0..k {
            if self.rng.one_in(4) {
                let node = self.foreign();
                wr_ptr(link, node);
                link = node.add(8);
            }
            if members.is_empty() {
                break;
            }
            let sd = members[self.rng.below(members.len() as u64) as usize];
            let node = self.alloc(sd.size, sd.align);
            self.fill(sd, node, true, depth + 1);
            wr_ptr(link, node);
            link = node.add(pnext_offset(sd).expect("chain member without pNext"));
        }
    }

    // -------------------------------------------------------------- application output memory

    /// Fills the value members of an output struct with a pattern the write-back must replace.
    unsafe fn garble(&mut self, d: &StructDesc, p: *mut u8) {
        for f in d.fields {
            let fp = p.add(f.offset);
            match f.kind {
                Kind::Value(Ty::Struct(sd)) => self.garble(sd, fp),
                Kind::FixedArray(Ty::Struct(sd), n) => {
                    for i in 0..n as usize {
                        self.garble(sd, fp.add(i * sd.size));
                    }
                }
                Kind::Value(t) => ptr::write_bytes(fp, 0xCC, t.c_size()),
                Kind::FixedArray(t, n) => ptr::write_bytes(fp, 0xCC, t.c_size() * n as usize),
                _ => {}
            }
        }
    }

    /// An application's output element: garbage values, and for a struct its `sType` and a chain
    /// (of the structure types `shape` lists, or random ones) with foreign members between.
    unsafe fn out_elem(&mut self, ty: Ty, p: *mut u8, shape: Option<&[vk::StructureType]>) {
        let Ty::Struct(d) = ty else {
            ptr::write_bytes(p, 0xCC, ty.c_size());
            return;
        };
        self.garble(d, p);
        if let Some(st) = d.s_type {
            wr(Ty::I32, p, st.as_raw() as u32 as u64);
            self.stypes.push((p, st.as_raw()));
        }
        let Some(off) = pnext_offset(d) else { return };
        let shape: Vec<vk::StructureType> = match shape {
            Some(s) => s.to_vec(),
            None => {
                let members: Vec<vk::StructureType> = d
                    .extended_by
                    .iter()
                    .copied()
                    .filter(|&st| by_stype(st).is_some())
                    .collect();
                let k = if members.is_empty() {
                    0
                } else {
                    self.rng.below(4)
                };
                (0..k)
                    .map(|_| members[self.rng.below(members.len() as u64) as usize])
                    .collect()
            }
        };
        let mut link = p.add(off);
        for st in shape {
            if self.rng.one_in(3) {
                let node = self.foreign();
                wr_ptr(link, node);
                self.links.push((link, node));
                link = node.add(8);
            }
            let sd = by_stype(st).unwrap();
            let node = self.alloc(sd.size, sd.align);
            self.garble(sd, node);
            wr(Ty::I32, node, st.as_raw() as u32 as u64);
            self.stypes.push((node, st.as_raw()));
            wr_ptr(link, node);
            self.links.push((link, node));
            link = node.add(pnext_offset(sd).unwrap());
        }
        if self.rng.one_in(3) {
            let node = self.foreign();
            wr_ptr(link, node);
            self.links.push((link, node));
            link = node.add(8);
        }
        self.links.push((link, ptr::null()));
    }

    /// Checks that every `sType`, `pNext` and foreign member of the application's chains is as
    /// it was built.
    unsafe fn check_untouched(&self) -> Result<(), String> {
        for &(p, st) in &self.stypes {
            if rd_stype(p) != st {
                return Err(format!(
                    "application sType at {p:?} changed from {st} to {}",
                    rd_stype(p)
                ));
            }
        }
        for &(p, v) in &self.links {
            if rd_ptr(p) as *const u8 != v {
                return Err(format!(
                    "application pNext at {p:?} changed from {v:?} to {:?}",
                    rd_ptr(p)
                ));
            }
        }
        for (p, bytes) in &self.payloads {
            if std::slice::from_raw_parts(*p, bytes.len()) != &bytes[..] {
                return Err(format!("foreign chain member at {p:?} was written"));
            }
        }
        Ok(())
    }

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
                Kind::Value(t) => self.result(t, fp),
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
        Kind::Value(t) => cmp_value(t, fa, fb, stype, path),
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
    matches!(
        k,
        Kind::Out(_)
            | Kind::OutArray { .. }
            | Kind::OutCounted { .. }
            | Kind::InOutCount(_)
            | Kind::OutBytes { .. }
            | Kind::OutCountedBytes { .. }
    )
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
    /// Builds an application's arguments for `cmd` in `base`: inputs, and output memory with
    /// chains the reply must leave alone.
    unsafe fn args(&mut self, cmd: &CommandDesc, base: *mut u8) {
        let is_len = self.choose_lengths(cmd.params, base, 0);
        for (i, f) in cmd.params.iter().enumerate() {
            assert_eq!(f.offset, i * 8, "{}: parameter {} offset", cmd.name, f.name);
            let fp = base.add(f.offset);
            match f.kind {
                _ if is_len[i] => {}
                Kind::Out(ty) => {
                    let q = self.alloc(ty.c_size(), ty.c_align());
                    self.out_elem(ty, q, None);
                    wr_ptr(fp, q);
                }
                Kind::OutArray { elem, len } => {
                    if let Len::SiblingMember { index, offset, ty } = len {
                        // A count inside an input struct that sizes nothing there
                        // (`commandBufferCount`) was filled as a random value.
                        let q = rd_ptr(base.add(cmd.params[index as usize].offset))
                            .add(offset as usize);
                        if rd(ty, q) > 12 {
                            wr(ty, q, self.count(0));
                        }
                    }
                    let n = count_of(len, base, cmd.params) as usize;
                    let q = self.alloc(elem.c_size() * n, elem.c_align());
                    for k in 0..n {
                        self.out_elem(elem, q.add(k * elem.c_size()), None);
                    }
                    wr_ptr(fp, q);
                }
                Kind::InOutCount(ty) => {
                    let q = self.alloc(8, 8);
                    wr(ty, q, self.rng.below(6));
                    wr_ptr(fp, q);
                }
                Kind::OutCounted { elem, count } => {
                    if !self.rng.one_in(3) {
                        let n = count_of(Len::Sibling(count), base, cmd.params) as usize;
                        let q = self.alloc(elem.c_size() * n, elem.c_align());
                        for k in 0..n {
                            self.out_elem(elem, q.add(k * elem.c_size()), None);
                        }
                        wr_ptr(fp, q);
                    }
                }
                Kind::OutBytes { len } => {
                    let n = count_of(len, base, cmd.params) as usize;
                    let q = self.alloc(n, 8);
                    ptr::write_bytes(q, 0xCC, n);
                    wr_ptr(fp, q);
                }
                Kind::OutCountedBytes { count } => {
                    if !self.rng.one_in(3) {
                        let n = count_of(Len::Sibling(count), base, cmd.params) as usize;
                        let q = self.alloc(n, 8);
                        ptr::write_bytes(q, 0xCC, n);
                        wr_ptr(fp, q);
                    }
                }
                k => self.input(k, fp, base, cmd.params, 0),
            }
        }
    }

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
                        // The host's own handle: stays on the server.
                        wr(Ty::U64, e, self.rng.next() | 1);
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
                    let want = if ok { id ^ WRAP } else { 0 };
                    if ok {
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
        .filter(|c| !handwritten(c.id))
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
    let barriers = vec![
        vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::SHADER_WRITE)
            .dst_access_mask(vk::AccessFlags::SHADER_READ);
        8
    ];
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
