//! The one interpreter of the generated tables: encodes C structs and calls, decodes them into an
//! arena on the server, and writes results back into the application's own memory.
//!
//! Wire form (every item a multiple of 4 bytes, little endian):
//! - scalars as 4 bytes, 64-bit values and handle ids as 8; byte arrays as raw padded bytes;
//! - a pointer as a presence word (0 or 1) and then its element(s); the element count of an
//!   array is the count member, which precedes it and has already been decoded;
//! - a string as `len + 1` (0 for NULL) and its bytes; a `pNext` chain as (1, sType, body)
//!   items ended by 0, holding only the structs the parent may be extended by;
//! - an output struct in a request as its chain shape: a count and the sTypes.
//!
//! The server side trusts nothing: every count is checked against the bytes that remain (or, for
//! output buffers, against a fixed limit) before anything is allocated, every structure type
//! against the parent's list, every handle through [`Handles`].

use crate::codec::{DecodeError, Decoder, Encoder};
use crate::desc::*;
use crate::generated::structs::by_stype;
use crate::ignored::{self, Facts, Scope};
use ash::vk;
use bumpalo::Bump;
use core::ptr;

/// Most parameters any carried command has.
pub const MAX_PARAMS: usize = 16;
/// Largest output buffer a request may make the server allocate.
pub const MAX_OUTPUT_BYTES: usize = 64 << 20;
/// Longest `pNext` chain carried (vulkaninfo chains about a hundred feature structs).
const MAX_CHAIN: usize = 512;

/// The top bit of ids the server names for objects the host reports (physical devices,
/// queues); ids the client names for what it creates stay below, so the two never meet.
pub const SERVER_NAMED: u64 = 1 << 63;

/// Translates handles between memory and the wire; the client and the server each implement it.
pub trait Handles {
    /// The id to send for a handle found in memory.
    fn encode_handle(
        &self,
        ty: vk::ObjectType,
        dispatchable: bool,
        raw: u64,
    ) -> Result<u64, DecodeError>;
    /// The value to store in memory for an id read from the wire.
    fn decode_handle(
        &self,
        ty: vk::ObjectType,
        dispatchable: bool,
        id: u64,
    ) -> Result<u64, DecodeError>;
    /// Decodes an array of ids in place into the values to store: one call per array, so a
    /// table can keep its place between neighbouring ids (2048 descriptor sets). The default
    /// asks [`Handles::decode_handle`] once per run of one repeated id.
    fn decode_handles(
        &self,
        ty: vk::ObjectType,
        dispatchable: bool,
        ids: &mut [u64],
    ) -> Result<(), DecodeError> {
        let mut last: Option<(u64, u64)> = None;
        for v in ids {
            let id = *v;
            *v = match last {
                Some((l, h)) if l == id => h,
                _ => {
                    let h = self.decode_handle(ty, dispatchable, id)?;
                    last = Some((id, h));
                    h
                }
            };
        }
        Ok(())
    }
    /// What the client knows of the application's objects: with it, the encoder sends the
    /// members Vulkan says are ignored as absent ([`ignored`]). The server has none.
    fn facts(&self) -> Option<&dyn Facts> {
        None
    }
}

/// Client side: names new objects.
pub trait ClientObjects: Handles {
    fn new_id(&self) -> u64;
    /// The application-visible handle for an object the client created under `id`.
    fn wrap_new(&self, ty: vk::ObjectType, dispatchable: bool, id: u64) -> u64;
}

/// Server side: accepts the names the client chose.
pub trait ServerObjects: Handles {
    fn check_new(&self, ty: vk::ObjectType, id: u64) -> Result<(), DecodeError>;
    /// [`ServerObjects::check_new`] of every id of one call's array of new handles.
    fn check_new_all(&self, ty: vk::ObjectType, ids: &[u64]) -> Result<(), DecodeError> {
        ids.iter().try_for_each(|&id| self.check_new(ty, id))
    }
}

fn has_chain(d: &StructDesc) -> bool {
    d.fields.iter().any(|f| matches!(f.kind, Kind::PNext))
}

unsafe fn read_ptr(p: *const u8) -> *const u8 {
    ptr::read_unaligned(p as *const *const u8)
}

unsafe fn read_scalar(ty: Ty, p: *const u8) -> u64 {
    match ty {
        Ty::U8 => *p as u64,
        Ty::U16 => ptr::read_unaligned(p as *const u16) as u64,
        Ty::U32 | Ty::I32 | Ty::F32 => ptr::read_unaligned(p as *const u32) as u64,
        _ => ptr::read_unaligned(p as *const u64),
    }
}

unsafe fn write_scalar(ty: Ty, p: *mut u8, v: u64) {
    match ty {
        Ty::U8 => *p = v as u8,
        Ty::U16 => ptr::write_unaligned(p as *mut u16, v as u16),
        Ty::U32 | Ty::I32 | Ty::F32 => ptr::write_unaligned(p as *mut u32, v as u32),
        _ => ptr::write_unaligned(p as *mut u64, v),
    }
}

/// The element count `len` names, read from already filled memory at `base`.
unsafe fn len_of(len: Len, base: *const u8, fields: &[Field]) -> Result<u64, DecodeError> {
    let sibling = |i: u16| -> Result<&Field, DecodeError> {
        fields
            .get(i as usize)
            .ok_or(DecodeError::Invalid("length member"))
    };
    Ok(match len {
        Len::Const(n) => n as u64,
        Len::Sibling(i) => {
            let f = sibling(i)?;
            let ty = match f.kind {
                Kind::Value(t) | Kind::InOutCount(t) => t,
                _ => return Err(DecodeError::Invalid("length member kind")),
            };
            let p = base.add(f.offset);
            if matches!(f.kind, Kind::InOutCount(_)) {
                // The count behind an in/out pointer.
                let q = read_ptr(p);
                if q.is_null() {
                    return Ok(0);
                }
                read_scalar(ty, q)
            } else {
                read_scalar(ty, p)
            }
        }
        Len::SampleMaskWords(i) => {
            let f = sibling(i)?;
            read_scalar(Ty::U32, base.add(f.offset)).div_ceil(32)
        }
        Len::SiblingMember { index, offset, ty } => {
            let f = sibling(index)?;
            let q = read_ptr(base.add(f.offset));
            if q.is_null() {
                return Err(DecodeError::Invalid("length struct is NULL"));
            }
            read_scalar(ty, q.add(offset as usize))
        }
    })
}

// ---------------------------------------------------------------- encoding (reads C memory)

/// Encodes one value at `p`.
///
/// # Safety
/// `p` must point at a valid value of type `ty`, with every pointer inside it valid.
pub unsafe fn put_value(
    e: &mut Encoder,
    ty: Ty,
    p: *const u8,
    h: &dyn Handles,
) -> Result<(), DecodeError> {
    put_value_in(e, ty, p, h, None)
}

/// [`put_value`] of a value inside `outer`.
unsafe fn put_value_in(
    e: &mut Encoder,
    ty: Ty,
    p: *const u8,
    h: &dyn Handles,
    outer: Option<&Scope>,
) -> Result<(), DecodeError> {
    match ty {
        Ty::U8 | Ty::U16 | Ty::U32 | Ty::I32 | Ty::F32 => e.u32(read_scalar(ty, p) as u32),
        Ty::U64 | Ty::I64 | Ty::F64 | Ty::Usize => e.u64(read_scalar(ty, p)),
        Ty::Handle(t) => e.u64(h.encode_handle(t, false, read_scalar(ty, p))?),
        Ty::Dispatchable(t) => e.u64(h.encode_handle(t, true, read_scalar(ty, p))?),
        Ty::Struct(d) => put_struct_in(e, d, p, h, false, outer)?,
        Ty::Union(n, _) => e.bytes(core::slice::from_raw_parts(p, n)),
    }
    Ok(())
}

unsafe fn put_elems(
    e: &mut Encoder,
    ty: Ty,
    p: *const u8,
    n: usize,
    h: &dyn Handles,
    outer: Option<&Scope>,
) -> Result<(), DecodeError> {
    if matches!(ty, Ty::U8) {
        e.bytes(core::slice::from_raw_parts(p, n));
        return Ok(());
    }
    let size = ty.c_size();
    for i in 0..n {
        put_value_in(e, ty, p.add(i * size), h, outer)?;
    }
    Ok(())
}

/// Encodes a struct; a chain member (`in_chain`) leaves its own `pNext` to the chain's owner.
///
/// # Safety
/// `p` must point at a valid `d` struct whose pointers are valid, as Vulkan requires of inputs.
pub unsafe fn put_struct(
    e: &mut Encoder,
    d: &StructDesc,
    p: *const u8,
    h: &dyn Handles,
    in_chain: bool,
) -> Result<(), DecodeError> {
    put_struct_in(e, d, p, h, in_chain, None)
}

/// [`put_struct`] of a struct inside `outer` (the struct whose member or chain it is, or the
/// command's arguments). On the client, the members Vulkan says are ignored where the struct
/// sits travel as absent.
unsafe fn put_struct_in(
    e: &mut Encoder,
    d: &StructDesc,
    p: *const u8,
    h: &dyn Handles,
    in_chain: bool,
    outer: Option<&Scope>,
) -> Result<(), DecodeError> {
    let scope = Scope {
        name: d.name,
        p,
        outer,
    };
    let ignored = match h.facts() {
        Some(facts) if ignored::has_rules(d) => ignored::ignored_fields(d, &scope, facts),
        _ => 0,
    };
    for (i, f) in d.fields.iter().enumerate() {
        match f.kind {
            _ if i < 64 && ignored & (1 << i) != 0 => put_absent(e, f)?,
            Kind::PNext if !in_chain => {
                let mut n = read_ptr(p.add(f.offset));
                while !n.is_null() {
                    let st = vk::StructureType::from_raw(ptr::read_unaligned(n as *const i32));
                    if let Some(sd) = chain_member(d, st) {
                        e.u32(1);
                        e.u32(st.as_raw() as u32);
                        // A chained struct sits where its owner does.
                        put_struct_in(e, sd, n, h, true, Some(&scope))?;
                    }
                    n = read_ptr(n.add(8));
                }
                e.u32(0);
            }
            _ => put_field(e, f, p, d.fields, h, &scope)?,
        }
    }
    Ok(())
}

/// Encodes member `f` as absent: `VK_NULL_HANDLE` or 0, a `NULL` pointer.
fn put_absent(e: &mut Encoder, f: &Field) -> Result<(), DecodeError> {
    match f.kind {
        Kind::Value(Ty::U8 | Ty::U16 | Ty::U32 | Ty::I32 | Ty::F32) => e.u32(0),
        Kind::Value(Ty::U64 | Ty::I64 | Ty::F64 | Ty::Usize | Ty::Handle(_)) => e.u64(0),
        Kind::Ptr { .. }
        | Kind::Array { .. }
        | Kind::Bytes { .. }
        | Kind::Str { .. }
        | Kind::StrArray { .. } => e.u32(0),
        _ => {
            return Err(DecodeError::Invalid(
                "an ignored member that cannot be absent",
            ))
        }
    }
    Ok(())
}

/// Encodes one input member `f` of the struct (or argument list) at `p`; lengths are looked up
/// among `all`.
unsafe fn put_field(
    e: &mut Encoder,
    f: &Field,
    p: *const u8,
    all: &[Field],
    h: &dyn Handles,
    scope: &Scope,
) -> Result<(), DecodeError> {
    let fp = p.add(f.offset);
    let outer = Some(scope);
    match f.kind {
        Kind::SType | Kind::PNext | Kind::Null => {}
        Kind::Value(t) | Kind::Object(t) => put_value_in(e, t, fp, h, outer)?,
        Kind::FixedArray(t, n) => put_elems(e, t, fp, n as usize, h, outer)?,
        Kind::Ptr { elem, .. } => {
            let q = read_ptr(fp);
            if q.is_null() {
                e.u32(0);
            } else {
                e.u32(1);
                put_value_in(e, elem, q, h, outer)?;
            }
        }
        Kind::Array { elem, len, .. } => {
            let n = len_of(len, p, all)? as usize;
            let q = read_ptr(fp);
            if q.is_null() || n == 0 {
                e.u32(0);
            } else {
                e.u32(1);
                put_elems(e, elem, q, n, h, outer)?;
            }
        }
        Kind::Bytes { len } => {
            let n = len_of(len, p, all)? as usize;
            let q = read_ptr(fp);
            if q.is_null() || n == 0 {
                e.u32(0);
            } else {
                e.u32(1);
                e.bytes(core::slice::from_raw_parts(q, n));
            }
        }
        Kind::Str { .. } => put_str(e, read_ptr(fp)),
        Kind::StrArray { len } => {
            let n = len_of(len, p, all)? as usize;
            let q = read_ptr(fp) as *const *const u8;
            if q.is_null() || n == 0 {
                e.u32(0);
            } else {
                e.u32(1);
                for i in 0..n {
                    put_str(e, *q.add(i));
                }
            }
        }
        _ => return Err(DecodeError::Invalid("output member in an input struct")),
    }
    Ok(())
}

unsafe fn put_str(e: &mut Encoder, s: *const u8) {
    if s.is_null() {
        e.u32(0);
    } else {
        let bytes = core::ffi::CStr::from_ptr(s as *const core::ffi::c_char).to_bytes();
        e.u32(bytes.len() as u32 + 1);
        e.bytes(bytes);
    }
}

/// The description of chain member `st` if `parent` may carry it.
pub fn chain_member(parent: &StructDesc, st: vk::StructureType) -> Option<&'static StructDesc> {
    if parent.extended_by.contains(&st) {
        by_stype(st)
    } else {
        None
    }
}

// ---------------------------------------------------------------- decoding (writes C memory)

fn alloc(arena: &Bump, size: usize, align: usize) -> Result<*mut u8, DecodeError> {
    let layout = core::alloc::Layout::from_size_align(size.max(1), align.max(1))
        .map_err(|_| DecodeError::TooLarge)?;
    let p = arena
        .try_alloc_layout(layout)
        .map_err(|_| DecodeError::TooLarge)?
        .as_ptr();
    // SAFETY: freshly allocated, `size` bytes.
    unsafe { ptr::write_bytes(p, 0, size) };
    Ok(p)
}

fn alloc_array(arena: &Bump, ty: Ty, n: usize) -> Result<*mut u8, DecodeError> {
    let size = ty.c_size().checked_mul(n).ok_or(DecodeError::TooLarge)?;
    alloc(arena, size, ty.c_align())
}

/// Where decoded values go: fresh memory in the server's arena, or the application's own
/// structs on the client (which keeps their `sType`/`pNext` and never allocates).
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Arena(&'a Bump),
    Writeback,
}

/// Decodes one value into `out`.
///
/// # Safety
/// `out` must point at writable memory of `ty.c_size()` bytes (zeroed, for the arena target).
pub unsafe fn get_value(
    dc: &mut Decoder,
    ty: Ty,
    out: *mut u8,
    t: Target,
    h: &dyn Handles,
) -> Result<(), DecodeError> {
    match ty {
        Ty::U8 | Ty::U16 => {
            let v = dc.u32()?;
            let max = if matches!(ty, Ty::U8) {
                u8::MAX as u32
            } else {
                u16::MAX as u32
            };
            if v > max {
                return Err(DecodeError::Invalid("8- or 16-bit value out of range"));
            }
            write_scalar(ty, out, v as u64)
        }
        Ty::U32 | Ty::I32 | Ty::F32 => write_scalar(ty, out, dc.u32()? as u64),
        Ty::U64 | Ty::I64 | Ty::F64 => write_scalar(ty, out, dc.u64()?),
        Ty::Usize => {
            let v = dc.u64()?;
            usize::try_from(v).map_err(|_| DecodeError::Invalid("size_t value"))?;
            write_scalar(ty, out, v)
        }
        Ty::Handle(k) => write_scalar(ty, out, h.decode_handle(k, false, dc.u64()?)?),
        Ty::Dispatchable(k) => write_scalar(ty, out, h.decode_handle(k, true, dc.u64()?)?),
        Ty::Struct(d) => get_struct(dc, d, out, t, h, false)?,
        Ty::Union(n, _) => ptr::copy_nonoverlapping(dc.bytes(n)?.as_ptr(), out, n),
    }
    Ok(())
}

unsafe fn get_elems(
    dc: &mut Decoder,
    ty: Ty,
    out: *mut u8,
    n: usize,
    t: Target,
    h: &dyn Handles,
) -> Result<(), DecodeError> {
    if matches!(ty, Ty::U8) {
        ptr::copy_nonoverlapping(dc.bytes(n)?.as_ptr(), out, n);
        return Ok(());
    }
    if let Ty::Handle(k) | Ty::Dispatchable(k) = ty {
        let dispatchable = matches!(ty, Ty::Dispatchable(_));
        dc.check_count("handles", n as u64, 8)?;
        let bytes = dc.bytes(n * 8)?;
        if (out as usize).is_multiple_of(std::mem::align_of::<u64>()) {
            // The whole array at once: the ids land where the handles go, and the table
            // translates them in place.
            ptr::copy_nonoverlapping(bytes.as_ptr(), out, n * 8);
            let ids = std::slice::from_raw_parts_mut(out as *mut u64, n);
            for v in ids.iter_mut() {
                *v = u64::from_le(*v);
            }
            return h.decode_handles(k, dispatchable, ids);
        }
        for (i, b) in bytes.chunks_exact(8).enumerate() {
            let id = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            let v = h.decode_handle(k, dispatchable, id)?;
            ptr::write_unaligned(out.add(i * 8) as *mut u64, v);
        }
        return Ok(());
    }
    let size = ty.c_size();
    for i in 0..n {
        get_value(dc, ty, out.add(i * size), t, h)?;
    }
    Ok(())
}

fn arena(t: Target<'_>) -> Result<&Bump, DecodeError> {
    match t {
        Target::Arena(a) => Ok(a),
        Target::Writeback => Err(DecodeError::Invalid("pointer in a returned struct")),
    }
}

/// Decodes a struct into `out`.
///
/// # Safety
/// `out` must point at writable memory laid out as `d` (zeroed, for the arena target).
pub unsafe fn get_struct(
    dc: &mut Decoder,
    d: &StructDesc,
    out: *mut u8,
    t: Target,
    h: &dyn Handles,
    in_chain: bool,
) -> Result<(), DecodeError> {
    for f in d.fields {
        let fp = out.add(f.offset);
        match f.kind {
            Kind::SType => {
                if let (Target::Arena(_), Some(st)) = (t, d.s_type) {
                    ptr::write_unaligned(fp as *mut i32, st.as_raw());
                }
            }
            Kind::PNext if in_chain => {}
            Kind::PNext => match t {
                Target::Arena(a) => {
                    let mut link = fp as *mut *mut u8;
                    let mut len = 0;
                    while present(dc)? {
                        len += 1;
                        if len > MAX_CHAIN {
                            return Err(DecodeError::TooMany {
                                what: "chain",
                                count: len as u64,
                            });
                        }
                        let st = vk::StructureType::from_raw(dc.u32()? as i32);
                        let sd = chain_member(d, st)
                            .ok_or(DecodeError::BadStructureType(st.as_raw()))?;
                        let node = alloc(a, sd.size, sd.align)?;
                        ptr::write_unaligned(node as *mut i32, st.as_raw());
                        get_struct(dc, sd, node, t, h, true)?;
                        *link = node;
                        link = node.add(8) as *mut *mut u8;
                    }
                }
                Target::Writeback => get_chain_writeback(dc, d, read_ptr(fp) as *mut u8, h)?,
            },
            _ => get_field(dc, f, out, d.fields, t, h)?,
        }
    }
    Ok(())
}

/// Decodes one input member `f` into the struct (or argument list) at `out`.
unsafe fn get_field(
    dc: &mut Decoder,
    f: &Field,
    out: *mut u8,
    all: &[Field],
    t: Target,
    h: &dyn Handles,
) -> Result<(), DecodeError> {
    let fp = out.add(f.offset);
    match f.kind {
        Kind::SType | Kind::PNext | Kind::Null => {}
        Kind::Value(ty) => get_value(dc, ty, fp, t, h)?,
        Kind::Object(ty) => {
            get_value(dc, ty, fp, t, h)?;
            if read_scalar(ty, fp) == 0 {
                return Err(DecodeError::Invalid(
                    "VK_NULL_HANDLE where an object is required",
                ));
            }
        }
        Kind::FixedArray(ty, n) => get_elems(dc, ty, fp, n as usize, t, h)?,
        Kind::Ptr { elem, optional } => {
            if present(dc)? {
                let q = alloc(arena(t)?, elem.c_size(), elem.c_align())?;
                get_value(dc, elem, q, t, h)?;
                ptr::write_unaligned(fp as *mut *mut u8, q);
            } else if !optional {
                return Err(DecodeError::Missing(f.name));
            }
        }
        Kind::Array {
            elem,
            len,
            optional,
        } => {
            let count = len_of(len, out, all)?;
            if present(dc)? {
                let n = dc.check_count(f.name, count, elem.min_wire_size())?;
                let q = alloc_array(arena(t)?, elem, n)?;
                get_elems(dc, elem, q, n, t, h)?;
                ptr::write_unaligned(fp as *mut *mut u8, q);
            } else if !optional && count > 0 {
                return Err(DecodeError::Missing(f.name));
            }
        }
        Kind::Bytes { len } => {
            let count = len_of(len, out, all)?;
            if present(dc)? {
                let n = dc.check_count(f.name, count, 1)?;
                let q = alloc(arena(t)?, n, 8)?;
                ptr::copy_nonoverlapping(dc.bytes(n)?.as_ptr(), q, n);
                ptr::write_unaligned(fp as *mut *mut u8, q);
            } else if count > 0 {
                return Err(DecodeError::Missing(f.name));
            }
        }
        Kind::Str { optional } => {
            let s = get_str(dc, t)?;
            if s.is_null() && !optional {
                return Err(DecodeError::Missing(f.name));
            }
            ptr::write_unaligned(fp as *mut *mut u8, s);
        }
        Kind::StrArray { len } => {
            let count = len_of(len, out, all)?;
            if !present(dc)? {
                if count > 0 {
                    return Err(DecodeError::Missing(f.name));
                }
            } else {
                let n = dc.check_count(f.name, count, 4)?;
                let q = alloc(arena(t)?, n * 8, 8)? as *mut *mut u8;
                for i in 0..n {
                    let s = get_str(dc, t)?;
                    if s.is_null() {
                        return Err(DecodeError::Invalid("NULL string in a string array"));
                    }
                    *q.add(i) = s;
                }
                ptr::write_unaligned(fp as *mut *mut u8, q as *mut u8);
            }
        }
        _ => return Err(DecodeError::Invalid("output member in an input struct")),
    }
    Ok(())
}

fn present(dc: &mut Decoder) -> Result<bool, DecodeError> {
    match dc.u32()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::Invalid("presence flag")),
    }
}

unsafe fn get_str(dc: &mut Decoder, t: Target) -> Result<*mut u8, DecodeError> {
    let n = dc.u32()? as usize;
    if n == 0 {
        return Ok(ptr::null_mut());
    }
    let bytes = dc.bytes(n - 1)?;
    let q = alloc(arena(t)?, n, 1)?;
    ptr::copy_nonoverlapping(bytes.as_ptr(), q, n - 1);
    Ok(q)
}

/// Writes a returned chain into the application's own chain, in the order [`put_shape`] named it.
unsafe fn get_chain_writeback(
    dc: &mut Decoder,
    d: &StructDesc,
    mut n: *mut u8,
    h: &dyn Handles,
) -> Result<(), DecodeError> {
    let mut carried = 0;
    while !n.is_null() && carried < MAX_CHAIN {
        let st = vk::StructureType::from_raw(ptr::read_unaligned(n as *const i32));
        if let Some(sd) = chain_member(d, st) {
            carried += 1;
            if !present(dc)? {
                return Err(DecodeError::Invalid(
                    "returned chain is shorter than the request",
                ));
            }
            let found = dc.u32()? as i32;
            if found != st.as_raw() {
                return Err(DecodeError::ChainMismatch {
                    expected: st.as_raw(),
                    found,
                });
            }
            get_struct(dc, sd, n, Target::Writeback, h, true)?;
        }
        n = read_ptr(n.add(8)) as *mut u8;
    }
    if dc.u32()? != 0 {
        return Err(DecodeError::Invalid(
            "returned chain is longer than the request",
        ));
    }
    Ok(())
}

/// Encodes the chain shape of an output struct the application passed: which structure types
/// it wants filled, in order.
///
/// # Safety
/// `p` must point at a valid struct `d` with a valid chain.
pub unsafe fn put_shape(e: &mut Encoder, d: &StructDesc, p: *const u8) {
    if !has_chain(d) {
        return;
    }
    let mut types = [0u32; MAX_CHAIN];
    let mut count = 0;
    let mut n = read_ptr(p.add(8));
    while !n.is_null() && count < MAX_CHAIN {
        let st = vk::StructureType::from_raw(ptr::read_unaligned(n as *const i32));
        if chain_member(d, st).is_some() {
            types[count] = st.as_raw() as u32;
            count += 1;
        }
        n = read_ptr(n.add(8));
    }
    e.u32(count as u32);
    for t in &types[..count] {
        e.u32(*t);
    }
}

/// Builds, in the arena, an output struct with the chain shape the request names.
fn get_shape(dc: &mut Decoder, d: &StructDesc, out: *mut u8, a: &Bump) -> Result<(), DecodeError> {
    // SAFETY: `out` is arena memory of `d.size` bytes; chain nodes are allocated here.
    unsafe {
        if let Some(st) = d.s_type {
            ptr::write_unaligned(out as *mut i32, st.as_raw());
        }
        if !has_chain(d) {
            return Ok(());
        }
        let count = dc.u32()? as usize;
        if count > MAX_CHAIN {
            return Err(DecodeError::TooMany {
                what: "chain",
                count: count as u64,
            });
        }
        let mut link = out.add(8) as *mut *mut u8;
        for _ in 0..count {
            let st = vk::StructureType::from_raw(dc.u32()? as i32);
            let sd = chain_member(d, st).ok_or(DecodeError::BadStructureType(st.as_raw()))?;
            let node = alloc(a, sd.size, sd.align)?;
            ptr::write_unaligned(node as *mut i32, st.as_raw());
            *link = node;
            link = node.add(8) as *mut *mut u8;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- whole calls

/// A created object the server binds to the client's id once the call succeeded.
pub struct NewHandle {
    pub ty: vk::ObjectType,
    pub id: u64,
    pub slot: *const u64,
}

/// A request decoded on the server.
pub struct DecodedCall<'a> {
    pub args: [u64; MAX_PARAMS],
    pub new_handles: bumpalo::collections::Vec<'a, NewHandle>,
    /// The ids the destroyed parameter ([`CommandDesc::destroys`]) named, in order, `0` for a
    /// null handle: the server unbinds by id, without a map from host handles back.
    pub destroyed: bumpalo::collections::Vec<'a, u64>,
}

/// Decodes handles as `inner` does and keeps the ids it was given.
struct Recording<'r, 'a> {
    inner: &'r dyn ServerObjects,
    ids: std::cell::RefCell<&'r mut bumpalo::collections::Vec<'a, u64>>,
}

impl Handles for Recording<'_, '_> {
    fn encode_handle(
        &self,
        ty: vk::ObjectType,
        dispatchable: bool,
        raw: u64,
    ) -> Result<u64, DecodeError> {
        self.inner.encode_handle(ty, dispatchable, raw)
    }
    fn decode_handle(
        &self,
        ty: vk::ObjectType,
        dispatchable: bool,
        id: u64,
    ) -> Result<u64, DecodeError> {
        self.ids.borrow_mut().push(id);
        self.inner.decode_handle(ty, dispatchable, id)
    }
    fn decode_handles(
        &self,
        ty: vk::ObjectType,
        dispatchable: bool,
        ids: &mut [u64],
    ) -> Result<(), DecodeError> {
        self.ids.borrow_mut().extend_from_slice(ids);
        self.inner.decode_handles(ty, dispatchable, ids)
    }
}

impl ServerObjects for Recording<'_, '_> {
    fn check_new(&self, ty: vk::ObjectType, id: u64) -> Result<(), DecodeError> {
        self.inner.check_new(ty, id)
    }
    fn check_new_all(&self, ty: vk::ObjectType, ids: &[u64]) -> Result<(), DecodeError> {
        self.inner.check_new_all(ty, ids)
    }
}

fn out_limit(ty: Ty, n: u64) -> Result<usize, DecodeError> {
    match n.checked_mul(ty.c_size() as u64) {
        Some(b) if b <= MAX_OUTPUT_BYTES as u64 => Ok(n as usize),
        _ => Err(DecodeError::TooMany {
            what: "output elements",
            count: n,
        }),
    }
}

/// Client: encodes a call's request from the application's arguments. The ids it names for
/// new objects are pushed to `new_ids`, in order.
///
/// # Safety
/// `args` must be the application's arguments for `cmd`, valid as Vulkan requires.
pub unsafe fn encode_request(
    e: &mut Encoder,
    cmd: &CommandDesc,
    args: &[u64],
    cx: &dyn ClientObjects,
    new_ids: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    if args.len() < cmd.params.len() {
        return Err(DecodeError::Invalid("argument count"));
    }
    let base = args.as_ptr() as *const u8;
    let scope = Scope {
        name: cmd.name,
        p: base,
        outer: None,
    };
    for (i, f) in cmd.params.iter().enumerate() {
        let a = args[i] as *const u8;
        match f.kind {
            Kind::Out(ty) => put_out_elems(e, cmd, ty, a, 1, cx, new_ids),
            Kind::OutArray { elem, len } => {
                let n = len_of(len, base, cmd.params)? as usize;
                put_out_elems(e, cmd, elem, a, n, cx, new_ids);
            }
            Kind::InOutCount(ty) => e.u64(if a.is_null() { 0 } else { read_scalar(ty, a) }),
            Kind::OutCounted { elem, count } => {
                e.u32(!a.is_null() as u32);
                if !a.is_null() {
                    let n = len_of(Len::Sibling(count), base, cmd.params)? as usize;
                    put_out_elems(e, cmd, elem, a, n, cx, new_ids);
                }
            }
            Kind::OutCountedBytes { .. } => e.u32(!a.is_null() as u32),
            Kind::OutBytes { len } => {
                let n = len_of(len, base, cmd.params)? as usize;
                if a.is_null() {
                    return Err(DecodeError::Missing(f.name));
                }
                e.bytes(core::slice::from_raw_parts(a, n));
            }
            _ => put_field(e, f, base, cmd.params, cx, &scope)?,
        }
    }
    Ok(())
}

/// What a request says about output elements: chain shapes, or the ids of new objects.
unsafe fn put_out_elems(
    e: &mut Encoder,
    cmd: &CommandDesc,
    elem: Ty,
    p: *const u8,
    n: usize,
    cx: &dyn ClientObjects,
    new_ids: &mut Vec<u64>,
) {
    match elem {
        Ty::Struct(d) if has_chain(d) => {
            for i in 0..n {
                put_shape(e, d, p.add(i * d.size));
            }
        }
        Ty::Handle(_) | Ty::Dispatchable(_) if cmd.creates => {
            for _ in 0..n {
                let id = cx.new_id();
                new_ids.push(id);
                e.u64(id);
            }
        }
        _ => {}
    }
}

/// Server: decodes a request into arguments for the host driver, with every pointer into
/// `arena`.
pub fn decode_request<'a>(
    dc: &mut Decoder,
    cmd: &CommandDesc,
    arena: &'a Bump,
    sx: &dyn ServerObjects,
) -> Result<DecodedCall<'a>, DecodeError> {
    let mut call = DecodedCall {
        args: [0; MAX_PARAMS],
        new_handles: bumpalo::collections::Vec::new_in(arena),
        destroyed: bumpalo::collections::Vec::new_in(arena),
    };
    if cmd.params.len() > MAX_PARAMS {
        return Err(DecodeError::Invalid("parameter count"));
    }
    let base = call.args.as_mut_ptr() as *mut u8;
    let t = Target::Arena(arena);
    for (i, f) in cmd.params.iter().enumerate() {
        // SAFETY: `base` is the argument array, which every offset of `cmd.params` indexes;
        // every pointer stored in it points into `arena`.
        unsafe {
            let q = match f.kind {
                Kind::Out(ty) => {
                    let q = alloc_array(arena, ty, 1)?;
                    get_out_elems(dc, cmd, ty, q, 1, arena, sx, &mut call.new_handles)?;
                    q
                }
                Kind::OutArray { elem, len } => {
                    let n = out_limit(elem, len_of(len, base, cmd.params)?)?;
                    let q = alloc_array(arena, elem, n)?;
                    get_out_elems(dc, cmd, elem, q, n, arena, sx, &mut call.new_handles)?;
                    q
                }
                Kind::InOutCount(ty) => {
                    let q = alloc_array(arena, ty, 1)?;
                    let v = dc.u64()?;
                    if matches!(ty, Ty::U32) && v > u32::MAX as u64 {
                        return Err(DecodeError::Invalid("count"));
                    }
                    write_scalar(ty, q, v);
                    q
                }
                Kind::OutCounted { elem, count } => {
                    if present(dc)? {
                        let n = out_limit(elem, len_of(Len::Sibling(count), base, cmd.params)?)?;
                        let q = alloc_array(arena, elem, n)?;
                        get_out_elems(dc, cmd, elem, q, n, arena, sx, &mut call.new_handles)?;
                        q
                    } else {
                        ptr::null_mut()
                    }
                }
                Kind::OutCountedBytes { count } => {
                    if present(dc)? {
                        let n = out_limit(Ty::U8, len_of(Len::Sibling(count), base, cmd.params)?)?;
                        alloc(arena, n, 8)?
                    } else {
                        ptr::null_mut()
                    }
                }
                Kind::OutBytes { len } => {
                    let n = out_limit(Ty::U8, len_of(len, base, cmd.params)?)?;
                    // The application's bytes arrive first: no allocation for a size the
                    // message does not hold.
                    let src = dc.bytes(n)?;
                    let q = alloc(arena, n, 8)?;
                    ptr::copy_nonoverlapping(src.as_ptr(), q, n);
                    q
                }
                _ if cmd.destroys == Some(i as u16) => {
                    let rec = Recording {
                        inner: sx,
                        ids: std::cell::RefCell::new(&mut call.destroyed),
                    };
                    get_field(dc, f, base, cmd.params, t, &rec)?;
                    continue;
                }
                _ => {
                    get_field(dc, f, base, cmd.params, t, sx)?;
                    continue;
                }
            };
            call.args[i] = q as u64;
        }
    }
    dc.finish()?;
    Ok(call)
}

#[allow(clippy::too_many_arguments)]
unsafe fn get_out_elems<'a>(
    dc: &mut Decoder,
    cmd: &CommandDesc,
    elem: Ty,
    q: *mut u8,
    n: usize,
    arena: &'a Bump,
    sx: &dyn ServerObjects,
    new_handles: &mut bumpalo::collections::Vec<'a, NewHandle>,
) -> Result<(), DecodeError> {
    match elem {
        Ty::Struct(d) => {
            for i in 0..n {
                get_shape(dc, d, q.add(i * d.size), arena)?;
            }
        }
        Ty::Handle(ty) | Ty::Dispatchable(ty) if cmd.creates => {
            dc.check_count("new handles", n as u64, 8)?;
            new_handles
                .try_reserve(n)
                .map_err(|_| DecodeError::TooLarge)?;
            let first = new_handles.len();
            for i in 0..n {
                let id = dc.u64()?;
                // Ids within one call rise strictly, which rules out duplicates cheaply.
                if new_handles.last().is_some_and(|l| l.id >= id) {
                    return Err(DecodeError::BadNewHandle { ty, id });
                }
                new_handles.push(NewHandle {
                    ty,
                    id,
                    slot: q.add(i * 8) as *const u64,
                });
            }
            // The table checks the array in one go; the ids are copied out of the records.
            let ids = arena
                .try_alloc_slice_fill_iter(new_handles[first..].iter().map(|h| h.id))
                .map_err(|_| DecodeError::TooLarge)?;
            sx.check_new_all(ty, ids)?;
        }
        _ => {}
    }
    Ok(())
}

/// Server: encodes the reply of a call the host driver has returned from.
///
/// # Safety
/// `call` must be the decoded call of `cmd`, after the host driver filled its outputs.
pub unsafe fn encode_reply(
    e: &mut Encoder,
    cmd: &CommandDesc,
    call: &DecodedCall,
    ret: u64,
    sx: &dyn Handles,
) -> Result<(), DecodeError> {
    e.u64(ret);
    let base = call.args.as_ptr() as *const u8;
    for (i, f) in cmd.params.iter().enumerate() {
        let a = call.args[i] as *const u8;
        match f.kind {
            Kind::Out(ty) => put_results(e, cmd, ty, a, 1, ret, sx)?,
            Kind::OutArray { elem, len } => {
                let n = len_of(len, base, cmd.params)? as usize;
                put_results(e, cmd, elem, a, n, ret, sx)?
            }
            Kind::InOutCount(ty) => e.u64(read_scalar(ty, a)),
            Kind::OutCounted { elem, count } if !a.is_null() => {
                let n = len_of(Len::Sibling(count), base, cmd.params)? as usize;
                put_results(e, cmd, elem, a, n, ret, sx)?
            }
            Kind::OutCountedBytes { count } if !a.is_null() => {
                let n = len_of(Len::Sibling(count), base, cmd.params)? as usize;
                e.bytes(core::slice::from_raw_parts(a, n));
            }
            Kind::OutBytes { len } => {
                let n = len_of(len, base, cmd.params)? as usize;
                e.bytes(core::slice::from_raw_parts(a, n));
            }
            _ => {}
        }
    }
    Ok(())
}

unsafe fn put_results(
    e: &mut Encoder,
    cmd: &CommandDesc,
    elem: Ty,
    p: *const u8,
    n: usize,
    ret: u64,
    h: &dyn Handles,
) -> Result<(), DecodeError> {
    match elem {
        // The client named the new objects; it learns which of them exist.
        Ty::Handle(_) | Ty::Dispatchable(_) if cmd.creates => {
            for i in 0..n {
                let host = read_scalar(Ty::U64, p.add(i * 8));
                e.u32(created(cmd, ret, host) as u32);
            }
            Ok(())
        }
        _ => put_elems(e, elem, p, n, h, None),
    }
}

/// Whether the handle `host` that creating command `cmd` returning `ret` wrote is an object:
/// after success, every one the driver made (pipeline commands may leave some
/// `VK_NULL_HANDLE`, as with `VK_PIPELINE_COMPILE_REQUIRED`). After a failure, only the pipeline
/// commands may have made some (Vulkan has them make what they can); the other commands' outputs
/// are undefined then.
pub fn created(cmd: &CommandDesc, ret: u64, host: u64) -> bool {
    let ok = cmd.ret != Ret::Result || (ret as i64) >= 0;
    host != 0 && (ok || cmd.name.contains("Pipelines"))
}

/// Client: writes `VK_NULL_HANDLE` into every handle a creating command outputs, for a call
/// that fails without reaching the server (its outputs would otherwise keep whatever the
/// application left there, which the loader would take for an object).
///
/// # Safety
/// `args` must be the application's arguments for `cmd`, valid as Vulkan requires.
pub unsafe fn clear_created(cmd: &CommandDesc, args: &[u64]) -> Result<(), DecodeError> {
    if !cmd.creates || args.len() < cmd.params.len() {
        return Ok(());
    }
    let base = args.as_ptr() as *const u8;
    for (i, f) in cmd.params.iter().enumerate() {
        let n = match f.kind {
            Kind::Out(Ty::Handle(_) | Ty::Dispatchable(_)) => 1,
            Kind::OutArray {
                elem: Ty::Handle(_) | Ty::Dispatchable(_),
                len,
            } => len_of(len, base, cmd.params)? as usize,
            _ => continue,
        };
        let p = args[i] as *mut u64;
        if !p.is_null() {
            for k in 0..n {
                ptr::write_unaligned(p.add(k), 0);
            }
        }
    }
    Ok(())
}

/// Client: where a creating command writes the non-dispatchable handles it creates, and how
/// many: `None` for other commands.
///
/// # Safety
/// `args` must be the application's arguments for `cmd`, valid as Vulkan requires.
pub unsafe fn created_handles(
    cmd: &CommandDesc,
    args: &[u64],
) -> Result<Option<(*mut u64, usize)>, DecodeError> {
    if !cmd.creates || args.len() < cmd.params.len() {
        return Ok(None);
    }
    let base = args.as_ptr() as *const u8;
    for (i, f) in cmd.params.iter().enumerate() {
        let n = match f.kind {
            Kind::Out(Ty::Handle(_)) => 1,
            Kind::OutArray {
                elem: Ty::Handle(_),
                len,
            } => len_of(len, base, cmd.params)? as usize,
            _ => continue,
        };
        return Ok(Some((args[i] as *mut u64, n)));
    }
    Ok(None)
}

/// Client: writes a reply into the application's output arguments and returns the C result.
///
/// # Safety
/// `args` must be the same arguments `encode_request` encoded, and `new_ids` the ids it named.
pub unsafe fn decode_reply(
    dc: &mut Decoder,
    cmd: &CommandDesc,
    args: &[u64],
    cx: &dyn ClientObjects,
    new_ids: &[u64],
) -> Result<u64, DecodeError> {
    let ret = dc.u64()?;
    let base = args.as_ptr() as *const u8;
    let mut ids = new_ids.iter().copied();
    // The capacities the application offered, before the returned counts overwrite them.
    let mut caps = [0u64; MAX_PARAMS];
    for (i, f) in cmd.params.iter().enumerate() {
        if let Kind::InOutCount(ty) = f.kind {
            if args[i] != 0 {
                caps[i] = read_scalar(ty, args[i] as *const u8);
            }
        }
    }
    for (i, f) in cmd.params.iter().enumerate() {
        let a = args[i] as *mut u8;
        match f.kind {
            Kind::Out(ty) => get_results(dc, cmd, ty, a, 1, &mut ids, cx)?,
            Kind::OutArray { elem, len } => {
                let n = len_of(len, base, cmd.params)? as usize;
                get_results(dc, cmd, elem, a, n, &mut ids, cx)?
            }
            Kind::InOutCount(ty) => {
                let v = dc.u64()?;
                if matches!(ty, Ty::U32) && v > u32::MAX as u64 {
                    return Err(DecodeError::Invalid("returned count"));
                }
                let filled = cmd.params.iter().enumerate().any(|(j, p)| {
                    args[j] != 0 && matches!(p.kind, Kind::OutCounted { count, .. } | Kind::OutCountedBytes { count } if count as usize == i)
                });
                if filled && v > caps[i] {
                    return Err(DecodeError::Invalid(
                        "returned count exceeds the capacity offered",
                    ));
                }
                if !a.is_null() {
                    write_scalar(ty, a, v);
                }
            }
            Kind::OutCounted { elem, count } if !a.is_null() => {
                let n = len_of(Len::Sibling(count), base, cmd.params)? as usize;
                get_results(dc, cmd, elem, a, n, &mut ids, cx)?
            }
            Kind::OutCountedBytes { count } if !a.is_null() => {
                let n = len_of(Len::Sibling(count), base, cmd.params)? as usize;
                ptr::copy_nonoverlapping(dc.bytes(n)?.as_ptr(), a, n);
            }
            Kind::OutBytes { len } => {
                let n = len_of(len, base, cmd.params)? as usize;
                ptr::copy_nonoverlapping(dc.bytes(n)?.as_ptr(), a, n);
            }
            _ => {}
        }
    }
    dc.finish()?;
    Ok(ret)
}

#[allow(clippy::too_many_arguments)]
unsafe fn get_results(
    dc: &mut Decoder,
    cmd: &CommandDesc,
    elem: Ty,
    p: *mut u8,
    n: usize,
    ids: &mut impl Iterator<Item = u64>,
    cx: &dyn ClientObjects,
) -> Result<(), DecodeError> {
    match elem {
        Ty::Handle(ty) | Ty::Dispatchable(ty) if cmd.creates => {
            let dispatchable = matches!(elem, Ty::Dispatchable(_));
            for i in 0..n {
                let id = ids.next().ok_or(DecodeError::Invalid("new handle count"))?;
                let v = match dc.u32()? {
                    1 => cx.wrap_new(ty, dispatchable, id),
                    0 => 0,
                    _ => return Err(DecodeError::Invalid("new handle flag")),
                };
                write_scalar(Ty::U64, p.add(i * 8), v);
            }
            Ok(())
        }
        _ => {
            let size = elem.c_size();
            for i in 0..n {
                get_value(dc, elem, p.add(i * size), Target::Writeback, cx)?;
            }
            Ok(())
        }
    }
}
