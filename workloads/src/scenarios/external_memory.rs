//! Device memory shared through opaque fds (`VK_KHR_external_memory_fd`): written through the
//! exporter's mapping, exported twice, imported once as exported and once from a `dup` of it, and
//! seen alike through every import by the host and by the device.

use crate::error::{check_elements, ensure, Check, Error};
use crate::memory::Access;
use crate::{Context, Report, Result};
use ash::vk;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

const SIZE: u64 = 256 << 10;
const WORDS: usize = SIZE as usize / 4;
const OPAQUE: vk::ExternalMemoryHandleTypeFlags = vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD;
/// What the device writes over the first half of the shared memory.
const FILL: u32 = 0xA5C3_0F96;

fn word(i: usize) -> u32 {
    (i as u32).wrapping_mul(0x9E37_79B9) ^ 0x5A5A_0000
}

/// A buffer made to live in memory shared as an opaque fd.
fn shareable_buffer(ctx: &Context) -> Result<vk::Buffer> {
    let mut external = vk::ExternalMemoryBufferCreateInfo::default().handle_types(OPAQUE);
    let info = vk::BufferCreateInfo::default()
        .size(SIZE)
        .usage(vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST)
        .push_next(&mut external);
    unsafe { ctx.device.create_buffer(&info, None) }
        .check("vkCreateBuffer")
        .map(|b| ctx.own(b))
}

/// `buffer`'s memory requirements: the allocation size and a host-visible, coherent type.
fn requirements(ctx: &Context, buffer: vk::Buffer) -> Result<(u64, u32)> {
    let r = unsafe { ctx.device.get_buffer_memory_requirements(buffer) };
    let flags = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
    let ty = ctx
        .memory_type(r.memory_type_bits, flags)
        .ok_or_else(|| Error::Unsupported("no host-visible memory for the buffer".into()))?;
    Ok((r.size, ty))
}

fn map(ctx: &Context, memory: vk::DeviceMemory) -> Result<*mut u32> {
    unsafe {
        ctx.device
            .map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
    }
    .check("vkMapMemory")
    .map(|p| p.cast())
}

fn words(ptr: *const u32) -> Vec<u32> {
    // SAFETY: a live mapping of at least SIZE bytes.
    unsafe { std::slice::from_raw_parts(ptr, WORDS) }.to_vec()
}

/// Allocates `size` bytes of `ty` importing `fd`; the driver owns `fd` once this succeeds.
fn import(
    ctx: &Context,
    fd: i32,
    size: u64,
    ty: u32,
) -> std::result::Result<vk::DeviceMemory, vk::Result> {
    let mut import = vk::ImportMemoryFdInfoKHR::default()
        .handle_type(OPAQUE)
        .fd(fd);
    let info = vk::MemoryAllocateInfo::default()
        .allocation_size(size)
        .memory_type_index(ty)
        .push_next(&mut import);
    unsafe { ctx.device.allocate_memory(&info, None) }.map(|m| ctx.own(m))
}

pub fn run(ctx: &Context) -> Result<Report> {
    let fds = ctx
        .external_memory_fd
        .as_ref()
        .ok_or_else(|| Error::Unsupported("VK_KHR_external_memory_fd".into()))?;
    let mut report = Report::new();

    let query = vk::PhysicalDeviceExternalBufferInfo::default()
        .usage(vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST)
        .handle_type(OPAQUE);
    let mut props = vk::ExternalBufferProperties::default();
    unsafe {
        ctx.instance.get_physical_device_external_buffer_properties(
            ctx.physical_device,
            &query,
            &mut props,
        )
    };
    let m = props.external_memory_properties;
    let both =
        vk::ExternalMemoryFeatureFlags::EXPORTABLE | vk::ExternalMemoryFeatureFlags::IMPORTABLE;
    ensure(
        m.external_memory_features.contains(both) && m.compatible_handle_types.contains(OPAQUE),
        || format!("opaque fd buffers are not exportable and importable: {m:?}"),
    )?;
    report.values(
        "opaque fd buffer properties",
        &[
            m.external_memory_features.as_raw(),
            m.export_from_imported_handle_types.as_raw(),
            m.compatible_handle_types.as_raw(),
        ],
    );

    // The exporter, filled through its mapping.
    let exported = shareable_buffer(ctx)?;
    let (size, ty) = requirements(ctx, exported)?;
    let mut export = vk::ExportMemoryAllocateInfo::default().handle_types(OPAQUE);
    let info = vk::MemoryAllocateInfo::default()
        .allocation_size(size)
        .memory_type_index(ty)
        .push_next(&mut export);
    let memory = unsafe { ctx.device.allocate_memory(&info, None) }
        .check("vkAllocateMemory (exportable)")
        .map(|m| ctx.own(m))?;
    unsafe { ctx.device.bind_buffer_memory(exported, memory, 0) }.check("vkBindBufferMemory")?;
    let mapped = map(ctx, memory)?;
    // SAFETY: the mapping covers SIZE bytes and nothing else refers to it now.
    unsafe { std::slice::from_raw_parts_mut(mapped, WORDS) }
        .iter_mut()
        .enumerate()
        .for_each(|(i, w)| *w = word(i));

    let get = vk::MemoryGetFdInfoKHR::default()
        .memory(memory)
        .handle_type(OPAQUE);
    let first = unsafe { fds.get_memory_fd(&get) }.check("vkGetMemoryFdKHR")?;
    let second = unsafe { fds.get_memory_fd(&get) }.check("vkGetMemoryFdKHR (again)")?;
    // SAFETY: the driver gave us this descriptor.
    let second = unsafe { OwnedFd::from_raw_fd(second) };
    let copy = second
        .try_clone()
        .map_err(|e| Error::Mismatch(format!("dup of an exported fd: {e}")))?;
    drop(second);

    // The first import, seen by the device: copied out, then half overwritten.
    let imported = shareable_buffer(ctx)?;
    let memory_a = import(ctx, first, size, ty).check("vkAllocateMemory (import)")?;
    unsafe { ctx.device.bind_buffer_memory(imported, memory_a, 0) }.check("vkBindBufferMemory")?;
    let out = ctx.buffer(
        SIZE,
        vk::BufferUsageFlags::TRANSFER_DST,
        crate::memory::Location::Host,
    )?;
    ctx.run_commands(|cmd| unsafe {
        let whole = [vk::BufferCopy::default().size(SIZE)];
        ctx.device
            .cmd_copy_buffer(cmd, imported, out.handle, &whole);
        ctx.memory_barrier(cmd, Access::TRANSFER_READ, Access::TRANSFER_WRITE);
        ctx.device.cmd_fill_buffer(cmd, imported, 0, SIZE / 2, FILL);
        ctx.memory_barrier(cmd, Access::TRANSFER_WRITE, Access::HOST_READ);
        Ok(())
    })?;
    let copied: Vec<u32> = out.read();
    check_elements("the import, copied by the device", &copied, word)?;
    let after = |i: usize| if i < WORDS / 2 { FILL } else { word(i) };
    check_elements(
        "the exporter's mapping after the device's fill",
        &words(mapped),
        after,
    )?;

    // The second import, from the duplicate, seen by the host.
    let memory_b =
        import(ctx, copy.as_raw_fd(), size, ty).check("vkAllocateMemory (import of a dup)")?;
    let _ = copy.into_raw_fd(); // now the driver's
    let seen = words(map(ctx, memory_b)?);
    check_elements("the second import's mapping", &seen, after)?;

    report.values("shared memory after the fill", &seen);
    Ok(report)
}
