//! Swapchains, in the ICD alone: the images are ordinary images of the server's, LINEAR, in
//! host-visible memory shared with this process like every allocation (a memfd), so the
//! pixels are read where the host driver drew them, with no copy through the ring.
//!
//! Acquire blocks until an image is free (or the timeout passes) and signals the application's
//! semaphore and fence through the server's queue, in order with its own submissions. Present
//! has the server wait for the present's semaphores and signal a fence of the image's, waits
//! for it, and only then puts the pixels on screen:
//! - X11: MIT-SHM with the image's own memfd (`ShmAttachFd`, `ShmPutImage`: the X server reads
//!   the very pages the driver wrote), or `PutImage` in pieces where MIT-SHM is absent or the
//!   server is not local. Checked requests on the application's connection: no reply, error
//!   or event of ours reaches its event handling, and once a request is checked the X server
//!   has read the image, which is free again.
//! - Wayland: `wl_shm` buffers over the images' memfds (`swapchain/wayland.rs`); the compositor
//!   holds an image until it releases its buffer.
//! - Headless: the image is done when its rendering is.
//!
//! A window that is gone makes acquire and present return `VK_ERROR_OUT_OF_DATE_KHR`; one whose
//! size changed, `VK_SUBOPTIMAL_KHR` until the application makes a new swapchain.

use crate::call::call;
use crate::log::log;
use crate::memfd;
use crate::objects::{header, Header};
use crate::surface::{self, Window};
use crate::util::{app_slice, fill};
use ash::vk::{self, Handle};
use parking_lot::{Condvar, Mutex};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use std::ffi::c_void;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use wire::generated::commands::{
    C_vkBindImageMemory, C_vkBindImageMemory2, C_vkCreateImage, C_vkDestroyImage,
    C_vkGetImageMemoryRequirements, C_vkGetImageSubresourceLayout,
    C_vkGetPhysicalDeviceMemoryProperties, C_vkMapMemory,
};
use x11rb::connection::{Connection as _, RequestConnection as _};
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, ImageFormat};
use x11rb::xcb_ffi::XCBConnection;

mod wayland;

/// One image of a swapchain: the server's image and memory, and this process's view of it.
struct Image {
    image: vk::Image,
    memory: vk::DeviceMemory,
    /// The memory's memfd, for MIT-SHM, and its mapping (read only: it is presented).
    memfd: OwnedFd,
    map: *const u8,
    len: u64,
    row_pitch: u64,
    offset: u64,
    /// Signalled by the server when the image's rendering is done and it may be shown.
    rendered: vk::Fence,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Use {
    Free,
    Acquired,
    Presenting,
}

struct State {
    uses: Vec<Use>,
    /// A newer swapchain replaced this one: no more acquires.
    retired: bool,
}

pub struct Swapchain {
    device: u64,
    queue: vk::Queue,
    extent: vk::Extent2D,
    images: Vec<Image>,
    presenter: Presenter,
    state: Mutex<State>,
    freed: Condvar,
}

// SAFETY: the mappings are read-only views of shared memory that lives as long as the
// swapchain; the X connection is libxcb's, which is thread-safe.
unsafe impl Send for Swapchain {}
unsafe impl Sync for Swapchain {}

/// How the pixels reach the window.
enum Presenter {
    Headless,
    X11(Box<X11>),
    Wayland(Box<wayland::Wayland>),
}

struct X11 {
    conn: XCBConnection,
    window: u32,
    gc: u32,
    depth: u8,
    /// MIT-SHM segments of the images' memfds, when the X server can attach them.
    segments: Option<Vec<u32>>,
}

/// # Safety
/// `swapchain` is a live swapchain of this ICD's.
unsafe fn get<'a>(swapchain: vk::SwapchainKHR) -> &'a Swapchain {
    &*(swapchain.as_raw() as *const Swapchain)
}

fn result(r: u64) -> vk::Result {
    vk::Result::from_raw(r as i64 as i32)
}

/// A host-visible, coherent memory type among `bits` of the device's physical device.
unsafe fn memory_type(device: &Header, bits: u32) -> Option<u32> {
    let mut props = vk::PhysicalDeviceMemoryProperties::default();
    call(
        &C_vkGetPhysicalDeviceMemoryProperties,
        &[device.parent, &mut props as *mut _ as u64],
    );
    let want = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
    (0..props.memory_type_count.min(vk::MAX_MEMORY_TYPES as u32)).find(|&i| {
        bits & (1 << i) != 0 && props.memory_types[i as usize].property_flags.contains(want)
    })
}

/// Makes one image of a swapchain, in shared memory, and maps it here.
unsafe fn make_image(
    device: vk::Device,
    info: &vk::SwapchainCreateInfoKHR<'_>,
) -> Result<Image, vk::Result> {
    let dev = header(device.as_raw());
    let d = device.as_raw();
    let mut flags = vk::ImageCreateFlags::empty();
    if info
        .flags
        .contains(vk::SwapchainCreateFlagsKHR::MUTABLE_FORMAT)
    {
        flags |= vk::ImageCreateFlags::MUTABLE_FORMAT | vk::ImageCreateFlags::EXTENDED_USAGE;
    }
    // A format list the application chained (mutable formats) goes with the images.
    let mut chain = info.p_next as *const vk::BaseInStructure<'_>;
    let mut formats: *const c_void = std::ptr::null();
    while let Some(b) = chain.as_ref() {
        if b.s_type == vk::StructureType::IMAGE_FORMAT_LIST_CREATE_INFO {
            let l = &*(chain as *const vk::ImageFormatListCreateInfo<'_>);
            formats = Box::into_raw(Box::new(vk::ImageFormatListCreateInfo {
                p_next: std::ptr::null(),
                ..*l
            })) as *const c_void;
        }
        chain = b.p_next;
    }
    let image_info = vk::ImageCreateInfo {
        p_next: formats,
        flags,
        image_type: vk::ImageType::TYPE_2D,
        format: info.image_format,
        extent: vk::Extent3D {
            width: info.image_extent.width,
            height: info.image_extent.height,
            depth: 1,
        },
        mip_levels: 1,
        array_layers: info.image_array_layers,
        samples: vk::SampleCountFlags::TYPE_1,
        tiling: vk::ImageTiling::LINEAR,
        usage: info.image_usage,
        sharing_mode: info.image_sharing_mode,
        queue_family_index_count: info.queue_family_index_count,
        p_queue_family_indices: info.p_queue_family_indices,
        initial_layout: vk::ImageLayout::UNDEFINED,
        ..Default::default()
    };
    let mut image = vk::Image::null();
    let r = result(call(
        &C_vkCreateImage,
        &[
            d,
            &image_info as *const _ as u64,
            0,
            &mut image as *mut _ as u64,
        ],
    ));
    if !formats.is_null() {
        drop(Box::from_raw(
            formats as *mut vk::ImageFormatListCreateInfo<'_>,
        ));
    }
    if r != vk::Result::SUCCESS {
        return Err(r);
    }
    let fail = |r: vk::Result| {
        call(&C_vkDestroyImage, &[d, image.as_raw(), 0]);
        Err(r)
    };
    let mut req = vk::MemoryRequirements::default();
    call(
        &C_vkGetImageMemoryRequirements,
        &[d, image.as_raw(), &mut req as *mut _ as u64],
    );
    let Some(type_index) = memory_type(dev, req.memory_type_bits) else {
        log!(
            error,
            "airlock: a swapchain image: no host-visible memory type for it"
        );
        return fail(vk::Result::ERROR_OUT_OF_DEVICE_MEMORY);
    };
    let alloc = vk::MemoryAllocateInfo::default()
        .allocation_size(req.size)
        .memory_type_index(type_index);
    let mut memory = vk::DeviceMemory::null();
    let r = crate::memory::vkAllocateMemory(device, &alloc, std::ptr::null(), &mut memory);
    if r != vk::Result::SUCCESS {
        return fail(r);
    }
    let fail = |r: vk::Result| {
        crate::memory::vkFreeMemory(device, memory, std::ptr::null());
        fail(r)
    };
    let r = result(call(
        &C_vkBindImageMemory,
        &[d, image.as_raw(), memory.as_raw(), 0],
    ));
    if r != vk::Result::SUCCESS {
        return fail(r);
    }
    let (fd, len) = match memfd::receive(dev.conn(), memory.as_raw(), req.size, &C_vkMapMemory) {
        Ok(m) => m,
        Err(r) => return fail(r),
    };
    let map = match mmap(
        std::ptr::null_mut(),
        len as usize,
        ProtFlags::READ,
        MapFlags::SHARED,
        fd.as_fd(),
        0,
    ) {
        Ok(p) => p as *const u8,
        Err(e) => {
            log!(error, "airlock: a swapchain image: mmap: {e}");
            return fail(vk::Result::ERROR_OUT_OF_HOST_MEMORY);
        }
    };
    let sub = vk::ImageSubresource {
        aspect_mask: vk::ImageAspectFlags::COLOR,
        mip_level: 0,
        array_layer: 0,
    };
    let mut layout = vk::SubresourceLayout::default();
    call(
        &C_vkGetImageSubresourceLayout,
        &[
            d,
            image.as_raw(),
            &sub as *const _ as u64,
            &mut layout as *mut _ as u64,
        ],
    );
    let mut fence = vk::Fence::null();
    let fence_info = vk::FenceCreateInfo::default();
    // The queue family's own entry points: the fence reports its status in the feedback
    // region, so waiting for a present costs no round trip.
    let r = crate::queue::vkCreateFence(device, &fence_info, std::ptr::null(), &mut fence);
    if r != vk::Result::SUCCESS {
        let _ = munmap(map as *mut c_void, len as usize);
        return fail(r);
    }
    Ok(Image {
        image,
        memory,
        memfd: fd,
        map,
        len,
        row_pitch: layout.row_pitch,
        offset: layout.offset,
        rendered: fence,
    })
}

/// Frees an image: the server's objects, this process's mapping.
unsafe fn free_image(device: vk::Device, i: &Image) {
    let d = device.as_raw();
    crate::queue::vkDestroyFence(device, i.rendered, std::ptr::null());
    call(&C_vkDestroyImage, &[d, i.image.as_raw(), 0]);
    crate::memory::vkFreeMemory(device, i.memory, std::ptr::null());
    let _ = munmap(i.map as *mut c_void, i.len as usize);
}

impl X11 {
    /// Set up to present to `window`: a graphics context, and the images' memfds attached as
    /// MIT-SHM segments where the X server can take them.
    fn new(connection: *mut c_void, window: u32, images: &[Image]) -> Result<X11, vk::Result> {
        // SAFETY: the application's connection, which outlives its surface and swapchain.
        let conn = unsafe { surface::x11(connection) }.ok_or(vk::Result::ERROR_SURFACE_LOST_KHR)?;
        let geometry =
            surface::x11_geometry(&conn, window).ok_or(vk::Result::ERROR_OUT_OF_DATE_KHR)?;
        let lost = |e: &dyn std::fmt::Display| {
            log!(warn, "airlock: presenting to X11 window {window:#x}: {e}");
            vk::Result::ERROR_SURFACE_LOST_KHR
        };
        let gc = conn.generate_id().map_err(|e| lost(&e))?;
        let aux = CreateGCAux::new().graphics_exposures(0);
        conn.create_gc(gc, window, &aux)
            .map_err(|e| lost(&e))?
            .check()
            .map_err(|e| lost(&e))?;
        let segments = Self::attach(&conn, images);
        if segments.is_none() {
            log!(
                info,
                "airlock: X11 window {window:#x}: no MIT-SHM with descriptors; each frame is copied over the X connection"
            );
        }
        Ok(X11 {
            conn,
            window,
            gc,
            depth: geometry.depth,
            segments,
        })
    }

    /// The images' memfds as MIT-SHM segments (`ShmAttachFd`, MIT-SHM 1.2), if the X server
    /// has the extension and can receive descriptors (a local one).
    fn attach(conn: &XCBConnection, images: &[Image]) -> Option<Vec<u32>> {
        conn.extension_information(x11rb::protocol::shm::X11_EXTENSION_NAME)
            .ok()??;
        let v = conn.shm_query_version().ok()?.reply().ok()?;
        if (v.major_version, v.minor_version) < (1, 2) {
            return None;
        }
        let mut segments = Vec::with_capacity(images.len());
        for i in images {
            let seg = conn.generate_id().ok()?;
            let fd = i.memfd.try_clone().ok()?;
            let attached = conn
                .shm_attach_fd(seg, fd, true)
                .ok()
                .and_then(|c| c.check().ok());
            if attached.is_none() {
                for s in &segments {
                    let _ = conn.shm_detach(*s).map(|c| c.check());
                }
                return None;
            }
            segments.push(seg);
        }
        Some(segments)
    }

    /// Shows image `index` (of `extent`) in the window; once this returns the X server has read
    /// it.
    fn present(&self, index: usize, image: &Image, extent: vk::Extent2D) -> Result<(), vk::Result> {
        let gone = |e: &dyn std::fmt::Display| {
            log!(
                warn,
                "airlock: presenting to X11 window {:#x}: {e}",
                self.window
            );
            vk::Result::ERROR_OUT_OF_DATE_KHR
        };
        let (w, h) = (extent.width as u16, extent.height as u16);
        if let Some(segments) = &self.segments {
            let stride = (image.row_pitch / 4) as u16;
            return self
                .conn
                .shm_put_image(
                    self.window,
                    self.gc,
                    stride,
                    h,
                    0,
                    0,
                    w,
                    h,
                    0,
                    0,
                    self.depth,
                    ImageFormat::Z_PIXMAP.into(),
                    false,
                    segments[index],
                    image.offset as u32,
                )
                .map_err(|e| gone(&e))?
                .check()
                .map_err(|e| gone(&e));
        }
        // PutImage, as many rows a request as the X server takes.
        let row = usize::from(w) * 4;
        let per = ((self.conn.maximum_request_bytes() - 64) / row).max(1);
        let mut y = 0usize;
        while y < usize::from(h) {
            let n = per.min(usize::from(h) - y);
            let mut data = Vec::with_capacity(n * row);
            for r in y..y + n {
                let start = image.offset as usize + r * image.row_pitch as usize;
                // SAFETY: within the mapping: the image's rows lie in its memory.
                data.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(image.map.add(start), row)
                });
            }
            self.conn
                .put_image(
                    ImageFormat::Z_PIXMAP,
                    self.window,
                    self.gc,
                    w,
                    n as u16,
                    0,
                    y as i16,
                    0,
                    self.depth,
                    &data,
                )
                .map_err(|e| gone(&e))?
                .check()
                .map_err(|e| gone(&e))?;
            crate::stats::present_copied(data.len() as u64);
            y += n;
        }
        Ok(())
    }

    /// Whether the window still has `extent`: `Err` when it is gone.
    fn fits(&self, extent: vk::Extent2D) -> Result<bool, vk::Result> {
        let Some(g) = surface::x11_geometry(&self.conn, self.window) else {
            log!(
                warn,
                "airlock: X11 window {:#x} is gone: its swapchain is out of date",
                self.window
            );
            return Err(vk::Result::ERROR_OUT_OF_DATE_KHR);
        };
        Ok(g.width == extent.width && g.height == extent.height)
    }

    fn close(&self) {
        for s in self.segments.iter().flatten() {
            let _ = self.conn.shm_detach(*s).map(|c| c.check());
        }
        let _ = self.conn.free_gc(self.gc).map(|c| c.check());
    }
}

impl Presenter {
    /// Whether the window still has `extent`.
    fn fits(&self, extent: vk::Extent2D) -> Result<bool, vk::Result> {
        match self {
            // A Wayland surface takes the size of the buffers attached to it.
            Presenter::Headless | Presenter::Wayland(_) => Ok(true),
            Presenter::X11(x) => x.fits(extent),
        }
    }
}

/// Room for the swapchain object from the application's allocator (the host memory this ICD
/// allocates for it, as Vulkan asks), or from Rust's when it gave none; NULL when it failed.
unsafe fn allocate(allocator: *const vk::AllocationCallbacks<'_>) -> *mut Swapchain {
    let layout = std::alloc::Layout::new::<Swapchain>();
    match allocator
        .as_ref()
        .and_then(|a| a.pfn_allocation.map(|f| (a, f)))
    {
        Some((a, f)) => f(
            a.p_user_data,
            layout.size(),
            layout.align(),
            vk::SystemAllocationScope::OBJECT,
        ) as *mut Swapchain,
        None => std::alloc::alloc(layout) as *mut Swapchain,
    }
}

/// Gives the swapchain object's room back to the allocator it came from.
unsafe fn release(allocator: *const vk::AllocationCallbacks<'_>, p: *mut Swapchain) {
    match allocator.as_ref().and_then(|a| a.pfn_free.map(|f| (a, f))) {
        Some((a, f)) => f(a.p_user_data, p as *mut c_void),
        None => std::alloc::dealloc(p as *mut u8, std::alloc::Layout::new::<Swapchain>()),
    }
}

pub unsafe extern "system" fn vkCreateSwapchainKHR(
    device: vk::Device,
    info: *const vk::SwapchainCreateInfoKHR<'_>,
    allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::SwapchainKHR,
) -> vk::Result {
    let i = &*info;
    let Some(window) = surface::window(i.surface) else {
        return vk::Result::ERROR_SURFACE_LOST_KHR;
    };
    let formats = match surface::formats(i.surface) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !formats.iter().any(|f| f.format == i.image_format) {
        log!(
            error,
            "airlock: vkCreateSwapchainKHR: format {:?} is not one the surface offers",
            i.image_format
        );
        return vk::Result::ERROR_INITIALIZATION_FAILED;
    }
    if i.old_swapchain != vk::SwapchainKHR::null() {
        get(i.old_swapchain).state.lock().retired = true;
    }
    // Before anything is made on the server, so that a failing allocator leaves nothing.
    let room = allocate(allocator);
    if room.is_null() {
        return vk::Result::ERROR_OUT_OF_HOST_MEMORY;
    }
    let count = i.min_image_count.max(surface::MIN_IMAGES);
    let mut images = Vec::with_capacity(count as usize);
    for _ in 0..count {
        match make_image(device, i) {
            Ok(image) => images.push(image),
            Err(r) => {
                for image in &images {
                    free_image(device, image);
                }
                release(allocator, room);
                return r;
            }
        }
    }
    let presenter = match window {
        Window::Headless => Ok(Presenter::Headless),
        Window::X11 { connection, window } => {
            X11::new(connection, window, &images).map(|x| Presenter::X11(Box::new(x)))
        }
        Window::Wayland { display, surface } => wayland::Wayland::new(display, surface, &images, i)
            .map(|w| Presenter::Wayland(Box::new(w))),
    };
    let presenter = match presenter {
        Ok(p) => p,
        Err(r) => {
            for image in &images {
                free_image(device, image);
            }
            release(allocator, room);
            return r;
        }
    };
    let mut queue = vk::Queue::null();
    crate::queue::vkGetDeviceQueue(device, 0, 0, &mut queue);
    let uses = vec![Use::Free; images.len()];
    room.write(Swapchain {
        device: device.as_raw(),
        queue,
        extent: i.image_extent,
        images,
        presenter,
        state: Mutex::new(State {
            uses,
            retired: false,
        }),
        freed: Condvar::new(),
    });
    *out = vk::SwapchainKHR::from_raw(room as u64);
    vk::Result::SUCCESS
}

pub unsafe extern "system" fn vkDestroySwapchainKHR(
    device: vk::Device,
    swapchain: vk::SwapchainKHR,
    allocator: *const vk::AllocationCallbacks<'_>,
) {
    if swapchain == vk::SwapchainKHR::null() {
        return;
    }
    let p = swapchain.as_raw() as *mut Swapchain;
    let s = p.read();
    match &s.presenter {
        Presenter::X11(x) => x.close(),
        Presenter::Wayland(w) => w.close(),
        Presenter::Headless => {}
    }
    for image in &s.images {
        free_image(device, image);
    }
    drop(s);
    release(allocator, p);
}

pub unsafe extern "system" fn vkGetSwapchainImagesKHR(
    _device: vk::Device,
    swapchain: vk::SwapchainKHR,
    count: *mut u32,
    out: *mut vk::Image,
) -> vk::Result {
    let images: Vec<vk::Image> = get(swapchain).images.iter().map(|i| i.image).collect();
    fill(&images, count, out)
}

pub unsafe extern "system" fn vkAcquireNextImageKHR(
    _device: vk::Device,
    swapchain: vk::SwapchainKHR,
    timeout: u64,
    semaphore: vk::Semaphore,
    fence: vk::Fence,
    index: *mut u32,
) -> vk::Result {
    crate::stats::for_frames(|| acquire(get(swapchain), timeout, semaphore, fence, index))
}

pub unsafe extern "system" fn vkAcquireNextImage2KHR(
    _device: vk::Device,
    info: *const vk::AcquireNextImageInfoKHR<'_>,
    index: *mut u32,
) -> vk::Result {
    let i = &*info;
    crate::stats::for_frames(|| acquire(get(i.swapchain), i.timeout, i.semaphore, i.fence, index))
}

unsafe fn acquire(
    s: &Swapchain,
    timeout: u64,
    semaphore: vk::Semaphore,
    fence: vk::Fence,
    index: *mut u32,
) -> vk::Result {
    let deadline = Instant::now().checked_add(Duration::from_nanos(timeout));
    let mut st = s.state.lock();
    let i = loop {
        if st.retired {
            return vk::Result::ERROR_OUT_OF_DATE_KHR;
        }
        if let Some(i) = st.uses.iter().position(|u| *u == Use::Free) {
            st.uses[i] = Use::Acquired;
            break i;
        }
        // A Wayland compositor gives images back by events on our queue: read them.
        if let Presenter::Wayland(w) = &s.presenter {
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(1),
            };
            let released = parking_lot::MutexGuard::unlocked(&mut st, || w.released(wait));
            match released {
                Ok(released) => {
                    for k in released {
                        st.uses[k] = Use::Free;
                    }
                }
                Err(r) => return r,
            }
            if st.uses.contains(&Use::Free) {
                continue;
            }
            if timeout == 0 {
                return vk::Result::NOT_READY;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return vk::Result::TIMEOUT;
            }
            continue;
        }
        if timeout == 0 {
            return vk::Result::NOT_READY;
        }
        match deadline {
            Some(d) => {
                if s.freed.wait_until(&mut st, d).timed_out() {
                    return vk::Result::TIMEOUT;
                }
            }
            None => s.freed.wait(&mut st),
        }
    };
    drop(st);
    // The image is free now: the application's semaphore and fence are signalled by the
    // server's queue, after what the application submitted before.
    if semaphore != vk::Semaphore::null() || fence != vk::Fence::null() {
        let semaphores = [semaphore];
        let submit = vk::SubmitInfo::default().signal_semaphores(&semaphores);
        let n = (semaphore != vk::Semaphore::null()) as u64;
        // Through the queue family, which counts the fence's submission.
        let r = crate::queue::vkQueueSubmit(s.queue, n as u32, &submit, fence);
        if r != vk::Result::SUCCESS {
            s.state.lock().uses[i] = Use::Free;
            return r;
        }
    }
    *index = i as u32;
    match s.presenter.fits(s.extent) {
        Ok(true) => vk::Result::SUCCESS,
        Ok(false) => vk::Result::SUBOPTIMAL_KHR,
        Err(r) => r,
    }
}

pub unsafe extern "system" fn vkQueuePresentKHR(
    queue: vk::Queue,
    info: *const vk::PresentInfoKHR<'_>,
) -> vk::Result {
    let p = &*info;
    let swapchains = app_slice(p.p_swapchains, p.swapchain_count);
    let indices = app_slice(p.p_image_indices, p.swapchain_count);
    let mut waits = app_slice(p.p_wait_semaphores, p.wait_semaphore_count);
    let mut worst = vk::Result::SUCCESS;
    for (k, (sc, &i)) in swapchains.iter().zip(indices).enumerate() {
        // The present's semaphores are waited for once, by the first image's submission.
        let r = crate::stats::for_frames(|| present(queue, get(*sc), i as usize, waits));
        waits = &[];
        if !p.p_results.is_null() {
            *p.p_results.add(k) = r;
        }
        // The worst outcome is the call's: errors first, then suboptimal.
        let error = r.as_raw() < 0 && (worst.as_raw() >= 0 || r == vk::Result::ERROR_DEVICE_LOST);
        if error || (r == vk::Result::SUBOPTIMAL_KHR && worst == vk::Result::SUCCESS) {
            worst = r;
        }
    }
    worst
}

/// Presents image `index` of `s` once the server has waited for `waits` and drawn it.
unsafe fn present(
    queue: vk::Queue,
    s: &Swapchain,
    index: usize,
    waits: &[vk::Semaphore],
) -> vk::Result {
    let Some(image) = s.images.get(index) else {
        return vk::Result::ERROR_OUT_OF_DATE_KHR;
    };
    s.state.lock().uses[index] = Use::Presenting;
    let r = shown(queue, s, index, image, waits);
    {
        let mut st = s.state.lock();
        match &r {
            Ok(freed) => {
                for &k in freed {
                    st.uses[k] = Use::Free;
                }
            }
            Err(_) => st.uses[index] = Use::Free,
        }
    }
    s.freed.notify_all();
    match r {
        Ok(_) => match s.presenter.fits(s.extent) {
            Ok(true) => vk::Result::SUCCESS,
            Ok(false) => vk::Result::SUBOPTIMAL_KHR,
            Err(r) => r,
        },
        Err(r) => r,
    }
}

unsafe fn shown(
    queue: vk::Queue,
    s: &Swapchain,
    index: usize,
    image: &Image,
    waits: &[vk::Semaphore],
) -> Result<Vec<usize>, vk::Result> {
    let device = s.device;
    let fence = image.rendered;
    let check = |r: u64| match result(r) {
        vk::Result::SUCCESS => Ok(()),
        r => Err(r),
    };
    let fences = [fence];
    let dev = vk::Device::from_raw(device);
    check(crate::queue::vkResetFences(dev, 1, fences.as_ptr()).as_raw() as i64 as u64)?;
    let stages = vec![vk::PipelineStageFlags::ALL_COMMANDS; waits.len()];
    let submit = vk::SubmitInfo::default()
        .wait_semaphores(waits)
        .wait_dst_stage_mask(&stages);
    let submitted = crate::queue::vkQueueSubmit(queue, 1, &submit, fence);
    check(submitted.as_raw() as i64 as u64)?;
    let waited = crate::queue::vkWaitForFences(dev, 1, fences.as_ptr(), vk::TRUE, u64::MAX);
    check(waited.as_raw() as i64 as u64)?;
    // The images free again: this one, once X11 has read it; those the compositor released.
    let freed = match &s.presenter {
        Presenter::Headless => vec![index],
        Presenter::X11(x) => x.present(index, image, s.extent).map(|()| vec![index])?,
        Presenter::Wayland(w) => w.present(index, s.extent)?,
    };
    crate::stats::presented();
    Ok(freed)
}

/// `vkBindImageMemory2`: a binding to a swapchain's image (`VkBindImageMemorySwapchainInfoKHR`)
/// binds that image's memory; the swapchain structure itself never travels.
pub unsafe extern "system" fn vkBindImageMemory2(
    device: vk::Device,
    count: u32,
    infos: *const vk::BindImageMemoryInfo<'_>,
) -> vk::Result {
    let mut copies: Vec<vk::BindImageMemoryInfo<'_>> = app_slice(infos, count).to_vec();
    for b in &mut copies {
        let mut p = b.p_next as *const vk::BaseInStructure<'_>;
        while let Some(node) = p.as_ref() {
            if node.s_type == vk::StructureType::BIND_IMAGE_MEMORY_SWAPCHAIN_INFO_KHR {
                let sw = &*(p as *const vk::BindImageMemorySwapchainInfoKHR<'_>);
                if let Some(image) = get(sw.swapchain).images.get(sw.image_index as usize) {
                    b.memory = image.memory;
                    b.memory_offset = 0;
                }
            }
            p = node.p_next;
        }
    }
    let p = if infos.is_null() {
        0
    } else {
        copies.as_ptr() as u64
    };
    result(call(
        &C_vkBindImageMemory2,
        &[device.as_raw(), count as u64, p],
    ))
}
