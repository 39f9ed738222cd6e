//! The application's allocation callbacks. The host objects live in the server and use its
//! memory, but what the ICD keeps for an object created with callbacks (a record per object)
//! is allocated through them: an application that counts its driver's memory sees it, and one
//! whose allocator fails gets `VK_ERROR_OUT_OF_HOST_MEMORY`, with nothing created, as from any
//! driver. The record holds the callbacks, which free it when the object is destroyed.
//! Dispatchable objects (instances, devices) are the loader's and their wrappers' business.

use crate::log::log;
use crate::util::app_slice;
use ash::vk;
use parking_lot::Mutex;
use std::collections::HashMap;
use wire::desc::{CommandDesc, Kind, Len, Ty};
use wire::interp;

/// What the ICD keeps, in the application's memory, for an object created with its callbacks.
#[repr(C)]
struct Record {
    id: u64,
    callbacks: vk::AllocationCallbacks<'static>,
}

/// Records by object id, as addresses.
static RECORDS: Mutex<Option<HashMap<u64, usize>>> = Mutex::new(None);

/// Records allocated for a call's new objects, before the call.
pub struct Reserved {
    records: Vec<*mut Record>,
    out: *mut u64,
}

/// The callbacks a call names in its `pAllocator` parameter, if any.
fn callbacks(cmd: &CommandDesc, args: &[u64]) -> Option<&'static vk::AllocationCallbacks<'static>> {
    let i = cmd.params.iter().position(|p| p.name == "pAllocator")?;
    let p = *args.get(i)? as *const vk::AllocationCallbacks<'static>;
    // SAFETY: a non-null pAllocator points at valid callbacks, as Vulkan requires.
    unsafe { p.as_ref() }
}

/// Allocates a record for each object `cmd` is to create with the application's callbacks;
/// `VK_ERROR_OUT_OF_HOST_MEMORY` (and nothing kept) if the allocator refuses one.
///
/// # Safety
/// `args` are the application's arguments for `cmd`.
pub unsafe fn reserve(cmd: &CommandDesc, args: &[u64]) -> Result<Option<Reserved>, vk::Result> {
    // Every generic call comes here: the flag first, the parameter search only for creations.
    if !cmd.creates {
        return Ok(None);
    }
    let Some(cb) = callbacks(cmd, args) else {
        return Ok(None);
    };
    let Ok(Some((out, n))) = interp::created_handles(cmd, args) else {
        return Ok(None);
    };
    let Some(alloc) = cb.pfn_allocation else {
        return Ok(None);
    };
    let mut records = Vec::with_capacity(n);
    for _ in 0..n {
        let p = alloc(
            cb.p_user_data,
            std::mem::size_of::<Record>(),
            std::mem::align_of::<Record>(),
            vk::SystemAllocationScope::OBJECT,
        ) as *mut Record;
        if p.is_null() {
            log!(
                debug,
                "airlock: {}: the application's allocator refused {} bytes; \
                 VK_ERROR_OUT_OF_HOST_MEMORY",
                cmd.name,
                std::mem::size_of::<Record>()
            );
            free(cb, &records);
            return Err(vk::Result::ERROR_OUT_OF_HOST_MEMORY);
        }
        p.write(Record {
            id: 0,
            callbacks: *cb,
        });
        records.push(p);
    }
    Ok(Some(Reserved { records, out }))
}

fn free(cb: &vk::AllocationCallbacks<'_>, records: &[*mut Record]) {
    if let Some(f) = cb.pfn_free {
        for r in records {
            // SAFETY: allocated by these callbacks, freed once.
            unsafe { f(cb.p_user_data, *r as *mut std::ffi::c_void) };
        }
    }
}

/// After the call: each object created keeps its record; the others' are freed.
///
/// # Safety
/// `r` is what [`reserve`] returned for this call, which has returned.
pub unsafe fn created(r: Reserved) {
    let Some(first) = r.records.first() else {
        return;
    };
    let cb = (**first).callbacks;
    let mut unused = Vec::new();
    let mut map = RECORDS.lock();
    let map = map.get_or_insert_with(HashMap::new);
    for (k, rec) in r.records.iter().enumerate() {
        let id = r.out.add(k).read_unaligned();
        if id == 0 {
            unused.push(*rec);
        } else {
            (**rec).id = id;
            if let Some(old) = map.insert(id, *rec as usize) {
                log!(error, "airlock: object {id:#x} had a record already");
                unused.push(old as *mut Record);
            }
        }
    }
    free(&cb, &unused);
}

/// Frees the records of the objects a destroying command destroys.
///
/// # Safety
/// `args` are the application's arguments to `cmd`, whose parameter `index` it destroys.
pub unsafe fn destroyed(cmd: &CommandDesc, index: u16, args: &[u64]) {
    // Only objects created with callbacks have records, and those are destroyed by commands
    // that take callbacks (vkFreeDescriptorSets and vkFreeCommandBuffers do not).
    if !cmd.params.iter().any(|p| p.name == "pAllocator") {
        return;
    }
    let i = index as usize;
    let ids: &[u64] = match cmd.params[i].kind {
        Kind::Value(Ty::Handle(_)) | Kind::Object(Ty::Handle(_)) => &args[i..=i],
        Kind::Array {
            elem: Ty::Handle(_),
            len: Len::Sibling(n),
            ..
        } => app_slice(args[i] as *const u64, args[n as usize] as u32),
        _ => return,
    };
    let mut gone = Vec::new();
    {
        let mut map = RECORDS.lock();
        let Some(map) = map.as_mut().filter(|m| !m.is_empty()) else {
            return;
        };
        for id in ids {
            if let Some(p) = map.remove(id) {
                gone.push(p as *mut Record);
            }
        }
    }
    for p in gone {
        let cb = (*p).callbacks;
        free(&cb, &[p]);
    }
}
