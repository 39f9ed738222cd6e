//! Descriptors: update templates, which the ICD interprets (the application's data layout
//! never crosses), and which bindings take immutable samplers.
//!
//! A `VkDescriptorImageInfo`'s sampler is ignored where the binding it updates has immutable
//! samplers (`wire::ignored`); to tell, the ICD remembers the bindings of each set layout that
//! has some, the sets allocated with such a layout and the pipeline layouts that use one. Most
//! programs have none, and then nothing is kept.

use crate::call::{app_slice as slice, call};
use crate::objects::Dispatchable;
use ash::vk::{self, Handle};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;
use wire::desc::CommandDesc;
use wire::generated::commands::{
    C_vkAllocateDescriptorSets, C_vkCmdPushDescriptorSetKHR, C_vkCreateDescriptorSetLayout,
    C_vkCreateDescriptorUpdateTemplate, C_vkCreatePipelineLayout, C_vkDestroyDescriptorPool,
    C_vkDestroyDescriptorSetLayout, C_vkDestroyDescriptorUpdateTemplate, C_vkDestroyPipelineLayout,
    C_vkFreeDescriptorSets, C_vkResetDescriptorPool, C_vkUpdateDescriptorSets,
};

/// What a template says about the application's data: one entry per run of descriptors.
pub struct Template {
    entries: Vec<vk::DescriptorUpdateTemplateEntry>,
    bind_point: vk::PipelineBindPoint,
}

#[derive(Default)]
pub struct Templates(HashMap<u64, std::sync::Arc<Template>>);

/// The bindings of one set layout that have immutable samplers, sorted.
type Bindings = Arc<[u32]>;

/// Where immutable samplers are, by object id; only objects that have some are listed.
#[derive(Default)]
pub struct Immutable {
    layouts: HashMap<u64, Bindings>,
    /// Descriptor sets: their pool and their layout's bindings.
    sets: HashMap<u64, (u64, Bindings)>,
    /// Pipeline layouts: per set number, the bindings of that set's layout.
    pipeline_layouts: HashMap<u64, Vec<Option<Bindings>>>,
}

impl Immutable {
    pub fn set_binding(&self, set: u64, binding: u32) -> bool {
        self.sets
            .get(&set)
            .is_some_and(|(_, b)| b.binary_search(&binding).is_ok())
    }

    pub fn layout_binding(&self, layout: u64, set: u32, binding: u32) -> bool {
        self.pipeline_layouts
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

unsafe fn push(
    cb: vk::CommandBuffer,
    bind_point: vk::PipelineBindPoint,
    layout: vk::PipelineLayout,
    set: u32,
    writes: &[vk::WriteDescriptorSet<'_>],
) {
    call(
        &C_vkCmdPushDescriptorSetKHR,
        &[
            cb.as_raw(),
            bind_point.as_raw() as u32 as u64,
            layout.as_raw(),
            set as u64,
            writes.len() as u64,
            writes.as_ptr() as u64,
        ],
    );
}

pub unsafe extern "system" fn vkCreateDescriptorSetLayout(
    device: vk::Device,
    info: *const vk::DescriptorSetLayoutCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    layout: *mut vk::DescriptorSetLayout,
) -> vk::Result {
    let r = vk::Result::from_raw(call(
        &C_vkCreateDescriptorSetLayout,
        &[
            device.as_raw(),
            info as u64,
            allocator as u64,
            layout as u64,
        ],
    ) as i32);
    if r == vk::Result::SUCCESS {
        let i = &*info;
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
            let conn = Dispatchable::conn_borrowed(device.as_raw());
            conn.immutable
                .lock()
                .layouts
                .insert((*layout).as_raw(), bindings.into());
        }
    }
    r
}

pub unsafe extern "system" fn vkAllocateDescriptorSets(
    device: vk::Device,
    info: *const vk::DescriptorSetAllocateInfo<'_>,
    sets: *mut vk::DescriptorSet,
) -> vk::Result {
    let r = vk::Result::from_raw(call(
        &C_vkAllocateDescriptorSets,
        &[device.as_raw(), info as u64, sets as u64],
    ) as i32);
    if r == vk::Result::SUCCESS {
        let i = &*info;
        let conn = Dispatchable::conn_borrowed(device.as_raw());
        let mut imm = conn.immutable.lock();
        if !imm.layouts.is_empty() {
            let layouts = slice(i.p_set_layouts, i.descriptor_set_count);
            for (k, l) in layouts.iter().enumerate() {
                if let Some(b) = imm.layouts.get(&l.as_raw()).cloned() {
                    let set = (*sets.add(k)).as_raw();
                    imm.sets.insert(set, (i.descriptor_pool.as_raw(), b));
                }
            }
        }
    }
    r
}

pub unsafe extern "system" fn vkCreatePipelineLayout(
    device: vk::Device,
    info: *const vk::PipelineLayoutCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    layout: *mut vk::PipelineLayout,
) -> vk::Result {
    let r = vk::Result::from_raw(call(
        &C_vkCreatePipelineLayout,
        &[
            device.as_raw(),
            info as u64,
            allocator as u64,
            layout as u64,
        ],
    ) as i32);
    if r == vk::Result::SUCCESS {
        let i = &*info;
        let conn = Dispatchable::conn_borrowed(device.as_raw());
        let mut imm = conn.immutable.lock();
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

pub unsafe extern "system" fn vkResetDescriptorPool(
    device: vk::Device,
    pool: vk::DescriptorPool,
    flags: vk::DescriptorPoolResetFlags,
) -> vk::Result {
    forget_pool(device, pool.as_raw());
    vk::Result::from_raw(call(
        &C_vkResetDescriptorPool,
        &[device.as_raw(), pool.as_raw(), flags.as_raw() as u64],
    ) as i32)
}

fn forget_pool(device: vk::Device, pool: u64) {
    // SAFETY: the application passes a live device.
    let conn = unsafe { Dispatchable::conn_borrowed(device.as_raw()) };
    let mut imm = conn.immutable.lock();
    if !imm.sets.is_empty() {
        imm.sets.retain(|_, (p, _)| *p != pool);
    }
}

/// After a destroying command: forgets what it destroyed.
///
/// # Safety
/// `args` are the application's arguments to `cmd`, which destroys the objects at `args[i]`.
pub unsafe fn destroyed(cmd: &CommandDesc, i: u16, args: &[u64]) {
    let device = vk::Device::from_raw(args[0]);
    let target = args[i as usize];
    let conn = || Dispatchable::conn_borrowed(args[0]);
    if std::ptr::eq(cmd, &C_vkDestroyDescriptorPool) {
        forget_pool(device, target);
    } else if std::ptr::eq(cmd, &C_vkDestroyDescriptorSetLayout) {
        conn().immutable.lock().layouts.remove(&target);
    } else if std::ptr::eq(cmd, &C_vkDestroyPipelineLayout) {
        conn().immutable.lock().pipeline_layouts.remove(&target);
    } else if std::ptr::eq(cmd, &C_vkFreeDescriptorSets) {
        let c = conn();
        let mut imm = c.immutable.lock();
        if !imm.sets.is_empty() {
            for s in slice(target as *const u64, args[2] as u32) {
                imm.sets.remove(s);
            }
        }
    }
}

pub unsafe extern "system" fn vkCreateDescriptorUpdateTemplate(
    device: vk::Device,
    info: *const vk::DescriptorUpdateTemplateCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::DescriptorUpdateTemplate,
) -> vk::Result {
    let r = vk::Result::from_raw(call(
        &C_vkCreateDescriptorUpdateTemplate,
        &[device.as_raw(), info as u64, allocator as u64, out as u64],
    ) as i32);
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
        let conn = Dispatchable::conn(device.as_raw());
        conn.templates
            .lock()
            .0
            .insert((*out).as_raw(), std::sync::Arc::new(t));
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
    let conn = Dispatchable::conn(device.as_raw());
    conn.templates.lock().0.remove(&template.as_raw());
    call(
        &C_vkDestroyDescriptorUpdateTemplate,
        &[device.as_raw(), template.as_raw(), allocator as u64],
    );
}

/// The writes a template describes, read from the application's `data`.
struct Expanded {
    writes: Vec<vk::WriteDescriptorSet<'static>>,
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

unsafe fn expand(t: &Template, set: vk::DescriptorSet, data: *const c_void) -> Expanded {
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

fn template_of(
    device_or_cb: u64,
    template: vk::DescriptorUpdateTemplate,
) -> Option<std::sync::Arc<Template>> {
    // SAFETY: the application passes a live dispatchable handle.
    let conn = unsafe { Dispatchable::conn_borrowed(device_or_cb) };
    let t = conn.templates.lock().0.get(&template.as_raw()).cloned();
    if t.is_none() {
        crate::log::log!(
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
    let Some(t) = template_of(device.as_raw(), template) else {
        return;
    };
    let x = expand(&t, set, data);
    call(
        &C_vkUpdateDescriptorSets,
        &[
            device.as_raw(),
            x.writes.len() as u64,
            x.writes.as_ptr() as u64,
            0,
            0,
        ],
    );
}

pub unsafe extern "system" fn vkCmdPushDescriptorSetWithTemplateKHR(
    cb: vk::CommandBuffer,
    template: vk::DescriptorUpdateTemplate,
    layout: vk::PipelineLayout,
    set: u32,
    data: *const c_void,
) {
    let Some(t) = template_of(cb.as_raw(), template) else {
        return;
    };
    let x = expand(&t, vk::DescriptorSet::null(), data);
    push(cb, t.bind_point, layout, set, &x.writes);
}
