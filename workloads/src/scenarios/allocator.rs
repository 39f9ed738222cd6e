//! The application's allocation callbacks, as the CTS's `alloc_callback_fail` cases use them:
//! objects created with an allocator that refuses everything must fail with
//! `VK_ERROR_OUT_OF_HOST_MEMORY` and create nothing; with an allocator that counts, creation
//! succeeds, the allocator is called, and every allocation is freed once the object is
//! destroyed. Object kinds whose memory native lavapipe takes from the callbacks: a buffer, a
//! fence, an event, a semaphore, a sampler, a query pool and a descriptor pool (the ICD
//! allocates its record of each through them, icd/src/allocation.rs).

use crate::error::{ensure, Error};
use crate::{Context, Report, Result};
use ash::vk;
use std::alloc::Layout;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;

/// What an allocator saw; `refuse` makes every allocation fail.
#[derive(Default)]
struct Counts {
    refuse: bool,
    calls: u64,
    live: HashMap<usize, Layout>,
}

unsafe extern "system" fn allocate(
    user: *mut c_void,
    size: usize,
    align: usize,
    _scope: vk::SystemAllocationScope,
) -> *mut c_void {
    let counts = &*(user as *const Mutex<Counts>);
    let mut c = counts.lock().unwrap();
    c.calls += 1;
    if c.refuse || size == 0 {
        return std::ptr::null_mut();
    }
    let Ok(layout) = Layout::from_size_align(size, align.max(1)) else {
        return std::ptr::null_mut();
    };
    let p = std::alloc::alloc(layout);
    if !p.is_null() {
        c.live.insert(p as usize, layout);
    }
    p as *mut c_void
}

unsafe extern "system" fn reallocate(
    user: *mut c_void,
    old: *mut c_void,
    size: usize,
    align: usize,
    scope: vk::SystemAllocationScope,
) -> *mut c_void {
    if old.is_null() {
        return allocate(user, size, align, scope);
    }
    let counts = &*(user as *const Mutex<Counts>);
    let Some(layout) = counts.lock().unwrap().live.get(&(old as usize)).copied() else {
        return std::ptr::null_mut();
    };
    if size == 0 {
        free(user, old);
        return std::ptr::null_mut();
    }
    let p = allocate(user, size, align, scope);
    if !p.is_null() {
        std::ptr::copy_nonoverlapping(old as *const u8, p as *mut u8, size.min(layout.size()));
        free(user, old);
    }
    p
}

unsafe extern "system" fn free(user: *mut c_void, p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let counts = &*(user as *const Mutex<Counts>);
    if let Some(layout) = counts.lock().unwrap().live.remove(&(p as usize)) {
        std::alloc::dealloc(p as *mut u8, layout);
    }
}

fn callbacks(counts: &Mutex<Counts>) -> vk::AllocationCallbacks<'_> {
    vk::AllocationCallbacks {
        p_user_data: counts as *const _ as *mut c_void,
        pfn_allocation: Some(allocate),
        pfn_reallocation: Some(reallocate),
        pfn_free: Some(free),
        ..Default::default()
    }
}

/// Creates one object of a kind with `cb` and destroys it again; the creation's result.
type Kind = fn(&Context, &vk::AllocationCallbacks<'_>) -> vk::Result;

fn result<T>(r: std::result::Result<T, vk::Result>, destroy: impl FnOnce(T)) -> vk::Result {
    match r {
        Ok(o) => {
            destroy(o);
            vk::Result::SUCCESS
        }
        Err(e) => e,
    }
}

const KINDS: [(&str, Kind); 7] = [
    ("buffer", |ctx, cb| unsafe {
        let info = vk::BufferCreateInfo::default()
            .size(4096)
            .usage(vk::BufferUsageFlags::STORAGE_BUFFER);
        let d = &ctx.device;
        result(d.create_buffer(&info, Some(cb)), |o| {
            d.destroy_buffer(o, Some(cb))
        })
    }),
    ("fence", |ctx, cb| unsafe {
        let d = &ctx.device;
        result(
            d.create_fence(&vk::FenceCreateInfo::default(), Some(cb)),
            |o| d.destroy_fence(o, Some(cb)),
        )
    }),
    ("event", |ctx, cb| unsafe {
        let d = &ctx.device;
        result(
            d.create_event(&vk::EventCreateInfo::default(), Some(cb)),
            |o| d.destroy_event(o, Some(cb)),
        )
    }),
    ("semaphore", |ctx, cb| unsafe {
        let d = &ctx.device;
        result(
            d.create_semaphore(&vk::SemaphoreCreateInfo::default(), Some(cb)),
            |o| d.destroy_semaphore(o, Some(cb)),
        )
    }),
    ("sampler", |ctx, cb| unsafe {
        let d = &ctx.device;
        result(
            d.create_sampler(&vk::SamplerCreateInfo::default(), Some(cb)),
            |o| d.destroy_sampler(o, Some(cb)),
        )
    }),
    ("query pool", |ctx, cb| unsafe {
        let info = vk::QueryPoolCreateInfo::default()
            .query_type(vk::QueryType::OCCLUSION)
            .query_count(4);
        let d = &ctx.device;
        result(d.create_query_pool(&info, Some(cb)), |o| {
            d.destroy_query_pool(o, Some(cb))
        })
    }),
    ("descriptor pool", |ctx, cb| unsafe {
        let size = vk::DescriptorPoolSize {
            ty: vk::DescriptorType::STORAGE_BUFFER,
            descriptor_count: 4,
        };
        let info = vk::DescriptorPoolCreateInfo::default()
            .max_sets(4)
            .pool_sizes(std::slice::from_ref(&size));
        let d = &ctx.device;
        result(d.create_descriptor_pool(&info, Some(cb)), |o| {
            d.destroy_descriptor_pool(o, Some(cb))
        })
    }),
];

pub fn run(ctx: &Context) -> Result<Report> {
    let mut report = Report::new();
    for (name, kind) in KINDS {
        let refusing = Mutex::new(Counts {
            refuse: true,
            ..Default::default()
        });
        let r = kind(ctx, &callbacks(&refusing));
        let refused = refusing.into_inner().unwrap();
        if r != vk::Result::ERROR_OUT_OF_HOST_MEMORY {
            return Err(Error::Mismatch(format!(
                "{name}: with an allocator that refuses everything ({} calls): {r:?}, not \
                 VK_ERROR_OUT_OF_HOST_MEMORY",
                refused.calls
            )));
        }
        let counting = Mutex::new(Counts::default());
        let made = kind(ctx, &callbacks(&counting));
        if made != vk::Result::SUCCESS {
            return Err(Error::Vulkan {
                call: name,
                result: made,
            });
        }
        let counted = counting.into_inner().unwrap();
        ensure(counted.calls > 0, || {
            format!("{name}: the allocation callbacks were never called")
        })?;
        ensure(counted.live.is_empty(), || {
            format!(
                "{name}: {} of {} allocations not freed after the object was destroyed",
                counted.live.len(),
                counted.calls
            )
        })?;
        report.i32(&format!("{name} with a refusing allocator"), r.as_raw());
    }
    Ok(report)
}
