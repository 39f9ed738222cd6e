//! Descriptors: update templates, which the ICD interprets (the application's data layout
//! never crosses), and which bindings take immutable samplers.
//!
//! A `VkDescriptorImageInfo`'s sampler is ignored where the binding it updates has immutable
//! samplers (`wire::ignored`); to tell, the device keeps the bindings of each set layout that
//! has some, the sets allocated with such a layout and the pipeline layouts that use one. Most
//! programs have none, and then nothing is kept. Templates and these are the device's: they go
//! with it.
//!
//! Descriptor-set allocation is posted, not waited for, when the ICD's accounting of the pool
//! says the host must succeed (see [`Pool`]); frees and pool resets, which always succeed, are
//! posted too. Otherwise the host decides, synchronously.

use crate::call::{call, call_with, create, post_creating, post_quiet, room_for_posted};
use crate::log::log;
use crate::objects::{header, Header, NoFacts};
use crate::util::app_slice as slice;
use ash::vk::{self, Handle};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;
use wire::generated::commands::{
    C_vkAllocateDescriptorSets, C_vkCreateDescriptorPool, C_vkCreateDescriptorSetLayout,
    C_vkCreateDescriptorUpdateTemplate, C_vkCreatePipelineLayout, C_vkDestroyDescriptorPool,
    C_vkDestroyDescriptorSetLayout, C_vkDestroyDescriptorUpdateTemplate, C_vkDestroyPipelineLayout,
    C_vkFreeDescriptorSets, C_vkResetDescriptorPool, C_vkUpdateDescriptorSets,
};
use wire::ignored::Facts;

/// What a template says about the application's data: one entry per run of descriptors.
pub struct Template {
    entries: Vec<vk::DescriptorUpdateTemplateEntry>,
    pub bind_point: vk::PipelineBindPoint,
}

/// A device's templates, by id.
#[derive(Default)]
struct Templates(Mutex<HashMap<u64, Arc<Template>>>);

/// The bindings of one set layout that have immutable samplers, sorted.
type Bindings = Arc<[u32]>;

/// Where a device's immutable samplers are, by object id; only objects that have some.
#[derive(Default)]
struct Immutable {
    layouts: HashMap<u64, Bindings>,
    /// Descriptor sets: their pool and their layout's bindings.
    sets: HashMap<u64, (u64, Bindings)>,
    /// Pipeline layouts: per set number, the bindings of that set's layout.
    pipeline_layouts: HashMap<u64, Vec<Option<Bindings>>>,
}

fn immutable(device: &Header) -> &Mutex<Immutable> {
    device.families.get::<Mutex<Immutable>>()
}

/// What the descriptor family knows for the encoder's ignored-member rules: which bindings
/// have immutable samplers, on `device`.
pub struct DescriptorFacts<'a>(pub &'a Header);

impl Facts for DescriptorFacts<'_> {
    fn is_primary(&self, _: u64) -> bool {
        false
    }

    fn set_binding_immutable(&self, set: u64, binding: u32) -> bool {
        immutable(self.0)
            .lock()
            .sets
            .get(&set)
            .is_some_and(|(_, b)| b.binary_search(&binding).is_ok())
    }

    fn layout_binding_immutable(&self, layout: u64, set: u32, binding: u32) -> bool {
        immutable(self.0)
            .lock()
            .pipeline_layouts
            .get(&layout)
            .and_then(|sets| sets.get(set as usize))
            .and_then(|b| b.as_ref())
            .is_some_and(|b| b.binary_search(&binding).is_ok())
    }
}

/// Which array of a `VkWriteDescriptorSet` a descriptor type reads.
#[derive(Clone, Copy, PartialEq)]
enum Source {
    Image,
    Buffer,
    TexelView,
    /// Inline uniform blocks: the bytes are in the pNext chain.
    None,
}

fn source(ty: vk::DescriptorType) -> Source {
    match ty {
        vk::DescriptorType::SAMPLER
        | vk::DescriptorType::COMBINED_IMAGE_SAMPLER
        | vk::DescriptorType::SAMPLED_IMAGE
        | vk::DescriptorType::STORAGE_IMAGE
        | vk::DescriptorType::INPUT_ATTACHMENT => Source::Image,
        vk::DescriptorType::UNIFORM_BUFFER
        | vk::DescriptorType::STORAGE_BUFFER
        | vk::DescriptorType::UNIFORM_BUFFER_DYNAMIC
        | vk::DescriptorType::STORAGE_BUFFER_DYNAMIC => Source::Buffer,
        vk::DescriptorType::UNIFORM_TEXEL_BUFFER | vk::DescriptorType::STORAGE_TEXEL_BUFFER => {
            Source::TexelView
        }
        _ => Source::None,
    }
}

/// Descriptor types whose pool consumption the ICD counts: the core ones, whose
/// `VkDescriptorType` values are 0 to 10, each set taking its bindings' descriptor counts.
const COUNTED: usize = 11;

/// What one set of a layout takes from its pool, per descriptor type.
type Cost = [u32; COUNTED];

/// The ICD's accounting of a descriptor pool. An allocation is posted only when the spec says
/// the host cannot refuse it but for lack of memory: it fits the pool's sets and descriptors,
/// and, in a pool whose sets may be freed one by one, cannot fail for fragmentation (every set
/// allocated since the pool was made or reset takes the same descriptors as the new ones).
/// Where the ICD cannot count (inline uniform blocks, mutable descriptors, variable descriptor
/// counts, a pool with extension structures), the host answers.
struct Pool {
    /// `VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT`: sets may be freed, the pool may
    /// fragment.
    frees: bool,
    max_sets: u64,
    capacity: [u64; COUNTED],
    sets: u64,
    used: [u64; COUNTED],
    /// What every set since creation or reset took, while they all took the same.
    same: Option<Cost>,
    /// Whether `sets` and `used` are exact; a set the ICD could not count, or a free from a
    /// pool of mixed sets, ends that until the pool is reset.
    known: bool,
}

impl Pool {
    /// Whether new sets, `runs` of (cost, how many), are sure to be allocated.
    fn sure(&self, runs: &[(Cost, u64)]) -> bool {
        let n: u64 = runs.iter().map(|r| r.1).sum();
        if !self.known || self.sets + n > self.max_sets {
            return false;
        }
        if self.frees {
            let same = self.same.or(runs.first().map(|r| r.0));
            if runs.iter().any(|r| Some(r.0) != same) {
                return false;
            }
        }
        let mut used = self.used;
        for (c, k) in runs {
            for (u, n) in used.iter_mut().zip(c) {
                *u += u64::from(*n) * k;
            }
        }
        used.iter().zip(&self.capacity).all(|(u, cap)| u <= cap)
    }

    /// Counts sets the host allocated, `runs` of (cost, how many); `None` when the ICD cannot
    /// count them.
    fn allocated(&mut self, runs: Option<&[(Cost, u64)]>) {
        let Some(runs) = runs else {
            self.known = false;
            return;
        };
        for (c, k) in runs {
            if self.sets == 0 {
                self.same = Some(*c);
            } else if self.same != Some(*c) {
                self.same = None;
            }
            self.sets += k;
            for (u, n) in self.used.iter_mut().zip(c) {
                *u += u64::from(*n) * k;
            }
        }
    }

    /// Counts `n` sets freed; exact only while every set took the same.
    fn freed(&mut self, n: u64) {
        match self.same {
            Some(c) if self.known => {
                self.sets = self.sets.saturating_sub(n);
                for (u, k) in self.used.iter_mut().zip(&c) {
                    *u = u.saturating_sub(n * u64::from(*k));
                }
            }
            _ => self.known = false,
        }
    }

    fn reset(&mut self) {
        self.sets = 0;
        self.used = [0; COUNTED];
        self.same = None;
        self.known = true;
    }
}

/// A device's pool accounting: its pools, and the cost of each set layout the ICD can count.
#[derive(Default)]
struct Accounts {
    pools: HashMap<u64, Pool>,
    layouts: HashMap<u64, Cost>,
}

fn accounts(device: &Header) -> &Mutex<Accounts> {
    device.families.get::<Mutex<Accounts>>()
}

/// What a set of the layout `info` describes takes from its pool, if the ICD can count it.
unsafe fn cost(info: &vk::DescriptorSetLayoutCreateInfo<'_>) -> Option<Cost> {
    let odd = vk::DescriptorSetLayoutCreateFlags::PUSH_DESCRIPTOR_KHR
        | vk::DescriptorSetLayoutCreateFlags::HOST_ONLY_POOL_EXT
        | vk::DescriptorSetLayoutCreateFlags::DESCRIPTOR_BUFFER_EXT;
    if info.flags.intersects(odd) {
        return None;
    }
    // Binding flags only lower what a set takes (a variable count): counting the declared
    // counts errs towards asking the host. Any other extension structure: the host decides.
    let mut p = info.p_next as *const vk::BaseInStructure<'_>;
    while !p.is_null() {
        if (*p).s_type != vk::StructureType::DESCRIPTOR_SET_LAYOUT_BINDING_FLAGS_CREATE_INFO {
            return None;
        }
        p = (*p).p_next;
    }
    let mut c = [0u32; COUNTED];
    for b in slice(info.p_bindings, info.binding_count) {
        let t = usize::try_from(b.descriptor_type.as_raw())
            .ok()
            .filter(|t| *t < COUNTED)?;
        c[t] = c[t].checked_add(b.descriptor_count)?;
    }
    Some(c)
}

pub unsafe extern "system" fn vkCreateDescriptorPool(
    device: vk::Device,
    info: *const vk::DescriptorPoolCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::DescriptorPool,
) -> vk::Result {
    let r = create(
        &C_vkCreateDescriptorPool,
        device.as_raw(),
        info,
        allocator,
        out,
    );
    let i = &*info;
    if r == vk::Result::SUCCESS && i.p_next.is_null() {
        let mut capacity = [0u64; COUNTED];
        for s in slice(i.p_pool_sizes, i.pool_size_count) {
            // A type the ICD does not count can hold none of the sets it posts.
            if let Some(t) = usize::try_from(s.ty.as_raw()).ok().filter(|t| *t < COUNTED) {
                capacity[t] += u64::from(s.descriptor_count);
            }
        }
        let pool = Pool {
            frees: i
                .flags
                .contains(vk::DescriptorPoolCreateFlags::FREE_DESCRIPTOR_SET),
            max_sets: u64::from(i.max_sets),
            capacity,
            sets: 0,
            used: [0; COUNTED],
            same: None,
            known: true,
        };
        accounts(header(device.as_raw()))
            .lock()
            .pools
            .insert((*out).as_raw(), pool);
    }
    r
}

pub unsafe extern "system" fn vkUpdateDescriptorSets(
    device: vk::Device,
    write_count: u32,
    writes: *const vk::WriteDescriptorSet<'_>,
    copy_count: u32,
    copies: *const vk::CopyDescriptorSet<'_>,
) {
    call_with(
        &C_vkUpdateDescriptorSets,
        &[
            device.as_raw(),
            write_count as u64,
            writes as u64,
            copy_count as u64,
            copies as u64,
        ],
        &DescriptorFacts(header(device.as_raw())),
    );
}

pub unsafe extern "system" fn vkCreateDescriptorSetLayout(
    device: vk::Device,
    info: *const vk::DescriptorSetLayoutCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    layout: *mut vk::DescriptorSetLayout,
) -> vk::Result {
    let r = create(
        &C_vkCreateDescriptorSetLayout,
        device.as_raw(),
        info,
        allocator,
        layout,
    );
    if r == vk::Result::SUCCESS {
        let i = &*info;
        if let Some(c) = cost(i) {
            accounts(header(device.as_raw()))
                .lock()
                .layouts
                .insert((*layout).as_raw(), c);
        }
        let mut bindings: Vec<u32> = slice(i.p_bindings, i.binding_count)
            .iter()
            .filter(|b| {
                matches!(
                    b.descriptor_type,
                    vk::DescriptorType::SAMPLER | vk::DescriptorType::COMBINED_IMAGE_SAMPLER
                ) && !b.p_immutable_samplers.is_null()
            })
            .map(|b| b.binding)
            .collect();
        if !bindings.is_empty() {
            bindings.sort_unstable();
            immutable(header(device.as_raw()))
                .lock()
                .layouts
                .insert((*layout).as_raw(), bindings.into());
        }
    }
    r
}

pub unsafe extern "system" fn vkDestroyDescriptorSetLayout(
    device: vk::Device,
    layout: vk::DescriptorSetLayout,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    let dev = header(device.as_raw());
    immutable(dev).lock().layouts.remove(&layout.as_raw());
    accounts(dev).lock().layouts.remove(&layout.as_raw());
    call(
        &C_vkDestroyDescriptorSetLayout,
        &[device.as_raw(), layout.as_raw(), allocator as u64],
    );
}

/// The costs of sets of `layouts`, in runs of equal cost (most allocations use one layout);
/// `None` if the ICD cannot count one.
fn runs(
    costs: &HashMap<u64, Cost>,
    layouts: &[vk::DescriptorSetLayout],
) -> Option<Vec<(Cost, u64)>> {
    let mut runs: Vec<(Cost, u64)> = Vec::new();
    let mut last = None;
    for l in layouts {
        if last != Some(*l) {
            let c = *costs.get(&l.as_raw())?;
            last = Some(*l);
            if runs.last().map(|r| r.0) != Some(c) {
                runs.push((c, 0));
            }
        }
        if let Some(r) = runs.last_mut() {
            r.1 += 1;
        }
    }
    Some(runs)
}

pub unsafe extern "system" fn vkAllocateDescriptorSets(
    device: vk::Device,
    info: *const vk::DescriptorSetAllocateInfo<'_>,
    sets: *mut vk::DescriptorSet,
) -> vk::Result {
    let dev = header(device.as_raw());
    let i = &*info;
    let layouts = slice(i.p_set_layouts, i.descriptor_set_count);
    let pool = i.descriptor_pool.as_raw();
    let args = [device.as_raw(), info as u64, sets as u64];
    // What the new sets take, in runs of equal cost, if the ICD can count them (not a variable
    // descriptor count, in the chain), and whether the host is sure to allocate them all: they
    // fit the pool, and the server's object limit has room set aside for them. (The pool is
    // the application's to synchronise: nobody allocates from it meanwhile.)
    let (runs, fits) = {
        let acc = accounts(dev).lock();
        let runs = if i.p_next.is_null() {
            runs(&acc.layouts, layouts)
        } else {
            None
        };
        let fits = matches!((acc.pools.get(&pool), &runs), (Some(p), Some(r)) if p.sure(r));
        (runs, fits)
    };
    let sure = fits && room_for_posted(device.as_raw(), layouts.len());
    if sure {
        if let Some(p) = accounts(dev).lock().pools.get_mut(&pool) {
            p.allocated(runs.as_deref());
        }
    }
    let r = if sure {
        post_creating(
            &C_vkAllocateDescriptorSets,
            &args,
            &NoFacts,
            sets as *mut u64,
            layouts.len(),
        )
    } else {
        let r = vk::Result::from_raw(call(&C_vkAllocateDescriptorSets, &args) as i32);
        if r == vk::Result::SUCCESS {
            if let Some(p) = accounts(dev).lock().pools.get_mut(&pool) {
                p.allocated(runs.as_deref());
            }
        }
        r
    };
    if r == vk::Result::SUCCESS {
        let mut imm = immutable(dev).lock();
        if !imm.layouts.is_empty() {
            for (k, l) in layouts.iter().enumerate() {
                if let Some(b) = imm.layouts.get(&l.as_raw()).cloned() {
                    let set = (*sets.add(k)).as_raw();
                    imm.sets.insert(set, (pool, b));
                }
            }
        }
    }
    r
}

pub unsafe extern "system" fn vkFreeDescriptorSets(
    device: vk::Device,
    pool: vk::DescriptorPool,
    count: u32,
    sets: *const vk::DescriptorSet,
) -> vk::Result {
    let dev = header(device.as_raw());
    let freed = slice(sets, count);
    {
        let mut imm = immutable(dev).lock();
        if !imm.sets.is_empty() {
            for s in freed {
                imm.sets.remove(&s.as_raw());
            }
        }
    }
    if let Some(p) = accounts(dev).lock().pools.get_mut(&pool.as_raw()) {
        // VK_NULL_HANDLE entries are ignored.
        p.freed(
            freed
                .iter()
                .filter(|s| **s != vk::DescriptorSet::null())
                .count() as u64,
        );
    }
    // It always succeeds: nothing to wait for, and nothing to wake the server for before the
    // next request that uses the pool.
    post_quiet(
        &C_vkFreeDescriptorSets,
        &[device.as_raw(), pool.as_raw(), count as u64, sets as u64],
        &NoFacts,
    )
}

/// Forgets the sets of a pool that is reset or destroyed.
fn forget_pool(device: &Header, pool: u64) {
    let mut imm = immutable(device).lock();
    if !imm.sets.is_empty() {
        imm.sets.retain(|_, (p, _)| *p != pool);
    }
}

pub unsafe extern "system" fn vkResetDescriptorPool(
    device: vk::Device,
    pool: vk::DescriptorPool,
    flags: vk::DescriptorPoolResetFlags,
) -> vk::Result {
    let dev = header(device.as_raw());
    forget_pool(dev, pool.as_raw());
    if let Some(p) = accounts(dev).lock().pools.get_mut(&pool.as_raw()) {
        p.reset();
    }
    // As for frees: nothing to wait for or wake the server for.
    post_quiet(
        &C_vkResetDescriptorPool,
        &[device.as_raw(), pool.as_raw(), flags.as_raw() as u64],
        &NoFacts,
    )
}

pub unsafe extern "system" fn vkDestroyDescriptorPool(
    device: vk::Device,
    pool: vk::DescriptorPool,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    let dev = header(device.as_raw());
    forget_pool(dev, pool.as_raw());
    accounts(dev).lock().pools.remove(&pool.as_raw());
    call(
        &C_vkDestroyDescriptorPool,
        &[device.as_raw(), pool.as_raw(), allocator as u64],
    );
}

pub unsafe extern "system" fn vkCreatePipelineLayout(
    device: vk::Device,
    info: *const vk::PipelineLayoutCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    layout: *mut vk::PipelineLayout,
) -> vk::Result {
    let r = create(
        &C_vkCreatePipelineLayout,
        device.as_raw(),
        info,
        allocator,
        layout,
    );
    if r == vk::Result::SUCCESS {
        let i = &*info;
        let mut imm = immutable(header(device.as_raw())).lock();
        let sets: Vec<Option<Bindings>> = slice(i.p_set_layouts, i.set_layout_count)
            .iter()
            .map(|l| imm.layouts.get(&l.as_raw()).cloned())
            .collect();
        if sets.iter().any(Option::is_some) {
            imm.pipeline_layouts.insert((*layout).as_raw(), sets);
        }
    }
    r
}

pub unsafe extern "system" fn vkDestroyPipelineLayout(
    device: vk::Device,
    layout: vk::PipelineLayout,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    immutable(header(device.as_raw()))
        .lock()
        .pipeline_layouts
        .remove(&layout.as_raw());
    call(
        &C_vkDestroyPipelineLayout,
        &[device.as_raw(), layout.as_raw(), allocator as u64],
    );
}

pub unsafe extern "system" fn vkCreateDescriptorUpdateTemplate(
    device: vk::Device,
    info: *const vk::DescriptorUpdateTemplateCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::DescriptorUpdateTemplate,
) -> vk::Result {
    let r = create(
        &C_vkCreateDescriptorUpdateTemplate,
        device.as_raw(),
        info,
        allocator,
        out,
    );
    if r == vk::Result::SUCCESS {
        let i = &*info;
        let t = Template {
            entries: slice(
                i.p_descriptor_update_entries,
                i.descriptor_update_entry_count,
            )
            .to_vec(),
            bind_point: i.pipeline_bind_point,
        };
        header(device.as_raw())
            .families
            .get::<Templates>()
            .0
            .lock()
            .insert((*out).as_raw(), Arc::new(t));
    }
    r
}

pub unsafe extern "system" fn vkDestroyDescriptorUpdateTemplate(
    device: vk::Device,
    template: vk::DescriptorUpdateTemplate,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    if template == vk::DescriptorUpdateTemplate::null() {
        return;
    }
    header(device.as_raw())
        .families
        .get::<Templates>()
        .0
        .lock()
        .remove(&template.as_raw());
    call(
        &C_vkDestroyDescriptorUpdateTemplate,
        &[device.as_raw(), template.as_raw(), allocator as u64],
    );
}

/// The writes a template describes, read from the application's `data`.
pub struct Expanded {
    pub writes: Vec<vk::WriteDescriptorSet<'static>>,
    // The arrays the writes point into.
    _images: Vec<Vec<vk::DescriptorImageInfo>>,
    _buffers: Vec<Vec<vk::DescriptorBufferInfo>>,
    _views: Vec<Vec<vk::BufferView>>,
    // Boxed: the writes point at them while the vector grows.
    #[allow(clippy::vec_box)]
    _inline: Vec<Box<vk::WriteDescriptorSetInlineUniformBlock<'static>>>,
}

/// Gathers `count` elements of `T` at `stride` from `base`.
unsafe fn gather<T: Copy>(base: *const u8, stride: usize, count: u32) -> Vec<T> {
    (0..count as usize)
        .map(|i| std::ptr::read_unaligned(base.add(i * stride) as *const T))
        .collect()
}

/// The writes template `t` describes for `set`, read from the application's `data`.
///
/// # Safety
/// `data` holds what the template's entries describe, as Vulkan requires.
pub unsafe fn expand(t: &Template, set: vk::DescriptorSet, data: *const c_void) -> Expanded {
    let mut x = Expanded {
        writes: Vec::with_capacity(t.entries.len()),
        _images: Vec::new(),
        _buffers: Vec::new(),
        _views: Vec::new(),
        _inline: Vec::new(),
    };
    for e in &t.entries {
        let base = (data as *const u8).add(e.offset);
        let mut w = vk::WriteDescriptorSet {
            dst_set: set,
            dst_binding: e.dst_binding,
            dst_array_element: e.dst_array_element,
            descriptor_count: e.descriptor_count,
            descriptor_type: e.descriptor_type,
            ..Default::default()
        };
        match source(e.descriptor_type) {
            Source::Image => {
                let v: Vec<vk::DescriptorImageInfo> = gather(base, e.stride, e.descriptor_count);
                w.p_image_info = v.as_ptr();
                x._images.push(v);
            }
            Source::Buffer => {
                let v: Vec<vk::DescriptorBufferInfo> = gather(base, e.stride, e.descriptor_count);
                w.p_buffer_info = v.as_ptr();
                x._buffers.push(v);
            }
            Source::TexelView => {
                let v: Vec<vk::BufferView> = gather(base, e.stride, e.descriptor_count);
                w.p_texel_buffer_view = v.as_ptr();
                x._views.push(v);
            }
            Source::None if e.descriptor_type == vk::DescriptorType::INLINE_UNIFORM_BLOCK => {
                // For inline blocks the count is bytes, read at `offset` with no stride.
                let block = Box::new(vk::WriteDescriptorSetInlineUniformBlock {
                    data_size: e.descriptor_count,
                    p_data: base as *const c_void,
                    ..Default::default()
                });
                w.p_next = &*block as *const _ as *const c_void;
                x._inline.push(block);
            }
            Source::None => continue,
        }
        x.writes.push(w);
    }
    x
}

/// Template `template` of `device`, with a log line when the application names none of its.
pub fn template(device: &Header, template: vk::DescriptorUpdateTemplate) -> Option<Arc<Template>> {
    let t = device
        .families
        .get::<Templates>()
        .0
        .lock()
        .get(&template.as_raw())
        .cloned();
    if t.is_none() {
        log!(
            error,
            "airlock: unknown descriptor update template {:#x}",
            template.as_raw()
        );
    }
    t
}

pub unsafe extern "system" fn vkUpdateDescriptorSetWithTemplate(
    device: vk::Device,
    set: vk::DescriptorSet,
    template: vk::DescriptorUpdateTemplate,
    data: *const c_void,
) {
    let dev = header(device.as_raw());
    let Some(t) = self::template(dev, template) else {
        return;
    };
    let x = expand(&t, set, data);
    call_with(
        &C_vkUpdateDescriptorSets,
        &[
            device.as_raw(),
            x.writes.len() as u64,
            x.writes.as_ptr() as u64,
            0,
            0,
        ],
        &DescriptorFacts(dev),
    );
}
