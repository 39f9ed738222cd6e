//! Private data (`VK_EXT_private_data`, core in Vulkan 1.3) is kept in the client. The values are
//! the application's own, attached to its objects; the host driver has no use for them, and a
//! round trip per `vkGetPrivateData` made tools that tag every object slow (the CTS's
//! `private_data` cases ran a hundred times slower than native).
//!
//! Slots are client ids the server never sees. Values are kept per object, so that destroying
//! an object drops them: a dispatchable object's address can come back as the next object's,
//! which must read 0. Objects freed with their pool rather than one by one (descriptor sets)
//! keep their values until the slot goes; their ids are never given out again, so no other
//! object can read them.

use crate::util::app_slice;
use ash::vk::{self, Handle};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::LazyLock;
use wire::desc::{CommandDesc, Kind, Len, Ty};

/// An object (type, handle) → its values as (slot, value), the few slots it was given.
type Values = HashMap<(i32, u64), Vec<(u64, u64)>>;

static VALUES: LazyLock<Mutex<Values>> = LazyLock::new(Default::default);

/// Whether the process ever set a value: until then, destroying objects costs no lock.
static USED: AtomicBool = AtomicBool::new(false);

/// Slot ids: the server never sees them.
static NEXT_SLOT: AtomicU64 = AtomicU64::new(1);

pub unsafe extern "system" fn vkCreatePrivateDataSlot(
    _device: vk::Device,
    _info: *const vk::PrivateDataSlotCreateInfo<'_>,
    _allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::PrivateDataSlot,
) -> vk::Result {
    *out = vk::PrivateDataSlot::from_raw(NEXT_SLOT.fetch_add(1, Ordering::Relaxed));
    vk::Result::SUCCESS
}

pub unsafe extern "system" fn vkDestroyPrivateDataSlot(
    _device: vk::Device,
    slot: vk::PrivateDataSlot,
    _allocator: *const vk::AllocationCallbacks<'_>,
) {
    let slot = slot.as_raw();
    if slot == 0 || !USED.load(Ordering::Acquire) {
        return;
    }
    VALUES.lock().retain(|_, values| {
        values.retain(|(s, _)| *s != slot);
        !values.is_empty()
    });
}

pub unsafe extern "system" fn vkSetPrivateData(
    _device: vk::Device,
    ty: vk::ObjectType,
    handle: u64,
    slot: vk::PrivateDataSlot,
    data: u64,
) -> vk::Result {
    let slot = slot.as_raw();
    USED.store(true, Ordering::Release);
    let mut all = VALUES.lock();
    let values = all.entry((ty.as_raw(), handle)).or_default();
    match values.iter_mut().find(|(s, _)| *s == slot) {
        Some((_, v)) => *v = data,
        None => values.push((slot, data)),
    }
    vk::Result::SUCCESS
}

pub unsafe extern "system" fn vkGetPrivateData(
    _device: vk::Device,
    ty: vk::ObjectType,
    handle: u64,
    slot: vk::PrivateDataSlot,
    data: *mut u64,
) {
    *data = get(ty, handle, slot.as_raw());
}

fn get(ty: vk::ObjectType, handle: u64, slot: u64) -> u64 {
    if !USED.load(Ordering::Acquire) {
        return 0;
    }
    VALUES
        .lock()
        .get(&(ty.as_raw(), handle))
        .and_then(|values| values.iter().find(|(s, _)| *s == slot))
        .map_or(0, |(_, v)| *v)
}

/// Drops the values of objects the application destroyed.
pub fn forget(ty: vk::ObjectType, handles: &[u64]) {
    if !USED.load(Ordering::Acquire) || handles.is_empty() {
        return;
    }
    let mut all = VALUES.lock();
    for h in handles {
        all.remove(&(ty.as_raw(), *h));
    }
}

/// Drops the values of the objects `cmd` destroyed through its parameter `index`.
///
/// # Safety
/// `args` are the application's arguments to `cmd`: an array parameter holds its count.
pub unsafe fn destroyed(cmd: &CommandDesc, index: u16, args: &[u64]) {
    let i = index as usize;
    match cmd.params[i].kind {
        Kind::Value(Ty::Handle(ty)) | Kind::Object(Ty::Handle(ty)) => forget(ty, &[args[i]]),
        Kind::Array {
            elem: Ty::Handle(ty),
            len: Len::Sibling(n),
            ..
        } => forget(
            ty,
            app_slice(args[i] as *const u64, args[n as usize] as u32),
        ),
        // Dispatchable objects: dropped with their wrappers.
        _ => {}
    }
}

/// Drops the values of a dispatchable object whose wrapper is freed (under whichever type).
pub fn forget_dispatchable(handle: u64) {
    for ty in [
        vk::ObjectType::DEVICE,
        vk::ObjectType::QUEUE,
        vk::ObjectType::COMMAND_BUFFER,
    ] {
        forget(ty, &[handle]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_DEVICE: vk::Device = vk::Device::null();

    unsafe fn slot() -> vk::PrivateDataSlot {
        let mut s = vk::PrivateDataSlot::null();
        let r = vkCreatePrivateDataSlot(NO_DEVICE, std::ptr::null(), std::ptr::null(), &mut s);
        assert_eq!(r, vk::Result::SUCCESS);
        assert_ne!(s.as_raw(), 0);
        s
    }

    unsafe fn set(ty: vk::ObjectType, h: u64, s: vk::PrivateDataSlot, v: u64) {
        assert_eq!(
            vkSetPrivateData(NO_DEVICE, ty, h, s, v),
            vk::Result::SUCCESS
        );
    }

    unsafe fn read(ty: vk::ObjectType, h: u64, s: vk::PrivateDataSlot) -> u64 {
        let mut v = u64::MAX;
        vkGetPrivateData(NO_DEVICE, ty, h, s, &mut v);
        v
    }

    // The values are process-wide: each test uses handles of its own.
    #[test]
    fn values_are_per_object_type_and_slot_and_start_at_zero() {
        unsafe {
            let (a, b) = (slot(), slot());
            let (buf, img) = (vk::ObjectType::BUFFER, vk::ObjectType::IMAGE);
            assert_eq!(read(buf, 0x1000, a), 0);
            set(buf, 0x1000, a, 7);
            set(buf, 0x1000, b, 8);
            set(img, 0x1000, a, 9);
            set(buf, 0x1000, a, 70);
            assert_eq!(
                [
                    read(buf, 0x1000, a),
                    read(buf, 0x1000, b),
                    read(img, 0x1000, a)
                ],
                [70, 8, 9]
            );
            assert_eq!(read(buf, 0x1001, a), 0);
            vkDestroyPrivateDataSlot(NO_DEVICE, a, std::ptr::null());
            assert_eq!([read(buf, 0x1000, a), read(buf, 0x1000, b)], [0, 8]);
        }
    }

    #[test]
    fn destroyed_objects_lose_their_values() {
        unsafe {
            let s = slot();
            let (cb, fence) = (vk::ObjectType::COMMAND_BUFFER, vk::ObjectType::FENCE);
            set(cb, 0x2000, s, 1);
            set(fence, 0x2001, s, 2);
            set(fence, 0x2002, s, 3);
            forget_dispatchable(0x2000);
            forget(fence, &[0x2001]);
            assert_eq!(
                [
                    read(cb, 0x2000, s),
                    read(fence, 0x2001, s),
                    read(fence, 0x2002, s)
                ],
                [0, 0, 3]
            );
        }
    }
}
