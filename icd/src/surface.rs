//! Surfaces: what a window is to Vulkan, kept in the ICD alone (the server never talks to a
//! display). A surface handle is the loader's `VkIcdSurface*` (a `VkIcdSurfaceBase` naming the
//! platform, then the platform's window) or one the ICD made with the same layout (the loader,
//! interface 3 and later, calls the ICD's create function when it exports one); both read the
//! same here.
//!
//! Capabilities are asked of the window when they are asked for: an X11 window's size and depth
//! (so a resize shows at once), through the application's own connection with checked requests
//! (no reply or error reaches the application's event handling). A Wayland or headless surface
//! has no size of its own: the swapchain's decides. Formats, present modes and usages are those
//! lavapipe reports.

use crate::log::log;
use crate::util::fill;
use ash::vk::{self, Handle};
use std::ffi::{c_ulong, c_void};
use wayland_backend::client::Backend;
use wayland_client::protocol::{
    wl_registry::{self, WlRegistry},
    wl_shm::{self, WlShm},
};
use wayland_client::{Connection, Dispatch, Proxy, QueueHandle};
use x11rb::protocol::xproto::ConnectionExt as _;
use x11rb::xcb_ffi::XCBConnection;

// `VkIcdWsiPlatform` (the loader's vk_icd.h).
const PLATFORM_WAYLAND: u32 = 1;
const PLATFORM_XCB: u32 = 3;
const PLATFORM_XLIB: u32 = 4;
const PLATFORM_HEADLESS: u32 = 9;

#[repr(C)]
struct Base {
    platform: u32,
}

#[repr(C)]
struct Xcb {
    base: Base,
    connection: *mut c_void,
    window: u32,
}

#[repr(C)]
struct Xlib {
    base: Base,
    display: *mut c_void,
    window: c_ulong,
}

#[repr(C)]
struct Wayland {
    base: Base,
    display: *mut c_void,
    surface: *mut c_void,
}

/// The window behind a surface.
#[derive(Clone, Copy, Debug)]
pub enum Window {
    /// An X11 window and the application's xcb connection (an Xlib display's, for xlib).
    X11 {
        connection: *mut c_void,
        window: u32,
    },
    Wayland {
        display: *mut c_void,
        surface: *mut c_void,
    },
    Headless,
}

// SAFETY: the application's display connection, which libxcb and libwayland make thread-safe;
// Vulkan requires the window to outlive the surface.
unsafe impl Send for Window {}
unsafe impl Sync for Window {}

/// The window behind `surface`, `None` for a platform Airlock does not present to.
///
/// # Safety
/// `surface` is a live surface the loader or this ICD made.
pub unsafe fn window(surface: vk::SurfaceKHR) -> Option<Window> {
    let base = surface.as_raw() as *const Base;
    if base.is_null() {
        return None;
    }
    Some(match (*base).platform {
        PLATFORM_XCB => {
            let s = &*(base as *const Xcb);
            Window::X11 {
                connection: s.connection,
                window: s.window,
            }
        }
        PLATFORM_XLIB => {
            let s = &*(base as *const Xlib);
            Window::X11 {
                connection: xlib_connection(s.display)?,
                window: s.window as u32,
            }
        }
        PLATFORM_WAYLAND => {
            let s = &*(base as *const Wayland);
            Window::Wayland {
                display: s.display,
                surface: s.surface,
            }
        }
        PLATFORM_HEADLESS => Window::Headless,
        other => {
            log!(
                warn,
                "airlock: a surface of window system {other}: not presented to"
            );
            return None;
        }
    })
}

/// The xcb connection under an Xlib display (`XGetXCBConnection`, from libX11-xcb, which every
/// Xlib program that can make an X11 surface has loaded).
unsafe fn xlib_connection(display: *mut c_void) -> Option<*mut c_void> {
    type GetXcb = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
    static GET: std::sync::OnceLock<Option<GetXcb>> = std::sync::OnceLock::new();
    let get = GET.get_or_init(|| {
        let lib = libloading::Library::new("libX11-xcb.so.1")
            .map_err(|e| log!(warn, "airlock: an Xlib surface: libX11-xcb.so.1: {e}"))
            .ok()?;
        let f = *lib.get::<GetXcb>(b"XGetXCBConnection\0").ok()?;
        // Loaded for good: the function is kept.
        std::mem::forget(lib);
        Some(f)
    });
    let c = (*get)?(display);
    (!c.is_null()).then_some(c)
}

/// An X11 window's geometry: size and depth, asked now.
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub depth: u8,
}

/// The application's xcb connection, wrapped for x11rb without taking it over: never closed,
/// never read for events.
///
/// # Safety
/// `connection` is a live xcb connection that outlives the wrapper.
pub unsafe fn x11(connection: *mut c_void) -> Option<XCBConnection> {
    XCBConnection::from_raw_xcb_connection(connection, false)
        .map_err(|e| log!(warn, "airlock: the application's X connection: {e}"))
        .ok()
}

/// The size and depth of an X11 window; `None` when it is gone.
pub fn x11_geometry(conn: &XCBConnection, window: u32) -> Option<Geometry> {
    let g = conn.get_geometry(window).ok()?.reply().ok()?;
    Some(Geometry {
        width: u32::from(g.width),
        height: u32::from(g.height),
        depth: g.depth,
    })
}

fn create<T>(surface: T, out: *mut vk::SurfaceKHR) -> vk::Result {
    if out.is_null() {
        return vk::Result::ERROR_INITIALIZATION_FAILED;
    }
    let p = Box::into_raw(Box::new(surface));
    // SAFETY: the application's output.
    unsafe { *out = vk::SurfaceKHR::from_raw(p as u64) };
    vk::Result::SUCCESS
}

pub unsafe extern "system" fn vkCreateXcbSurfaceKHR(
    _instance: vk::Instance,
    info: *const vk::XcbSurfaceCreateInfoKHR<'_>,
    _allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::SurfaceKHR,
) -> vk::Result {
    let i = &*info;
    create(
        Xcb {
            base: Base {
                platform: PLATFORM_XCB,
            },
            connection: i.connection,
            window: i.window,
        },
        out,
    )
}

pub unsafe extern "system" fn vkCreateXlibSurfaceKHR(
    _instance: vk::Instance,
    info: *const vk::XlibSurfaceCreateInfoKHR<'_>,
    _allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::SurfaceKHR,
) -> vk::Result {
    let i = &*info;
    create(
        Xlib {
            base: Base {
                platform: PLATFORM_XLIB,
            },
            display: i.dpy,
            window: i.window,
        },
        out,
    )
}

pub unsafe extern "system" fn vkCreateWaylandSurfaceKHR(
    _instance: vk::Instance,
    info: *const vk::WaylandSurfaceCreateInfoKHR<'_>,
    _allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::SurfaceKHR,
) -> vk::Result {
    let i = &*info;
    create(
        Wayland {
            base: Base {
                platform: PLATFORM_WAYLAND,
            },
            display: i.display,
            surface: i.surface,
        },
        out,
    )
}

pub unsafe extern "system" fn vkCreateHeadlessSurfaceEXT(
    _instance: vk::Instance,
    _info: *const vk::HeadlessSurfaceCreateInfoEXT<'_>,
    _allocator: *const vk::AllocationCallbacks<'_>,
    out: *mut vk::SurfaceKHR,
) -> vk::Result {
    create(
        Base {
            platform: PLATFORM_HEADLESS,
        },
        out,
    )
}

/// Frees a surface this ICD made (the loader frees its own, and calls this only for ours).
pub unsafe extern "system" fn vkDestroySurfaceKHR(
    _instance: vk::Instance,
    surface: vk::SurfaceKHR,
    _allocator: *const vk::AllocationCallbacks<'_>,
) {
    let p = surface.as_raw() as *mut Base;
    if p.is_null() {
        return;
    }
    match (*p).platform {
        PLATFORM_XCB => drop(Box::from_raw(p as *mut Xcb)),
        PLATFORM_XLIB => drop(Box::from_raw(p as *mut Xlib)),
        PLATFORM_WAYLAND => drop(Box::from_raw(p as *mut Wayland)),
        _ => drop(Box::from_raw(p)),
    }
}

/// Every queue family can present: presenting is the ICD's own work.
pub unsafe extern "system" fn vkGetPhysicalDeviceSurfaceSupportKHR(
    _pd: vk::PhysicalDevice,
    _family: u32,
    surface: vk::SurfaceKHR,
    supported: *mut vk::Bool32,
) -> vk::Result {
    *supported = window(surface).is_some() as vk::Bool32;
    vk::Result::SUCCESS
}

pub unsafe extern "system" fn vkGetPhysicalDeviceXcbPresentationSupportKHR(
    _pd: vk::PhysicalDevice,
    _family: u32,
    _connection: *mut vk::xcb_connection_t,
    _visual: vk::xcb_visualid_t,
) -> vk::Bool32 {
    vk::TRUE
}

pub unsafe extern "system" fn vkGetPhysicalDeviceXlibPresentationSupportKHR(
    _pd: vk::PhysicalDevice,
    _family: u32,
    _display: *mut vk::Display,
    _visual: vk::VisualID,
) -> vk::Bool32 {
    vk::TRUE
}

pub unsafe extern "system" fn vkGetPhysicalDeviceWaylandPresentationSupportKHR(
    _pd: vk::PhysicalDevice,
    _family: u32,
    _display: *mut vk::wl_display,
) -> vk::Bool32 {
    vk::TRUE
}

/// The largest image a swapchain of a surface without a size of its own may have.
const MAX_EXTENT: u32 = 16384;
/// lavapipe's count: one being shown, one queued, one drawn.
pub const MIN_IMAGES: u32 = 3;

/// A surface's capabilities now; `Err` when its window is gone.
///
/// # Safety
/// `surface` is a live surface.
pub unsafe fn capabilities(
    surface: vk::SurfaceKHR,
) -> Result<vk::SurfaceCapabilitiesKHR, vk::Result> {
    let no_size = vk::Extent2D {
        width: u32::MAX,
        height: u32::MAX,
    };
    let window = window(surface).ok_or(vk::Result::ERROR_SURFACE_LOST_KHR)?;
    // A Wayland compositor blends ARGB buffers as premultiplied; X11 windows take no alpha.
    let alpha = match window {
        Window::Wayland { .. } => {
            vk::CompositeAlphaFlagsKHR::OPAQUE
                | vk::CompositeAlphaFlagsKHR::PRE_MULTIPLIED
                | vk::CompositeAlphaFlagsKHR::INHERIT
        }
        _ => vk::CompositeAlphaFlagsKHR::OPAQUE | vk::CompositeAlphaFlagsKHR::INHERIT,
    };
    let (current, min, max) = match window {
        Window::X11 { connection, window } => {
            let conn = x11(connection).ok_or(vk::Result::ERROR_SURFACE_LOST_KHR)?;
            let g = x11_geometry(&conn, window).ok_or(vk::Result::ERROR_SURFACE_LOST_KHR)?;
            let e = vk::Extent2D {
                width: g.width,
                height: g.height,
            };
            (e, e, e)
        }
        Window::Wayland { .. } | Window::Headless => (
            no_size,
            vk::Extent2D {
                width: 1,
                height: 1,
            },
            vk::Extent2D {
                width: MAX_EXTENT,
                height: MAX_EXTENT,
            },
        ),
    };
    Ok(vk::SurfaceCapabilitiesKHR {
        min_image_count: MIN_IMAGES,
        max_image_count: 0,
        current_extent: current,
        min_image_extent: min,
        max_image_extent: max,
        max_image_array_layers: 1,
        supported_transforms: vk::SurfaceTransformFlagsKHR::IDENTITY,
        current_transform: vk::SurfaceTransformFlagsKHR::IDENTITY,
        supported_composite_alpha: alpha,
        supported_usage_flags: USAGE,
    })
}

/// What swapchain images may be used for (lavapipe's list).
pub const USAGE: vk::ImageUsageFlags = vk::ImageUsageFlags::from_raw(
    vk::ImageUsageFlags::TRANSFER_SRC.as_raw()
        | vk::ImageUsageFlags::TRANSFER_DST.as_raw()
        | vk::ImageUsageFlags::SAMPLED.as_raw()
        | vk::ImageUsageFlags::STORAGE.as_raw()
        | vk::ImageUsageFlags::COLOR_ATTACHMENT.as_raw()
        | vk::ImageUsageFlags::INPUT_ATTACHMENT.as_raw(),
);

/// The formats X11 swapchains take: 32-bit BGRA, as a 24- or 32-bit visual holds it. Wayland
/// surfaces take those of the compositor's `wl_shm` formats that a Vulkan format matches
/// (`formats`).
pub const FORMATS: [vk::SurfaceFormatKHR; 2] = [
    vk::SurfaceFormatKHR {
        format: vk::Format::B8G8R8A8_SRGB,
        color_space: vk::ColorSpaceKHR::SRGB_NONLINEAR,
    },
    vk::SurfaceFormatKHR {
        format: vk::Format::B8G8R8A8_UNORM,
        color_space: vk::ColorSpaceKHR::SRGB_NONLINEAR,
    },
];

const PRESENT_MODES: [vk::PresentModeKHR; 4] = [
    vk::PresentModeKHR::IMMEDIATE,
    vk::PresentModeKHR::MAILBOX,
    vk::PresentModeKHR::FIFO,
    vk::PresentModeKHR::FIFO_RELAXED,
];

pub unsafe extern "system" fn vkGetPhysicalDeviceSurfaceCapabilitiesKHR(
    _pd: vk::PhysicalDevice,
    surface: vk::SurfaceKHR,
    out: *mut vk::SurfaceCapabilitiesKHR,
) -> vk::Result {
    match capabilities(surface) {
        Ok(c) => {
            *out = c;
            vk::Result::SUCCESS
        }
        Err(r) => r,
    }
}

pub unsafe extern "system" fn vkGetPhysicalDeviceSurfaceCapabilities2KHR(
    _pd: vk::PhysicalDevice,
    info: *const vk::PhysicalDeviceSurfaceInfo2KHR<'_>,
    out: *mut vk::SurfaceCapabilities2KHR<'_>,
) -> vk::Result {
    let caps = match capabilities((*info).surface) {
        Ok(c) => c,
        Err(r) => return r,
    };
    (*out).surface_capabilities = caps;
    let mut p = (*out).p_next as *mut vk::BaseOutStructure;
    while let Some(b) = p.as_mut() {
        if b.s_type == vk::StructureType::SURFACE_PROTECTED_CAPABILITIES_KHR {
            (*(p as *mut vk::SurfaceProtectedCapabilitiesKHR)).supports_protected = vk::FALSE;
        }
        p = b.p_next;
    }
    vk::Result::SUCCESS
}

/// A Vulkan format and the `wl_shm` formats holding its pixels as they lie in memory
/// (little-endian): without alpha (an opaque swapchain) and with it.
pub struct ShmFormat {
    pub format: vk::Format,
    pub opaque: wl_shm::Format,
    pub alpha: wl_shm::Format,
}

/// In the order surfaces list them (native lavapipe's).
pub const WAYLAND_FORMATS: [ShmFormat; 7] = {
    use wl_shm::Format as W;
    const fn f(format: vk::Format, opaque: W, alpha: W) -> ShmFormat {
        ShmFormat {
            format,
            opaque,
            alpha,
        }
    }
    [
        f(vk::Format::B8G8R8A8_SRGB, W::Xrgb8888, W::Argb8888),
        f(vk::Format::B8G8R8A8_UNORM, W::Xrgb8888, W::Argb8888),
        f(vk::Format::R5G6B5_UNORM_PACK16, W::Rgb565, W::Rgb565),
        f(vk::Format::R8G8B8A8_SRGB, W::Xbgr8888, W::Abgr8888),
        f(vk::Format::R8G8B8A8_UNORM, W::Xbgr8888, W::Abgr8888),
        f(
            vk::Format::A2R10G10B10_UNORM_PACK32,
            W::Xrgb2101010,
            W::Argb2101010,
        ),
        f(
            vk::Format::A2B10G10R10_UNORM_PACK32,
            W::Xbgr2101010,
            W::Abgr2101010,
        ),
    ]
};

/// The `wl_shm` formats the compositor of `display` takes (a round trip on a private queue).
///
/// # Safety
/// `display` is the application's live `wl_display`.
unsafe fn shm_formats(display: *mut c_void) -> Result<Vec<wl_shm::Format>, vk::Result> {
    let lost = |e: &dyn std::fmt::Display| {
        log!(
            warn,
            "airlock: asking the Wayland compositor its formats: {e}"
        );
        vk::Result::ERROR_SURFACE_LOST_KHR
    };
    if !wayland_sys::client::is_lib_available() {
        return Err(lost(&"libwayland-client.so.0 cannot be opened"));
    }
    let conn = Connection::from_backend(Backend::from_foreign_display(display.cast()));
    let mut queue = conn.new_event_queue::<ShmGlobals>();
    let qh = queue.handle();
    let mut events = ShmGlobals::default();
    let registry = conn.display().get_registry(&qh, ());
    queue.roundtrip(&mut events).map_err(|e| lost(&e))?;
    let (name, version) = events
        .shm
        .ok_or_else(|| lost(&"the compositor offers no wl_shm"))?;
    let shm: WlShm = registry.bind(name, version.min(1), &qh, ());
    queue.roundtrip(&mut events).map_err(|e| lost(&e))?;
    drop(shm);
    Ok(events.formats)
}

/// What the compositor says of its `wl_shm` on a private queue: the global, then its formats.
#[derive(Default)]
struct ShmGlobals {
    shm: Option<(u32, u32)>,
    formats: Vec<wl_shm::Format>,
}

impl Dispatch<WlRegistry, ()> for ShmGlobals {
    fn event(
        state: &mut Self,
        _: &WlRegistry,
        event: wl_registry::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_registry::Event::Global {
            name,
            interface,
            version,
        } = event
        {
            if interface == WlShm::interface().name {
                state.shm = Some((name, version));
            }
        }
    }
}

impl Dispatch<WlShm, ()> for ShmGlobals {
    fn event(
        state: &mut Self,
        _: &WlShm,
        event: wl_shm::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_shm::Event::Format {
            format: wayland_client::WEnum::Value(f),
        } = event
        {
            state.formats.push(f);
        }
    }
}

/// The formats a swapchain of `surface` may have.
///
/// # Safety
/// `surface` is a live surface.
pub unsafe fn formats(surface: vk::SurfaceKHR) -> Result<Vec<vk::SurfaceFormatKHR>, vk::Result> {
    match window(surface).ok_or(vk::Result::ERROR_SURFACE_LOST_KHR)? {
        Window::Wayland { display, .. } => {
            let offered = shm_formats(display)?;
            Ok(WAYLAND_FORMATS
                .iter()
                .filter(|f| offered.contains(&f.opaque) && offered.contains(&f.alpha))
                .map(|f| vk::SurfaceFormatKHR {
                    format: f.format,
                    color_space: vk::ColorSpaceKHR::SRGB_NONLINEAR,
                })
                .collect())
        }
        Window::X11 { .. } | Window::Headless => Ok(FORMATS.to_vec()),
    }
}

pub unsafe extern "system" fn vkGetPhysicalDeviceSurfaceFormatsKHR(
    _pd: vk::PhysicalDevice,
    surface: vk::SurfaceKHR,
    count: *mut u32,
    out: *mut vk::SurfaceFormatKHR,
) -> vk::Result {
    match formats(surface) {
        Ok(f) => fill(&f, count, out),
        Err(r) => r,
    }
}

pub unsafe extern "system" fn vkGetPhysicalDeviceSurfaceFormats2KHR(
    _pd: vk::PhysicalDevice,
    info: *const vk::PhysicalDeviceSurfaceInfo2KHR<'_>,
    count: *mut u32,
    out: *mut vk::SurfaceFormat2KHR<'_>,
) -> vk::Result {
    let formats = match formats((*info).surface) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if out.is_null() {
        *count = formats.len() as u32;
        return vk::Result::SUCCESS;
    }
    let n = (*count as usize).min(formats.len());
    for (k, f) in formats.iter().take(n).enumerate() {
        // The application's structs keep their sType and pNext.
        (*out.add(k)).surface_format = *f;
    }
    *count = n as u32;
    if n < formats.len() {
        vk::Result::INCOMPLETE
    } else {
        vk::Result::SUCCESS
    }
}

pub unsafe extern "system" fn vkGetPhysicalDeviceSurfacePresentModesKHR(
    _pd: vk::PhysicalDevice,
    surface: vk::SurfaceKHR,
    count: *mut u32,
    out: *mut vk::PresentModeKHR,
) -> vk::Result {
    if window(surface).is_none() {
        return vk::Result::ERROR_SURFACE_LOST_KHR;
    }
    fill(&PRESENT_MODES, count, out)
}

/// One rectangle: the whole window (or, without a size, the largest image).
pub unsafe extern "system" fn vkGetPhysicalDevicePresentRectanglesKHR(
    _pd: vk::PhysicalDevice,
    surface: vk::SurfaceKHR,
    count: *mut u32,
    out: *mut vk::Rect2D,
) -> vk::Result {
    let caps = match capabilities(surface) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let extent = if caps.current_extent.width == u32::MAX {
        caps.max_image_extent
    } else {
        caps.current_extent
    };
    fill(&[extent.into()], count, out)
}

/// One device, which presents its own images.
pub unsafe extern "system" fn vkGetDeviceGroupPresentCapabilitiesKHR(
    _device: vk::Device,
    out: *mut vk::DeviceGroupPresentCapabilitiesKHR<'_>,
) -> vk::Result {
    (*out).present_mask = [0; vk::MAX_DEVICE_GROUP_SIZE];
    (*out).present_mask[0] = 1;
    (*out).modes = vk::DeviceGroupPresentModeFlagsKHR::LOCAL;
    vk::Result::SUCCESS
}

pub unsafe extern "system" fn vkGetDeviceGroupSurfacePresentModesKHR(
    _device: vk::Device,
    surface: vk::SurfaceKHR,
    modes: *mut vk::DeviceGroupPresentModeFlagsKHR,
) -> vk::Result {
    if window(surface).is_none() {
        return vk::Result::ERROR_SURFACE_LOST_KHR;
    }
    *modes = vk::DeviceGroupPresentModeFlagsKHR::LOCAL;
    vk::Result::SUCCESS
}
