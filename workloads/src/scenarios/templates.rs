//! Descriptor update templates reading the application's own struct layout (descriptors at
//! offsets past unrelated fields, an array with a stride larger than its element), storage and
//! uniform buffers mixed; and push descriptors, with vkCmdPushDescriptorSetKHR and, when the
//! device has it, vkCmdPushDescriptorSetWithTemplateKHR.

use crate::error::{check_elements, Error};
use crate::memory::{Access, Buffer, Location};
use crate::pipeline::descriptor_binding;
use crate::{shaders, Check, Context, Report, Result};
use ash::vk;
use std::ffi::c_void;
use std::mem::{offset_of, size_of};

/// Invocations of each dispatch, and elements of each output.
const N: u32 = 64;
const COMPUTE: vk::ShaderStageFlags = vk::ShaderStageFlags::COMPUTE;

/// Set 0's data as the application keeps it; the template says where the descriptors are.
#[repr(C)]
struct SetData {
    tag: u64,
    uniform: vk::DescriptorBufferInfo,
    storage: [StorageEntry; 2],
}

/// Each array element carries data of the application's after the descriptor: stride 40.
#[repr(C)]
struct StorageEntry {
    info: vk::DescriptorBufferInfo,
    note: [u32; 4],
}

/// Set 1's data for the push-descriptor template: the uniform buffer before the storage buffer,
/// with a gap.
#[repr(C)]
struct PushData {
    uniform: vk::DescriptorBufferInfo,
    gap: [u64; 3],
    storage: vk::DescriptorBufferInfo,
}

/// The uvec4 each dispatch reads from a uniform buffer.
type Params = [u32; 4];

/// Slots of one buffer, each aligned for use as a descriptor's offset.
struct Slots {
    buffer: Buffer,
    stride: u64,
}

impl Slots {
    fn new(ctx: &Context, count: u64, usage: vk::BufferUsageFlags) -> Result<Self> {
        let limits = &ctx.properties.limits;
        let align = limits
            .min_storage_buffer_offset_alignment
            .max(limits.min_uniform_buffer_offset_alignment);
        let stride = u64::from(N * 4).div_ceil(align) * align;
        let buffer = ctx.buffer(count * stride, usage, Location::Host)?;
        Ok(Self { buffer, stride })
    }

    fn info(&self, slot: u64, range: u64) -> vk::DescriptorBufferInfo {
        self.buffer.range(slot * self.stride, range)
    }

    fn words(&self, slot: u64) -> Vec<u32> {
        let all: Vec<u32> = self.buffer.read();
        let start = (slot * self.stride / 4) as usize;
        all[start..start + N as usize].to_vec()
    }
}

fn set_data(storage: &Slots, uniform: &Slots, dst: [u64; 2], params: u64) -> SetData {
    let entry = |slot| StorageEntry {
        info: storage.info(slot, u64::from(N * 4)),
        note: [0xC0DE; 4],
    };
    SetData {
        tag: 0x7A6,
        uniform: uniform.info(params, size_of::<Params>() as u64),
        storage: [entry(dst[0]), entry(dst[1])],
    }
}

/// Both sets' shape: `storage_count` storage buffers at binding 0, a uniform buffer at 1.
fn bindings(storage_count: u32) -> [vk::DescriptorSetLayoutBinding<'static>; 2] {
    [
        descriptor_binding(
            0,
            vk::DescriptorType::STORAGE_BUFFER,
            storage_count,
            COMPUTE,
        ),
        descriptor_binding(1, vk::DescriptorType::UNIFORM_BUFFER, 1, COMPUTE),
    ]
}

/// Template entries for [`bindings`]: where in the application's struct each binding's
/// VkDescriptorBufferInfo sits, and the storage array's stride.
fn entries(
    storage_count: u32,
    (storage_offset, storage_stride): (usize, usize),
    uniform_offset: usize,
) -> [vk::DescriptorUpdateTemplateEntry; 2] {
    let entry = |binding, ty, count, offset, stride| vk::DescriptorUpdateTemplateEntry {
        dst_binding: binding,
        dst_array_element: 0,
        descriptor_count: count,
        descriptor_type: ty,
        offset,
        stride,
    };
    [
        entry(
            0,
            vk::DescriptorType::STORAGE_BUFFER,
            storage_count,
            storage_offset,
            storage_stride,
        ),
        entry(1, vk::DescriptorType::UNIFORM_BUFFER, 1, uniform_offset, 0),
    ]
}

fn template(
    ctx: &Context,
    info: &vk::DescriptorUpdateTemplateCreateInfo<'_>,
) -> Result<vk::DescriptorUpdateTemplate> {
    unsafe { ctx.device.create_descriptor_update_template(info, None) }
        .check("vkCreateDescriptorUpdateTemplate")
        .map(|t| ctx.own(t))
}

/// What templates.comp writes: into set 0's two storage buffers and set 1's one.
fn expected(params: Params, pushed: Params) -> [Vec<u32>; 3] {
    let n = 0..N;
    [
        n.clone()
            .map(|i| i.wrapping_mul(params[0]).wrapping_add(params[1]))
            .collect(),
        n.clone().map(|i| i ^ params[2]).collect(),
        n.map(|i| i.wrapping_mul(pushed[0]).wrapping_add(pushed[3]))
            .collect(),
    ]
}

pub fn run(ctx: &Context) -> Result<Report> {
    let push = ctx
        .push_descriptor
        .as_ref()
        .ok_or_else(|| Error::Unsupported("VK_KHR_push_descriptor".into()))?;
    let with_template = unsafe {
        ctx.instance.get_device_proc_addr(
            ctx.device.handle(),
            c"vkCmdPushDescriptorSetWithTemplateKHR".as_ptr(),
        )
    }
    .is_some();

    // Storage slots: set A's two, set B's two, then the two pushed ones.
    let storage = Slots::new(ctx, 6, vk::BufferUsageFlags::STORAGE_BUFFER)?;
    let uniform = Slots::new(ctx, 4, vk::BufferUsageFlags::UNIFORM_BUFFER)?;
    let params: [Params; 4] = [
        [3, 100, 0x5A5A, 0],
        [7, 1000, 0xF0F0, 0],
        [5, 0, 0, 11],
        [9, 0, 0, 13],
    ];
    for (slot, p) in params.iter().enumerate() {
        uniform.buffer.write(slot as u64 * uniform.stride, p);
    }

    let set0_layout = ctx.set_layout(&bindings(2), vk::DescriptorSetLayoutCreateFlags::empty())?;
    let set1_layout = ctx.set_layout(
        &bindings(1),
        vk::DescriptorSetLayoutCreateFlags::PUSH_DESCRIPTOR_KHR,
    )?;
    let layout = ctx.pipeline_layout(&[set0_layout, set1_layout], &[])?;
    let pipeline = ctx.compute_pipeline(shaders::TEMPLATES, layout, vk::PipelineCache::null())?;

    let set_entries = entries(
        2,
        (offset_of!(SetData, storage), size_of::<StorageEntry>()),
        offset_of!(SetData, uniform),
    );
    let set_template = template(
        ctx,
        &vk::DescriptorUpdateTemplateCreateInfo::default()
            .descriptor_update_entries(&set_entries)
            .template_type(vk::DescriptorUpdateTemplateType::DESCRIPTOR_SET)
            .descriptor_set_layout(set0_layout),
    )?;
    let sets = [
        (
            ctx.descriptor_set(set0_layout)?,
            set_data(&storage, &uniform, [0, 1], 0),
        ),
        (
            ctx.descriptor_set(set0_layout)?,
            set_data(&storage, &uniform, [2, 3], 1),
        ),
    ];
    for (set, data) in &sets {
        let data = std::ptr::from_ref(data).cast::<c_void>();
        unsafe {
            ctx.device
                .update_descriptor_set_with_template(*set, set_template, data)
        };
    }

    let pushed_storage = [
        storage.info(4, vk::WHOLE_SIZE),
        storage.info(5, vk::WHOLE_SIZE),
    ];
    let pushed_uniform = [
        uniform.info(2, size_of::<Params>() as u64),
        uniform.info(3, size_of::<Params>() as u64),
    ];
    let push_entries = entries(
        1,
        (offset_of!(PushData, storage), 0),
        offset_of!(PushData, uniform),
    );
    let push_template = if with_template {
        Some(template(
            ctx,
            &vk::DescriptorUpdateTemplateCreateInfo::default()
                .descriptor_update_entries(&push_entries)
                .template_type(vk::DescriptorUpdateTemplateType::PUSH_DESCRIPTORS_KHR)
                .pipeline_bind_point(vk::PipelineBindPoint::COMPUTE)
                .pipeline_layout(layout)
                .set(1),
        )?)
    } else {
        None
    };

    ctx.run_commands(|cmd| {
        let d = &ctx.device;
        unsafe { d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, pipeline) };
        for (i, (set, _)) in sets.iter().enumerate() {
            unsafe {
                d.cmd_bind_descriptor_sets(
                    cmd,
                    vk::PipelineBindPoint::COMPUTE,
                    layout,
                    0,
                    &[*set],
                    &[],
                )
            };
            match push_template {
                // The first dispatch pushes with writes, the second with the template.
                Some(template) if i == 1 => {
                    let data = PushData {
                        uniform: pushed_uniform[i],
                        gap: [0; 3],
                        storage: pushed_storage[i],
                    };
                    let data = std::ptr::from_ref(&data).cast::<c_void>();
                    unsafe {
                        push.cmd_push_descriptor_set_with_template(cmd, template, layout, 1, data)
                    };
                }
                _ => {
                    let storage_info = [pushed_storage[i]];
                    let uniform_info = [pushed_uniform[i]];
                    let writes = [
                        vk::WriteDescriptorSet::default()
                            .dst_binding(0)
                            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                            .buffer_info(&storage_info),
                        vk::WriteDescriptorSet::default()
                            .dst_binding(1)
                            .descriptor_type(vk::DescriptorType::UNIFORM_BUFFER)
                            .buffer_info(&uniform_info),
                    ];
                    unsafe {
                        push.cmd_push_descriptor_set(
                            cmd,
                            vk::PipelineBindPoint::COMPUTE,
                            layout,
                            1,
                            &writes,
                        )
                    };
                }
            }
            unsafe { d.cmd_dispatch(cmd, 1, 1, 1) };
        }
        ctx.memory_barrier(cmd, Access::COMPUTE_WRITE, Access::HOST_READ);
        Ok(())
    })?;

    let mut report = Report::new();
    report.flag("with_template", with_template);
    for i in 0..2u64 {
        let want = expected(params[i as usize], params[2 + i as usize]);
        for (slot, want) in [2 * i, 2 * i + 1, 4 + i].into_iter().zip(want) {
            let got = storage.words(slot);
            check_elements(&format!("dispatch {i}, storage slot {slot}"), &got, |j| {
                want[j]
            })?;
            report.values(&format!("slot{slot}"), &got);
        }
    }
    Ok(report)
}
