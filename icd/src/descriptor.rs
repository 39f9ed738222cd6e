//! Descriptors: update templates, which the ICD interprets (the application's data layout
//! never crosses), and the members Vulkan says to ignore, which must not travel.
//!
//! `VkWriteDescriptorSet` has three array pointers of which the descriptor type selects one;
//! the others may hold anything. A descriptor set layout binding's immutable samplers matter
//! only for sampler types. The writes and bindings are copied with the ignored members cleared
//! before they are encoded.

use crate::call::{app_slice as slice, call};
use crate::objects::Dispatchable;
use ash::vk::{self, Handle};
use std::collections::HashMap;
use std::ffi::c_void;
use wire::generated::commands::{
    C_vkCmdPushDescriptorSetKHR, C_vkCreateDescriptorSetLayout, C_vkCreateDescriptorUpdateTemplate,
    C_vkDestroyDescriptorUpdateTemplate, C_vkGetDescriptorSetLayoutSupport,
    C_vkUpdateDescriptorSets,
};

/// What a template says about the application's data: one entry per run of descriptors.
pub struct Template {
    entries: Vec<vk::DescriptorUpdateTemplateEntry>,
    bind_point: vk::PipelineBindPoint,
}

#[derive(Default)]
pub struct Templates(HashMap<u64, std::sync::Arc<Template>>);

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

/// Writes with only what their types read, and image infos with only the members the type
/// uses. Borrowed arrays live in `images`.
struct CleanWrites<'a> {
    writes: Vec<vk::WriteDescriptorSet<'a>>,
    _images: Vec<Vec<vk::DescriptorImageInfo>>,
}

unsafe fn clean_writes<'a>(writes: &[vk::WriteDescriptorSet<'a>]) -> CleanWrites<'a> {
    let mut images = Vec::new();
    let writes = writes
        .iter()
        .map(|w| {
            let mut w = *w;
            let src = source(w.descriptor_type);
            if src != Source::Image || w.p_image_info.is_null() {
                w.p_image_info = std::ptr::null();
            } else {
                let sampler = matches!(
                    w.descriptor_type,
                    vk::DescriptorType::SAMPLER | vk::DescriptorType::COMBINED_IMAGE_SAMPLER
                );
                let view = w.descriptor_type != vk::DescriptorType::SAMPLER;
                let list: Vec<vk::DescriptorImageInfo> =
                    std::slice::from_raw_parts(w.p_image_info, w.descriptor_count as usize)
                        .iter()
                        .map(|i| vk::DescriptorImageInfo {
                            sampler: if sampler {
                                i.sampler
                            } else {
                                vk::Sampler::null()
                            },
                            image_view: if view {
                                i.image_view
                            } else {
                                vk::ImageView::null()
                            },
                            image_layout: i.image_layout,
                        })
                        .collect();
                w.p_image_info = list.as_ptr();
                images.push(list);
            }
            if src != Source::Buffer {
                w.p_buffer_info = std::ptr::null();
            }
            if src != Source::TexelView {
                w.p_texel_buffer_view = std::ptr::null();
            }
            w
        })
        .collect();
    CleanWrites {
        writes,
        _images: images,
    }
}

pub unsafe extern "system" fn vkUpdateDescriptorSets(
    device: vk::Device,
    write_count: u32,
    writes: *const vk::WriteDescriptorSet<'_>,
    copy_count: u32,
    copies: *const vk::CopyDescriptorSet<'_>,
) {
    let clean = clean_writes(slice(writes, write_count));
    call(
        &C_vkUpdateDescriptorSets,
        &[
            device.as_raw(),
            clean.writes.len() as u64,
            clean.writes.as_ptr() as u64,
            copy_count as u64,
            copies as u64,
        ],
    );
}

pub unsafe extern "system" fn vkCmdPushDescriptorSetKHR(
    cb: vk::CommandBuffer,
    bind_point: vk::PipelineBindPoint,
    layout: vk::PipelineLayout,
    set: u32,
    write_count: u32,
    writes: *const vk::WriteDescriptorSet<'_>,
) {
    let clean = clean_writes(slice(writes, write_count));
    push(cb, bind_point, layout, set, &clean.writes);
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

/// Bindings with immutable samplers only where the type reads them.
unsafe fn clean_bindings<'a>(
    info: &vk::DescriptorSetLayoutCreateInfo<'a>,
) -> Vec<vk::DescriptorSetLayoutBinding<'a>> {
    slice(info.p_bindings, info.binding_count)
        .iter()
        .map(|b| {
            let mut b = *b;
            if !matches!(
                b.descriptor_type,
                vk::DescriptorType::SAMPLER | vk::DescriptorType::COMBINED_IMAGE_SAMPLER
            ) {
                b.p_immutable_samplers = std::ptr::null();
            }
            b
        })
        .collect()
}

pub unsafe extern "system" fn vkCreateDescriptorSetLayout(
    device: vk::Device,
    info: *const vk::DescriptorSetLayoutCreateInfo<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    layout: *mut vk::DescriptorSetLayout,
) -> vk::Result {
    layout_call(
        &C_vkCreateDescriptorSetLayout,
        device,
        info,
        &[allocator as u64, layout as u64],
    )
}

pub unsafe extern "system" fn vkGetDescriptorSetLayoutSupport(
    device: vk::Device,
    info: *const vk::DescriptorSetLayoutCreateInfo<'_>,
    support: *mut vk::DescriptorSetLayoutSupport<'_>,
) {
    let _ = layout_call(
        &C_vkGetDescriptorSetLayoutSupport,
        device,
        info,
        &[support as u64],
    );
}

/// Calls `cmd` with a copy of `info` whose bindings are cleaned, then the `rest` arguments.
unsafe fn layout_call(
    cmd: &'static wire::desc::CommandDesc,
    device: vk::Device,
    info: *const vk::DescriptorSetLayoutCreateInfo<'_>,
    rest: &[u64],
) -> vk::Result {
    let mut args = vec![device.as_raw(), info as u64];
    let bindings;
    let mut copy;
    if !info.is_null() {
        bindings = clean_bindings(&*info);
        copy = *info;
        copy.p_bindings = bindings.as_ptr();
        args[1] = &copy as *const _ as u64;
    }
    args.extend_from_slice(rest);
    vk::Result::from_raw(call(cmd, &args) as i32)
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
    let clean = clean_writes(&x.writes);
    call(
        &C_vkUpdateDescriptorSets,
        &[
            device.as_raw(),
            clean.writes.len() as u64,
            clean.writes.as_ptr() as u64,
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
    let clean = clean_writes(&x.writes);
    push(cb, t.bind_point, layout, set, &clean.writes);
}
