//! Frames presented to a window (X11 through xcb or Xlib), to a headless surface, or drawn
//! offscreen the same way for a driver without surfaces: each frame clears and draws moving
//! rectangles, and the last one is read back from the image it was drawn in and, for a
//! window, from the window itself, both checked against the CPU's picture.
//!
//! A resize (`resize_at`) has the window change size while frames are in flight: the program
//! must then see `VK_SUBOPTIMAL_KHR` or `VK_ERROR_OUT_OF_DATE_KHR`, make a new swapchain at the
//! new size and go on.

use crate::context::{Context, Options, TIMEOUT_NS};
use crate::error::{ensure, Check, Error, Result};
use crate::memory::{Access, Buffer, Image, Location};
use crate::rect::{self, Rect};
use crate::Report;
use ash::{ext, khr, vk};
use std::ffi::{c_void, CStr};
use std::time::Instant;
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::xcb_ffi::XCBConnection;

/// The format every surface offers and the frames use.
pub const FORMAT: vk::Format = vk::Format::B8G8R8A8_UNORM;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// No surface: the frames go to images of the program's own.
    Offscreen,
    Headless,
    Xcb,
    Xlib,
    /// A fullscreen xdg-shell toplevel on the compositor `WAYLAND_DISPLAY` names.
    Wayland,
}

impl Platform {
    pub fn parse(s: &str) -> Option<Platform> {
        Some(match s {
            "offscreen" => Platform::Offscreen,
            "headless" => Platform::Headless,
            "xcb" => Platform::Xcb,
            "xlib" => Platform::Xlib,
            "wayland" => Platform::Wayland,
            _ => return None,
        })
    }

    fn extension(self) -> Option<&'static CStr> {
        match self {
            Platform::Offscreen => None,
            Platform::Headless => Some(ext::headless_surface::NAME),
            Platform::Xcb => Some(khr::xcb_surface::NAME),
            Platform::Xlib => Some(khr::xlib_surface::NAME),
            Platform::Wayland => Some(khr::wayland_surface::NAME),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub platform: Platform,
    pub frames: u32,
    /// The window's (or the images') width and height.
    pub size: u32,
    /// Resize the window to `.1` before frame `.0`.
    pub resize: Option<(u32, u32)>,
    /// Destroy the window before this frame: the driver must then answer with an error
    /// (`VK_ERROR_OUT_OF_DATE_KHR`, `VK_ERROR_SURFACE_LOST_KHR`), not crash or hang.
    pub close_at: Option<u32>,
    pub validate: bool,
}

/// What the run measured beside its report.
pub struct Outcome {
    pub report: Report,
    pub frames_per_second: f64,
}

/// Frame `k`'s background and rectangles in an image `size` square.
fn frame(k: u32, size: u32) -> ([u8; 4], Vec<Rect>) {
    let clear = [(k * 7 % 256) as u8, 40, (255 - k * 3 % 256) as u8, 255];
    let step = size / 4;
    let x = k * 5 % (size - step);
    let y = k * 3 % (size - step);
    let rects = vec![
        Rect::pixels(size, [x, y, x + step, y + step], [250, 200, 20, 255], 0.5),
        Rect::pixels(
            size,
            [size - x - step, y / 2, size - x, y / 2 + step],
            [20, 160, (k % 256) as u8, 255],
            0.5,
        ),
    ];
    (clear, rects)
}

mod wayland;

/// The program's window.
enum Window {
    X11(X11Window),
    Wayland(wayland::WaylandWindow),
}

impl Window {
    fn resize(&self, size: u32) -> Result<()> {
        match self {
            Window::X11(w) => w.resize(size),
            // A Wayland surface takes its buffers' size: nothing for the driver to notice.
            Window::Wayland(_) => Err(Error::Unsupported(
                "resizing a Wayland window: its swapchain decides its size".into(),
            )),
        }
    }

    fn close(&self) -> Result<()> {
        match self {
            Window::X11(w) => w.close(),
            // Vulkan requires a Wayland surface's wl_surface to outlive it.
            Window::Wayland(_) => Err(Error::Unsupported(
                "destroying a Wayland window under its swapchain is invalid usage".into(),
            )),
        }
    }

    fn pixels(&self, size: u32) -> Result<Vec<[u8; 4]>> {
        match self {
            Window::X11(w) => w.pixels(size),
            Window::Wayland(w) => w.pixels(size),
        }
    }
}

/// An X11 window of the program's, on a connection of its own (xcb), or on an Xlib display's.
struct X11Window {
    conn: XCBConnection,
    window: u32,
    /// The Xlib display, for an Xlib surface; closed last.
    display: Option<(*mut c_void, libloading::Library)>,
}

type XOpenDisplay = unsafe extern "C" fn(*const i8) -> *mut c_void;
type XCloseDisplay = unsafe extern "C" fn(*mut c_void) -> i32;
type XGetXCBConnection = unsafe extern "C" fn(*mut c_void) -> *mut c_void;

fn x11_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unsupported(format!("X11: {what}: {e}"))
}

impl X11Window {
    fn open(xlib: bool, size: u32) -> Result<X11Window> {
        let (conn, screen, display) = if xlib {
            // SAFETY: libX11 and libX11-xcb's documented functions; the display stays open
            // until the window is dropped.
            unsafe {
                let x11 =
                    libloading::Library::new("libX11.so.6").map_err(|e| x11_error("libX11", e))?;
                let x11_xcb = libloading::Library::new("libX11-xcb.so.1")
                    .map_err(|e| x11_error("libX11-xcb", e))?;
                let open: XOpenDisplay = *x11
                    .get(b"XOpenDisplay\0")
                    .map_err(|e| x11_error("XOpenDisplay", e))?;
                let get: XGetXCBConnection = *x11_xcb
                    .get(b"XGetXCBConnection\0")
                    .map_err(|e| x11_error("XGetXCBConnection", e))?;
                let dpy = open(std::ptr::null());
                if dpy.is_null() {
                    return Err(x11_error("XOpenDisplay", "no display"));
                }
                std::mem::forget(x11_xcb);
                let conn = XCBConnection::from_raw_xcb_connection(get(dpy), false)
                    .map_err(|e| x11_error("the display's connection", e))?;
                (conn, 0, Some((dpy, x11)))
            }
        } else {
            let (conn, screen) =
                XCBConnection::connect(None).map_err(|e| x11_error("connect", e))?;
            (conn, screen, None)
        };
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id().map_err(|e| x11_error("id", e))?;
        let aux = xproto::CreateWindowAux::new().background_pixel(0);
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            size as u16,
            size as u16,
            0,
            xproto::WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &aux,
        )
        .map_err(|e| x11_error("CreateWindow", e))?
        .check()
        .map_err(|e| x11_error("CreateWindow", e))?;
        conn.map_window(window)
            .map_err(|e| x11_error("MapWindow", e))?
            .check()
            .map_err(|e| x11_error("MapWindow", e))?;
        Ok(X11Window {
            conn,
            window,
            display,
        })
    }

    fn resize(&self, size: u32) -> Result<()> {
        let aux = xproto::ConfigureWindowAux::new().width(size).height(size);
        self.conn
            .configure_window(self.window, &aux)
            .map_err(|e| x11_error("ConfigureWindow", e))?
            .check()
            .map_err(|e| x11_error("ConfigureWindow", e))
    }

    fn close(&self) -> Result<()> {
        self.conn
            .destroy_window(self.window)
            .map_err(|e| x11_error("DestroyWindow", e))?
            .check()
            .map_err(|e| x11_error("DestroyWindow", e))
    }

    /// What the window shows, as RGBA.
    fn pixels(&self, size: u32) -> Result<Vec<[u8; 4]>> {
        let image = self
            .conn
            .get_image(
                xproto::ImageFormat::Z_PIXMAP,
                self.window,
                0,
                0,
                size as u16,
                size as u16,
                !0,
            )
            .map_err(|e| x11_error("GetImage", e))?
            .reply()
            .map_err(|e| x11_error("GetImage", e))?;
        ensure(image.data.len() == (size * size * 4) as usize, || {
            format!(
                "GetImage: {} bytes for {size}x{size} at depth {}",
                image.data.len(),
                image.depth
            )
        })?;
        // 32 bits a pixel, blue first (Xvfb's and every little-endian TrueColor server's).
        Ok(image
            .data
            .chunks(4)
            .map(|p| [p[2], p[1], p[0], 255])
            .collect())
    }
}

impl Drop for X11Window {
    fn drop(&mut self) {
        let _ = self.conn.destroy_window(self.window).map(|c| c.check());
        if let Some((dpy, lib)) = self.display.take() {
            // SAFETY: the display this window opened; nothing uses its connection any more.
            unsafe {
                if let Ok(close) = lib.get::<XCloseDisplay>(b"XCloseDisplay\0") {
                    close(dpy);
                }
            }
        }
    }
}

/// The images frames go to: a swapchain's, or the program's own.
struct Target {
    swapchain: vk::SwapchainKHR,
    images: Vec<Image>,
    extent: u32,
}

struct Presenter<'a> {
    ctx: &'a Context,
    surface_fn: Option<khr::surface::Instance>,
    swapchain_fn: Option<khr::swapchain::Device>,
    surface: vk::SurfaceKHR,
}

impl Presenter<'_> {
    /// A swapchain (replacing `old`) at the surface's size, or `size` where it has none; or
    /// offscreen images of `size`.
    fn target(&self, size: u32, old: vk::SwapchainKHR) -> Result<Target> {
        let ctx = self.ctx;
        let (Some(surface_fn), Some(swapchain_fn)) = (&self.surface_fn, &self.swapchain_fn) else {
            let mut images = Vec::new();
            for _ in 0..3 {
                images.push(ctx.image(
                    vk::Extent2D {
                        width: size,
                        height: size,
                    },
                    FORMAT,
                    vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
                    vk::SampleCountFlags::TYPE_1,
                )?);
            }
            return Ok(Target {
                swapchain: vk::SwapchainKHR::null(),
                images,
                extent: size,
            });
        };
        let pd = ctx.physical_device;
        let supported = unsafe {
            surface_fn.get_physical_device_surface_support(pd, ctx.queue_family, self.surface)
        }
        .check("vkGetPhysicalDeviceSurfaceSupportKHR")?;
        ensure(supported, || "the queue family cannot present".into())?;
        let caps = unsafe { surface_fn.get_physical_device_surface_capabilities(pd, self.surface) }
            .check("vkGetPhysicalDeviceSurfaceCapabilitiesKHR")?;
        let formats = unsafe { surface_fn.get_physical_device_surface_formats(pd, self.surface) }
            .check("vkGetPhysicalDeviceSurfaceFormatsKHR")?;
        ensure(formats.iter().any(|f| f.format == FORMAT), || {
            format!("the surface does not offer {FORMAT:?}: {formats:?}")
        })?;
        let modes =
            unsafe { surface_fn.get_physical_device_surface_present_modes(pd, self.surface) }
                .check("vkGetPhysicalDeviceSurfacePresentModesKHR")?;
        ensure(modes.contains(&vk::PresentModeKHR::FIFO), || {
            format!("no FIFO present mode: {modes:?}")
        })?;
        let extent = if caps.current_extent.width == u32::MAX {
            vk::Extent2D {
                width: size,
                height: size,
            }
        } else {
            caps.current_extent
        };
        ensure(extent.width == extent.height, || {
            format!(
                "the window is {}x{}, not square",
                extent.width, extent.height
            )
        })?;
        let info = vk::SwapchainCreateInfoKHR::default()
            .surface(self.surface)
            .min_image_count(caps.min_image_count.max(2))
            .image_format(FORMAT)
            .image_color_space(vk::ColorSpaceKHR::SRGB_NONLINEAR)
            .image_extent(extent)
            .image_array_layers(1)
            .image_usage(vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC)
            .image_sharing_mode(vk::SharingMode::EXCLUSIVE)
            .pre_transform(vk::SurfaceTransformFlagsKHR::IDENTITY)
            .composite_alpha(vk::CompositeAlphaFlagsKHR::OPAQUE)
            .present_mode(vk::PresentModeKHR::FIFO)
            .clipped(true)
            .old_swapchain(old);
        let swapchain =
            unsafe { swapchain_fn.create_swapchain(&info, None) }.check("vkCreateSwapchainKHR")?;
        let handles = unsafe { swapchain_fn.get_swapchain_images(swapchain) }
            .check("vkGetSwapchainImagesKHR")?;
        let mut images = Vec::new();
        for handle in handles {
            let mut image = Image {
                handle,
                view: vk::ImageView::null(),
                format: FORMAT,
                extent,
                aspect: vk::ImageAspectFlags::COLOR,
            };
            let view_info = vk::ImageViewCreateInfo::default()
                .image(handle)
                .view_type(vk::ImageViewType::TYPE_2D)
                .format(FORMAT)
                .subresource_range(image.subresource_range());
            image.view = unsafe { ctx.device.create_image_view(&view_info, None) }
                .check("vkCreateImageView")?;
            images.push(image);
        }
        Ok(Target {
            swapchain,
            images,
            extent: extent.width,
        })
    }

    fn drop_target(&self, t: &Target) {
        unsafe {
            // Nothing useful to do about a lost device here.
            let _ = self.ctx.device.device_wait_idle();
            if let Some(f) = &self.swapchain_fn {
                for i in &t.images {
                    self.ctx.device.destroy_image_view(i.view, None);
                }
                f.destroy_swapchain(t.swapchain, None);
            }
        }
    }
}

/// Draws frame `k` into `image` (square), and copies it into `readback` when asked.
fn record(
    ctx: &Context,
    cmd: vk::CommandBuffer,
    pipeline: (vk::Pipeline, vk::PipelineLayout),
    image: &Image,
    k: u32,
    readback: Option<&Buffer>,
    present: bool,
) {
    let (clear, rects) = frame(k, image.extent.width);
    ctx.image_barrier(
        cmd,
        image,
        (vk::ImageLayout::UNDEFINED, Access::NONE),
        (
            vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
            Access::COLOR_WRITE,
        ),
    );
    let color = [vk::RenderingAttachmentInfo::default()
        .image_view(image.view)
        .image_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
        .load_op(vk::AttachmentLoadOp::CLEAR)
        .store_op(vk::AttachmentStoreOp::STORE)
        .clear_value(vk::ClearValue {
            color: vk::ClearColorValue {
                float32: clear.map(|c| f32::from(c) / 255.0),
            },
        })];
    let info = vk::RenderingInfo::default()
        .render_area(image.extent.into())
        .layer_count(1)
        .color_attachments(&color);
    unsafe {
        ctx.device.cmd_begin_rendering(cmd, &info);
        ctx.device
            .cmd_bind_pipeline(cmd, vk::PipelineBindPoint::GRAPHICS, pipeline.0);
    }
    ctx.set_viewport(cmd, image.extent);
    for r in &rects {
        unsafe {
            ctx.device.cmd_push_constants(
                cmd,
                pipeline.1,
                vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT,
                0,
                bytemuck::bytes_of(r),
            );
            ctx.device.cmd_draw(cmd, 6, 1, 0, 0);
        }
    }
    unsafe { ctx.device.cmd_end_rendering(cmd) };
    let mut layout = (
        vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
        Access::COLOR_WRITE,
    );
    if let Some(buffer) = readback {
        ctx.image_barrier(
            cmd,
            image,
            layout,
            (vk::ImageLayout::TRANSFER_SRC_OPTIMAL, Access::TRANSFER_READ),
        );
        ctx.copy_image_to_host(cmd, image, buffer);
        layout = (vk::ImageLayout::TRANSFER_SRC_OPTIMAL, Access::TRANSFER_READ);
    }
    if present {
        ctx.image_barrier(
            cmd,
            image,
            layout,
            (
                vk::ImageLayout::PRESENT_SRC_KHR,
                Access(
                    vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                    vk::AccessFlags::empty(),
                ),
            ),
        );
    }
}

/// Runs the frames; the report holds the last frame's size and pixels (read back from its
/// image, and for a window from the window too), and how often the swapchain was remade.
pub fn run(run: Run) -> Result<Outcome> {
    let ctx = Context::new(Options {
        validate: run.validate,
        surface: run.platform.extension(),
    })?;
    let window = match run.platform {
        Platform::Xcb | Platform::Xlib => Some(Window::X11(X11Window::open(
            run.platform == Platform::Xlib,
            run.size,
        )?)),
        Platform::Wayland => Some(Window::Wayland(wayland::WaylandWindow::open(run.size)?)),
        _ => None,
    };
    let surface = match (run.platform, &window) {
        (Platform::Headless, _) => {
            let f = ext::headless_surface::Instance::new(&ctx.entry, &ctx.instance);
            let info = vk::HeadlessSurfaceCreateInfoEXT::default();
            unsafe { f.create_headless_surface(&info, None) }.check("vkCreateHeadlessSurfaceEXT")?
        }
        (Platform::Xcb, Some(Window::X11(w))) => {
            let f = khr::xcb_surface::Instance::new(&ctx.entry, &ctx.instance);
            let info = vk::XcbSurfaceCreateInfoKHR::default()
                .connection(w.conn.get_raw_xcb_connection())
                .window(w.window);
            unsafe { f.create_xcb_surface(&info, None) }.check("vkCreateXcbSurfaceKHR")?
        }
        (Platform::Xlib, Some(Window::X11(w))) => {
            let f = khr::xlib_surface::Instance::new(&ctx.entry, &ctx.instance);
            let dpy = w.display.as_ref().map_or(std::ptr::null_mut(), |d| d.0);
            let info = vk::XlibSurfaceCreateInfoKHR::default()
                .dpy(dpy.cast())
                .window(w.window.into());
            unsafe { f.create_xlib_surface(&info, None) }.check("vkCreateXlibSurfaceKHR")?
        }
        (Platform::Wayland, Some(Window::Wayland(w))) => {
            let f = khr::wayland_surface::Instance::new(&ctx.entry, &ctx.instance);
            let (display, surface) = w.raw();
            let info = vk::WaylandSurfaceCreateInfoKHR::default()
                .display(display)
                .surface(surface);
            unsafe { f.create_wayland_surface(&info, None) }.check("vkCreateWaylandSurfaceKHR")?
        }
        _ => vk::SurfaceKHR::null(),
    };
    let presenting = run.platform != Platform::Offscreen;
    let p = Presenter {
        ctx: &ctx,
        surface_fn: presenting.then(|| khr::surface::Instance::new(&ctx.entry, &ctx.instance)),
        swapchain_fn: presenting.then(|| khr::swapchain::Device::new(&ctx.instance, &ctx.device)),
        surface,
    };
    let result = frames(&ctx, &p, &run, window.as_ref());
    if let Some(f) = &p.surface_fn {
        unsafe {
            let _ = ctx.device.device_wait_idle();
            f.destroy_surface(surface, None);
        }
    }
    drop(ctx);
    drop(window);
    result
}

fn frames(ctx: &Context, p: &Presenter, run: &Run, window: Option<&Window>) -> Result<Outcome> {
    let pipeline = rect::pipeline_for(ctx, FORMAT, false)?;
    let pool = ctx.command_pool()?;
    const IN_FLIGHT: usize = 2;
    let cmds =
        ctx.allocate_command_buffers(pool, vk::CommandBufferLevel::PRIMARY, IN_FLIGHT as u32)?;
    let semaphore = || -> Result<vk::Semaphore> {
        unsafe {
            ctx.device
                .create_semaphore(&vk::SemaphoreCreateInfo::default(), None)
        }
        .check("vkCreateSemaphore")
        .map(|s| ctx.own(s))
    };
    let mut acquired = Vec::new();
    let mut rendered = Vec::new();
    let mut fences = Vec::new();
    for _ in 0..IN_FLIGHT {
        acquired.push(semaphore()?);
        rendered.push(semaphore()?);
        fences.push(ctx.fence(true)?);
    }
    let mut size = run.size;
    let mut target = p.target(size, vk::SwapchainKHR::null())?;
    let mut remade = 0u64;
    // The first result a resize brought, and at which frame.
    let mut noticed: Option<(vk::Result, u32)> = None;
    let mut readback = None;
    let start = Instant::now();
    let mut k = 0;
    let mut next_image = 0usize;
    // The window was destroyed before frame `.0`; the driver's answer, at which frame.
    let mut closed: Option<u32> = None;
    let mut lost: Option<(vk::Result, u32)> = None;
    let gone = |e: vk::Result| {
        e == vk::Result::ERROR_OUT_OF_DATE_KHR || e == vk::Result::ERROR_SURFACE_LOST_KHR
    };
    while k < run.frames {
        if let (Some((at, to)), Some(w)) = (run.resize, window) {
            if k == at && size != to {
                w.resize(to)?;
                size = to;
            }
        }
        if let (Some(at), Some(w)) = (run.close_at, window) {
            if k == at && closed.is_none() {
                w.close()?;
                closed = Some(k);
            }
        }
        let slot = k as usize % IN_FLIGHT;
        let fence = fences[slot];
        ctx.wait_fence(fence)?;
        let index = match &p.swapchain_fn {
            Some(f) => {
                match unsafe {
                    f.acquire_next_image(
                        target.swapchain,
                        TIMEOUT_NS,
                        acquired[slot],
                        vk::Fence::null(),
                    )
                } {
                    Ok((i, suboptimal)) => {
                        if suboptimal {
                            noticed.get_or_insert((vk::Result::SUBOPTIMAL_KHR, k));
                        }
                        i as usize
                    }
                    Err(e) if closed.is_some() && gone(e) => {
                        lost = Some((e, k));
                        break;
                    }
                    Err(vk::Result::ERROR_OUT_OF_DATE_KHR) => {
                        noticed.get_or_insert((vk::Result::ERROR_OUT_OF_DATE_KHR, k));
                        let old = target;
                        target = p.target(size, old.swapchain)?;
                        p.drop_target(&old);
                        remade += 1;
                        continue;
                    }
                    Err(e) => {
                        return Err(Error::Vulkan {
                            call: "vkAcquireNextImageKHR",
                            result: e,
                        })
                    }
                }
            }
            None => {
                next_image = (next_image + 1) % target.images.len();
                next_image
            }
        };
        let last = k + 1 == run.frames;
        if last {
            let bytes = u64::from(target.extent * target.extent * 4);
            readback =
                Some(ctx.buffer(bytes, vk::BufferUsageFlags::TRANSFER_DST, Location::Host)?);
        }
        unsafe { ctx.device.reset_fences(&[fence]) }.check("vkResetFences")?;
        let cmd = cmds[slot];
        unsafe {
            ctx.device
                .reset_command_buffer(cmd, vk::CommandBufferResetFlags::empty())
        }
        .check("vkResetCommandBuffer")?;
        ctx.begin(cmd, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)?;
        record(
            ctx,
            cmd,
            pipeline,
            &target.images[index],
            k,
            readback.as_ref().filter(|_| last),
            p.swapchain_fn.is_some(),
        );
        ctx.end(cmd)?;
        let buffers = [cmd];
        let stages = [vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT];
        let waits = [acquired[slot]];
        let signals = [rendered[slot]];
        let mut submit = vk::SubmitInfo::default().command_buffers(&buffers);
        if p.swapchain_fn.is_some() {
            submit = submit
                .wait_semaphores(&waits)
                .wait_dst_stage_mask(&stages)
                .signal_semaphores(&signals);
        }
        ctx.submit(&[submit], fence)?;
        k += 1;
        if let Some(f) = &p.swapchain_fn {
            let swapchains = [target.swapchain];
            let indices = [index as u32];
            let info = vk::PresentInfoKHR::default()
                .wait_semaphores(&signals)
                .swapchains(&swapchains)
                .image_indices(&indices);
            let queue = ctx.queue();
            let r = unsafe { f.queue_present(queue, &info) };
            let stale = match r {
                Ok(false) => false,
                Ok(true) => {
                    noticed.get_or_insert((vk::Result::SUBOPTIMAL_KHR, k - 1));
                    true
                }
                Err(e) if closed.is_some() && gone(e) => {
                    lost = Some((e, k - 1));
                    break;
                }
                Err(vk::Result::ERROR_OUT_OF_DATE_KHR) => {
                    noticed.get_or_insert((vk::Result::ERROR_OUT_OF_DATE_KHR, k - 1));
                    true
                }
                Err(e) => {
                    return Err(Error::Vulkan {
                        call: "vkQueuePresentKHR",
                        result: e,
                    })
                }
            };
            if stale && !last {
                let old = target;
                target = p.target(size, old.swapchain)?;
                p.drop_target(&old);
                remade += 1;
            }
        }
    }
    ctx.wait_idle()?;
    let seconds = start.elapsed().as_secs_f64();
    if let Some(at) = closed {
        let Some((result, frame)) = lost else {
            return Err(Error::Mismatch(format!(
                "the window was destroyed before frame {at}: no VK_ERROR_OUT_OF_DATE_KHR or \
                 VK_ERROR_SURFACE_LOST_KHR by frame {}",
                run.frames
            )));
        };
        eprintln!(
            "airlock-present: window destroyed before frame {at}: {result:?} at frame {frame}"
        );
        p.drop_target(&target);
        let mut report = Report::new();
        report.i32("closed", result.as_raw());
        return Ok(Outcome {
            report,
            frames_per_second: f64::from(k) / seconds,
        });
    }
    let extent = target.extent;
    let (clear, rects) = frame(run.frames - 1, extent);
    let expected = rect::expected_pixels(extent, clear, &rects, false);
    let drawn: Vec<[u8; 4]> = readback
        .as_ref()
        .map(|b| b.read::<[u8; 4]>())
        .unwrap_or_default()
        .into_iter()
        .map(|[b, g, r, a]| [r, g, b, a])
        .collect();
    let mismatch = |what: &str, got: &[[u8; 4]]| -> Result<()> {
        match (0..expected.len()).find(|&i| got.get(i) != expected.get(i)) {
            None => Ok(()),
            Some(i) => Err(Error::Mismatch(format!(
                "{what}: pixel ({}, {}) is {:?}, the CPU drew {:?}",
                i as u32 % extent,
                i as u32 / extent,
                got.get(i),
                expected[i]
            ))),
        }
    };
    mismatch("the last frame's image", &drawn)?;
    let mut report = Report::new();
    report.u64("size", extent.into()).values("rgba8", &drawn);
    if let Some(w) = window {
        // The driver may hand the last image to the X server after vkQueuePresentKHR returns
        // (a present thread): wait a little for it to show.
        let mut shown = w.pixels(extent)?;
        for _ in 0..20 {
            if mismatch("the window", &shown).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            shown = w.pixels(extent)?;
        }
        mismatch("the window", &shown)?;
        report.values("window_rgba8", &shown);
    }
    if let Some((at, _)) = run.resize {
        let Some((result, frame)) = noticed else {
            return Err(Error::Mismatch(format!(
                "resized before frame {at}: no VK_SUBOPTIMAL_KHR or VK_ERROR_OUT_OF_DATE_KHR by frame {}",
                run.frames
            )));
        };
        ensure(remade >= 1 && extent == run.resize.unwrap().1, || {
            format!(
                "resized: the swapchain was remade {remade} times, the last frame is {extent} wide"
            )
        })?;
        eprintln!("airlock-present: resized before frame {at}: {result:?} at frame {frame}, swapchain remade {remade} times");
        report.u64("remade", remade);
    }
    p.drop_target(&target);
    Ok(Outcome {
        report,
        frames_per_second: f64::from(run.frames) / seconds,
    })
}
