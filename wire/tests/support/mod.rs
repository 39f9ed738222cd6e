//! What both codec test files build on: raw memory access, a small seeded generator, and the
//! synthesizer of random valid Vulkan structs and argument lists.
#![allow(dead_code)]

use std::alloc::Layout;
use std::ptr;

use ash::vk;
use bumpalo::Bump;
use wire::desc::{CommandDesc, Field, Kind, Len, StructDesc, Ty};
use wire::generated::structs::by_stype;
// ------------------------------------------------------------------ memory helpers

pub unsafe fn rd(ty: Ty, p: *const u8) -> u64 {
    match ty.c_size() {
        1 => *p as u64,
        2 => ptr::read_unaligned(p as *const u16) as u64,
        4 => ptr::read_unaligned(p as *const u32) as u64,
        8 => ptr::read_unaligned(p as *const u64),
        n => panic!("not a scalar: {ty:?} ({n} bytes)"),
    }
}

pub unsafe fn wr(ty: Ty, p: *mut u8, v: u64) {
    match ty.c_size() {
        1 => *p = v as u8,
        2 => ptr::write_unaligned(p as *mut u16, v as u16),
        4 => ptr::write_unaligned(p as *mut u32, v as u32),
        8 => ptr::write_unaligned(p as *mut u64, v),
        n => panic!("not a scalar: {ty:?} ({n} bytes)"),
    }
}

pub unsafe fn rd_ptr(p: *const u8) -> *mut u8 {
    ptr::read_unaligned(p as *const *mut u8)
}

pub unsafe fn wr_ptr(p: *mut u8, v: *const u8) {
    ptr::write_unaligned(p as *mut *const u8, v)
}

pub unsafe fn rd_stype(p: *const u8) -> i32 {
    ptr::read_unaligned(p as *const i32)
}

pub fn zeroed(bump: &Bump, size: usize, align: usize) -> *mut u8 {
    let p = bump
        .alloc_layout(Layout::from_size_align(size.max(1), align.max(1)).unwrap())
        .as_ptr();
    // SAFETY: freshly allocated, at least `size` bytes.
    unsafe { ptr::write_bytes(p, 0, size.max(1)) };
    p
}

pub fn pnext_offset(d: &StructDesc) -> Option<usize> {
    d.fields
        .iter()
        .find(|f| matches!(f.kind, Kind::PNext))
        .map(|f| f.offset)
}

/// The element count `len` names, computed independently of the interpreter.
pub unsafe fn count_of(len: Len, base: *const u8, fields: &[Field]) -> u64 {
    match len {
        Len::Const(n) => n as u64,
        Len::Sibling(i) => {
            let f = &fields[i as usize];
            match f.kind {
                Kind::Value(t) | Kind::Object(t) => rd(t, base.add(f.offset)),
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

// ------------------------------------------------------------------ random instances

pub struct Seeded(pub u64);

impl Seeded {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// A structure type no parent accepts: the interpreter must skip such chain members.
pub const FOREIGN_STYPE: i32 = 0x7EAD_BEE0;
pub const FOREIGN_SIZE: usize = 32;
/// Stands in for `pAllocator` and the like: never read, never sent.
pub const NEVER_READ: usize = 0xDEAD_BEE0;
pub const SAMPLE_COUNTS: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];

/// Builds random valid Vulkan structures and argument lists in an arena, and remembers the parts
/// of application chains that a write-back must leave alone.
pub struct Gen<'a> {
    pub rng: Seeded,
    pub bump: &'a Bump,
    /// Every count 0, every optional pointer NULL, no chains: the smallest encoding.
    pub minimal: bool,
    /// (address of a `pNext` member, the value it must keep).
    pub links: Vec<(*const u8, *const u8)>,
    /// (address of an `sType`, the value it must keep).
    pub stypes: Vec<(*const u8, i32)>,
    /// Bytes of foreign chain members that nobody may write.
    pub payloads: Vec<(*const u8, Vec<u8>)>,
}

impl<'a> Gen<'a> {
    pub fn new(seed: u64, bump: &'a Bump) -> Self {
        Gen {
            rng: Seeded(seed),
            bump,
            minimal: false,
            links: Vec::new(),
            stypes: Vec::new(),
            payloads: Vec::new(),
        }
    }

    pub fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        zeroed(self.bump, size, align)
    }

    pub fn count(&mut self, depth: u32) -> u64 {
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

    pub unsafe fn string(&mut self) -> *mut u8 {
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

    pub unsafe fn random_bytes(&mut self, p: *mut u8, n: usize) {
        for i in 0..n {
            *p.add(i) = self.rng.next() as u8;
        }
    }

    /// Chooses the counts of all arrays of a struct or argument list and writes them into their
    /// length members; returns which members are lengths.
    pub unsafe fn choose_lengths(
        &mut self,
        fields: &[Field],
        base: *mut u8,
        depth: u32,
    ) -> Vec<bool> {
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
                Kind::Value(t) | Kind::Object(t) => wr(t, base.add(lf.offset), v),
                ref k => panic!("{}: length member {} is {k:?}", f.name, lf.name),
            }
            is_len[i] = true;
        }
        is_len
    }

    /// Fills the struct `d` at `p` (zeroed memory). A chain member leaves its `pNext` to the
    /// chain's builder.
    pub unsafe fn fill(&mut self, d: &StructDesc, p: *mut u8, in_chain: bool, depth: u32) {
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
    pub unsafe fn input(
        &mut self,
        k: Kind,
        fp: *mut u8,
        base: *mut u8,
        fields: &[Field],
        depth: u32,
    ) {
        match k {
            Kind::Value(t) => self.value(t, fp, depth),
            Kind::Object(t) => {
                self.value(t, fp, depth);
                if rd(t, fp) == 0 {
                    wr(Ty::U64, fp, 1);
                }
            }
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
                } else if !(optional && self.rng.one_in(3)) {
                    // A required array with elements is always there: NULL would be refused.
                    let q = self.alloc(elem.c_size() * n, elem.c_align());
                    for i in 0..n {
                        self.value(elem, q.add(i * elem.c_size()), depth + 1);
                    }
                    wr_ptr(fp, q);
                }
            }
            Kind::Bytes { len } => {
                let n = count_of(len, base, fields) as usize;
                if n > 0 {
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
                if n > 0 {
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

    pub unsafe fn value(&mut self, ty: Ty, p: *mut u8, depth: u32) {
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
    pub unsafe fn foreign(&mut self) -> *mut u8 {
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
    pub unsafe fn chain(&mut self, d: &StructDesc, link: *mut u8, depth: u32) {
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
    pub unsafe fn garble(&mut self, d: &StructDesc, p: *mut u8) {
        for f in d.fields {
            let fp = p.add(f.offset);
            match f.kind {
                Kind::Value(Ty::Struct(sd)) => self.garble(sd, fp),
                Kind::FixedArray(Ty::Struct(sd), n) => {
                    for i in 0..n as usize {
                        self.garble(sd, fp.add(i * sd.size));
                    }
                }
                Kind::Value(t) | Kind::Object(t) => ptr::write_bytes(fp, 0xCC, t.c_size()),
                Kind::FixedArray(t, n) => ptr::write_bytes(fp, 0xCC, t.c_size() * n as usize),
                _ => {}
            }
        }
    }

    /// An application's output element: garbage values, and for a struct its `sType` and a chain
    /// (of the structure types `shape` lists, or random ones) with foreign members between.
    pub unsafe fn out_elem(&mut self, ty: Ty, p: *mut u8, shape: Option<&[vk::StructureType]>) {
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
    pub unsafe fn check_untouched(&self) -> Result<(), String> {
        for &(p, st) in &self.stypes {
            if rd_stype(p) != st {
                return Err(format!(
                    "application sType at {p:?} changed from {st} to {}",
                    rd_stype(p)
                ));
            }
        }
        for &(p, v) in &self.links {
            if !ptr::eq(rd_ptr(p), v) {
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
}

impl Gen<'_> {
    /// Builds an application's arguments for `cmd` in `base`: inputs, and output memory with
    /// chains the reply must leave alone.
    pub unsafe fn args(&mut self, cmd: &CommandDesc, base: *mut u8) {
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
}
