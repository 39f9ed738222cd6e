//! Buffers and images with their memory, barriers, and copies between them.

use crate::context::Context;
use crate::error::{Check, Error, Result};
use ash::vk;
use bytemuck::{AnyBitPattern, NoUninit};
use std::ptr::NonNull;

/// Where a resource's memory lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Location {
    /// Device-local when the device has such memory; never mapped.
    Device,
    /// HOST_VISIBLE | HOST_COHERENT, mapped for the resource's lifetime, so writes through the
    /// mapping need no flush.
    Host,
}

pub struct Buffer {
    pub handle: vk::Buffer,
    pub memory: vk::DeviceMemory,
    pub size: u64,
    mapped: Option<NonNull<u8>>,
}

// SAFETY: the mapping stays valid until the context frees the memory; concurrent access to
// the mapped bytes is the scenario's to order, as in any Vulkan program.
unsafe impl Send for Buffer {}
unsafe impl Sync for Buffer {}

impl Buffer {
    fn mapped(&self) -> *mut u8 {
        self.mapped
            .expect("a buffer in Location::Device memory is not mapped")
            .as_ptr()
    }

    /// The whole buffer, read through the mapping.
    pub fn read<T: AnyBitPattern>(&self) -> Vec<T> {
        let count = self.size as usize / std::mem::size_of::<T>();
        let mut out = vec![T::zeroed(); count];
        // SAFETY: the mapping covers `size` bytes; `out` is a separate allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.mapped(),
                out.as_mut_ptr().cast::<u8>(),
                count * std::mem::size_of::<T>(),
            )
        };
        out
    }

    /// Writes `data` at byte `offset` through the mapping.
    pub fn write<T: NoUninit>(&self, offset: u64, data: &[T]) {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        assert!(
            offset + bytes.len() as u64 <= self.size,
            "write past the buffer's end"
        );
        // SAFETY: in bounds (checked above) of a live mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.mapped().add(offset as usize),
                bytes.len(),
            )
        };
    }

    /// Stores `word(i)` into every u32 of the buffer, straight into the mapped memory (no
    /// staging copy on the application's side).
    pub fn fill_words(&self, word: impl Fn(usize) -> u32) {
        let count = self.size as usize / 4;
        // SAFETY: the mapping covers `size` bytes and is aligned to at least 4 (Vulkan maps at
        // minMemoryMapAlignment, 64 or more); no other reference to it exists during the call.
        let words = unsafe { std::slice::from_raw_parts_mut(self.mapped().cast::<u32>(), count) };
        for (i, w) in words.iter_mut().enumerate() {
            *w = word(i);
        }
    }

    /// The mapping as 32-bit atomics: for a thread that rewrites words while the device reads
    /// them (a race Vulkan leaves to the application; each word is read whole).
    pub fn atomic_words(&self) -> &[std::sync::atomic::AtomicU32] {
        // SAFETY: the mapping covers `size` bytes, aligned to at least 4, alive as long as
        // `self`; every access through the returned slice is atomic.
        unsafe { std::slice::from_raw_parts(self.mapped().cast(), self.size as usize / 4) }
    }

    /// vkUnmapMemory; what was written through the mapping stays in the memory.
    pub fn unmap(&mut self, ctx: &Context) {
        if self.mapped.take().is_some() {
            unsafe { ctx.device.unmap_memory(self.memory) };
        }
    }

    /// The whole range as a descriptor.
    pub fn info(&self) -> vk::DescriptorBufferInfo {
        self.range(0, vk::WHOLE_SIZE)
    }

    pub fn range(&self, offset: u64, range: u64) -> vk::DescriptorBufferInfo {
        vk::DescriptorBufferInfo {
            buffer: self.handle,
            offset,
            range,
        }
    }
}

pub struct Image {
    pub handle: vk::Image,
    pub view: vk::ImageView,
    pub format: vk::Format,
    pub extent: vk::Extent2D,
    pub aspect: vk::ImageAspectFlags,
}

impl Image {
    pub fn subresource_range(&self) -> vk::ImageSubresourceRange {
        vk::ImageSubresourceRange::default()
            .aspect_mask(self.aspect)
            .level_count(1)
            .layer_count(1)
    }
}

/// A pipeline stage and the accesses made there, one side of a barrier.
#[derive(Clone, Copy, Debug)]
pub struct Access(pub vk::PipelineStageFlags, pub vk::AccessFlags);

impl Access {
    pub const NONE: Access = Access(
        vk::PipelineStageFlags::TOP_OF_PIPE,
        vk::AccessFlags::empty(),
    );
    pub const TRANSFER_WRITE: Access = Access(
        vk::PipelineStageFlags::TRANSFER,
        vk::AccessFlags::TRANSFER_WRITE,
    );
    pub const TRANSFER_READ: Access = Access(
        vk::PipelineStageFlags::TRANSFER,
        vk::AccessFlags::TRANSFER_READ,
    );
    pub const COMPUTE_WRITE: Access = Access(
        vk::PipelineStageFlags::COMPUTE_SHADER,
        vk::AccessFlags::SHADER_WRITE,
    );
    pub const COMPUTE_READ: Access = Access(
        vk::PipelineStageFlags::COMPUTE_SHADER,
        vk::AccessFlags::SHADER_READ,
    );
    pub const HOST_READ: Access = Access(vk::PipelineStageFlags::HOST, vk::AccessFlags::HOST_READ);
    pub const COLOR_WRITE: Access = Access(
        vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT,
        vk::AccessFlags::COLOR_ATTACHMENT_WRITE,
    );
    pub const DEPTH_WRITE: Access = Access(
        vk::PipelineStageFlags::from_raw(
            vk::PipelineStageFlags::EARLY_FRAGMENT_TESTS.as_raw()
                | vk::PipelineStageFlags::LATE_FRAGMENT_TESTS.as_raw(),
        ),
        vk::AccessFlags::DEPTH_STENCIL_ATTACHMENT_WRITE,
    );
    pub const FRAGMENT_READ: Access = Access(
        vk::PipelineStageFlags::FRAGMENT_SHADER,
        vk::AccessFlags::SHADER_READ,
    );
}

fn is_depth(format: vk::Format) -> bool {
    matches!(
        format,
        vk::Format::D16_UNORM | vk::Format::D32_SFLOAT | vk::Format::X8_D24_UNORM_PACK32
    )
}

impl Context {
    /// A memory type allowed by `type_bits` with all of `flags`.
    pub fn memory_type(&self, type_bits: u32, flags: vk::MemoryPropertyFlags) -> Option<u32> {
        let props = &self.memory_properties;
        (0..props.memory_type_count).find(|&i| {
            type_bits & (1 << i) != 0
                && props.memory_types[i as usize]
                    .property_flags
                    .contains(flags)
        })
    }

    fn allocate(
        &self,
        requirements: vk::MemoryRequirements,
        location: Location,
    ) -> Result<vk::DeviceMemory> {
        let bits = requirements.memory_type_bits;
        let index = match location {
            Location::Device => self
                .memory_type(bits, vk::MemoryPropertyFlags::DEVICE_LOCAL)
                .or_else(|| self.memory_type(bits, vk::MemoryPropertyFlags::empty())),
            Location::Host => self.memory_type(
                bits,
                vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT,
            ),
        }
        .ok_or_else(|| Error::Unsupported(format!("no memory type for {location:?} memory")))?;
        let info = vk::MemoryAllocateInfo::default()
            .allocation_size(requirements.size)
            .memory_type_index(index);
        unsafe { self.device.allocate_memory(&info, None) }
            .check("vkAllocateMemory")
            .map(|m| self.own(m))
    }

    pub fn buffer(
        &self,
        size: u64,
        usage: vk::BufferUsageFlags,
        location: Location,
    ) -> Result<Buffer> {
        self.buffer_from(
            &vk::BufferCreateInfo::default().size(size).usage(usage),
            location,
        )
    }

    /// A buffer made from `info` as the application wrote it, with its memory.
    pub fn buffer_from(
        &self,
        info: &vk::BufferCreateInfo<'_>,
        location: Location,
    ) -> Result<Buffer> {
        let size = info.size;
        let handle = unsafe { self.device.create_buffer(info, None) }
            .check("vkCreateBuffer")
            .map(|b| self.own(b))?;
        let requirements = unsafe { self.device.get_buffer_memory_requirements(handle) };
        let memory = self.allocate(requirements, location)?;
        unsafe { self.device.bind_buffer_memory(handle, memory, 0) }.check("vkBindBufferMemory")?;
        let mapped = match location {
            Location::Device => None,
            Location::Host => {
                let ptr = unsafe {
                    self.device
                        .map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
                }
                .check("vkMapMemory")?;
                NonNull::new(ptr.cast::<u8>())
            }
        };
        Ok(Buffer {
            handle,
            memory,
            size,
            mapped,
        })
    }

    /// A 2D image in device memory, with a view of its whole range.
    pub fn image(
        &self,
        extent: vk::Extent2D,
        format: vk::Format,
        usage: vk::ImageUsageFlags,
        samples: vk::SampleCountFlags,
    ) -> Result<Image> {
        let info = vk::ImageCreateInfo::default()
            .image_type(vk::ImageType::TYPE_2D)
            .format(format)
            .extent(extent.into())
            .mip_levels(1)
            .array_layers(1)
            .samples(samples)
            .tiling(vk::ImageTiling::OPTIMAL)
            .usage(usage)
            .initial_layout(vk::ImageLayout::UNDEFINED);
        self.image_from(&info)
    }

    /// A 2D image made from `info` as the application wrote it, in device memory, with a view
    /// of its whole range.
    pub fn image_from(&self, info: &vk::ImageCreateInfo<'_>) -> Result<Image> {
        let (format, extent) = (info.format, info.extent);
        let handle = unsafe { self.device.create_image(info, None) }
            .check("vkCreateImage")
            .map(|i| self.own(i))?;
        let requirements = unsafe { self.device.get_image_memory_requirements(handle) };
        let memory = self.allocate(requirements, Location::Device)?;
        unsafe { self.device.bind_image_memory(handle, memory, 0) }.check("vkBindImageMemory")?;
        let aspect = if is_depth(format) {
            vk::ImageAspectFlags::DEPTH
        } else {
            vk::ImageAspectFlags::COLOR
        };
        let mut image = Image {
            handle,
            view: vk::ImageView::null(),
            format,
            extent: vk::Extent2D {
                width: extent.width,
                height: extent.height,
            },
            aspect,
        };
        let view_info = vk::ImageViewCreateInfo::default()
            .image(handle)
            .view_type(vk::ImageViewType::TYPE_2D)
            .format(format)
            .subresource_range(image.subresource_range());
        image.view = unsafe { self.device.create_image_view(&view_info, None) }
            .check("vkCreateImageView")
            .map(|v| self.own(v))?;
        Ok(image)
    }

    pub fn memory_barrier(&self, cmd: vk::CommandBuffer, src: Access, dst: Access) {
        let barrier = vk::MemoryBarrier::default()
            .src_access_mask(src.1)
            .dst_access_mask(dst.1);
        unsafe {
            self.device.cmd_pipeline_barrier(
                cmd,
                src.0,
                dst.0,
                vk::DependencyFlags::empty(),
                &[barrier],
                &[],
                &[],
            )
        };
    }

    /// Moves `image` from layout `from` to `to`, ordered after `src` and before `dst`.
    pub fn image_barrier(
        &self,
        cmd: vk::CommandBuffer,
        image: &Image,
        (from, src): (vk::ImageLayout, Access),
        (to, dst): (vk::ImageLayout, Access),
    ) {
        let barrier = vk::ImageMemoryBarrier::default()
            .src_access_mask(src.1)
            .dst_access_mask(dst.1)
            .old_layout(from)
            .new_layout(to)
            .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .image(image.handle)
            .subresource_range(image.subresource_range());
        unsafe {
            self.device.cmd_pipeline_barrier(
                cmd,
                src.0,
                dst.0,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &[barrier],
            )
        };
    }

    fn whole_image_copy(image: &Image) -> vk::BufferImageCopy {
        vk::BufferImageCopy::default()
            .image_subresource(
                vk::ImageSubresourceLayers::default()
                    .aspect_mask(image.aspect)
                    .layer_count(1),
            )
            .image_extent(image.extent.into())
    }

    /// Copies a tightly packed `buffer` into all of `image`, which is in TRANSFER_DST_OPTIMAL.
    pub fn copy_buffer_to_image(&self, cmd: vk::CommandBuffer, buffer: &Buffer, image: &Image) {
        unsafe {
            self.device.cmd_copy_buffer_to_image(
                cmd,
                buffer.handle,
                image.handle,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                &[Self::whole_image_copy(image)],
            )
        };
    }

    /// Copies all of `image` (in TRANSFER_SRC_OPTIMAL) tightly packed into `buffer` and makes
    /// the bytes visible to the host.
    pub fn copy_image_to_host(&self, cmd: vk::CommandBuffer, image: &Image, buffer: &Buffer) {
        unsafe {
            self.device.cmd_copy_image_to_buffer(
                cmd,
                image.handle,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                buffer.handle,
                &[Self::whole_image_copy(image)],
            )
        };
        self.memory_barrier(cmd, Access::TRANSFER_WRITE, Access::HOST_READ);
    }
}
