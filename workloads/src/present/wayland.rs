//! A Wayland window of the program's: an xdg-shell toplevel, fullscreen, on the compositor
//! `WAYLAND_DISPLAY` names, and what the compositor shows, read back with weston's
//! screenshooter (`weston-screenshooter`, offered when weston runs with `--debug`).

use crate::error::{Error, Result};
use std::ffi::c_void;
use wayland_client::protocol::{
    wl_compositor::WlCompositor,
    wl_registry::{self, WlRegistry},
    wl_surface::WlSurface,
};
use wayland_client::{Connection, Dispatch, EventQueue, Proxy, QueueHandle};
use wayland_protocols::xdg::shell::client::{
    xdg_surface::{self, XdgSurface},
    xdg_toplevel::{self, XdgToplevel},
    xdg_wm_base::{self, XdgWmBase},
};

fn wayland_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unsupported(format!("Wayland: {what}: {e}"))
}

#[derive(Default)]
struct State {
    compositor: Option<WlCompositor>,
    wm_base: Option<XdgWmBase>,
    configured: bool,
    /// The size the compositor asked for (0: the client's choice).
    size: (i32, i32),
}

impl Dispatch<WlRegistry, ()> for State {
    fn event(
        state: &mut Self,
        registry: &WlRegistry,
        event: wl_registry::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let wl_registry::Event::Global {
            name,
            interface,
            version,
        } = event
        {
            if interface == WlCompositor::interface().name {
                state.compositor = Some(registry.bind(name, version.min(4), qh, ()));
            } else if interface == XdgWmBase::interface().name {
                state.wm_base = Some(registry.bind(name, version.min(2), qh, ()));
            }
        }
    }
}

impl Dispatch<WlCompositor, ()> for State {
    fn event(
        _: &mut Self,
        _: &WlCompositor,
        _: <WlCompositor as Proxy>::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<WlSurface, ()> for State {
    fn event(
        _: &mut Self,
        _: &WlSurface,
        _: <WlSurface as Proxy>::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<XdgWmBase, ()> for State {
    fn event(
        _: &mut Self,
        wm_base: &XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm_base.pong(serial);
        }
    }
}

impl Dispatch<XdgSurface, ()> for State {
    fn event(
        state: &mut Self,
        surface: &XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            surface.ack_configure(serial);
            state.configured = true;
        }
    }
}

impl Dispatch<XdgToplevel, ()> for State {
    fn event(
        state: &mut Self,
        _: &XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_toplevel::Event::Configure { width, height, .. } = event {
            state.size = (width, height);
        }
    }
}

pub struct WaylandWindow {
    conn: Connection,
    queue: EventQueue<State>,
    surface: WlSurface,
    xdg_surface: XdgSurface,
    toplevel: XdgToplevel,
}

impl WaylandWindow {
    /// A fullscreen toplevel; the compositor's output must be `size` square for its picture to
    /// be the window's.
    pub fn open(size: u32) -> Result<WaylandWindow> {
        let conn = Connection::connect_to_env().map_err(|e| wayland_error("connecting", e))?;
        let mut queue = conn.new_event_queue();
        let qh = queue.handle();
        conn.display().get_registry(&qh, ());
        let mut state = State::default();
        queue
            .roundtrip(&mut state)
            .map_err(|e| wayland_error("the registry", e))?;
        let (Some(compositor), Some(wm_base)) = (&state.compositor, &state.wm_base) else {
            return Err(wayland_error(
                "the compositor",
                "no wl_compositor or xdg_wm_base",
            ));
        };
        let surface = compositor.create_surface(&qh, ());
        let xdg_surface = wm_base.get_xdg_surface(&surface, &qh, ());
        let toplevel = xdg_surface.get_toplevel(&qh, ());
        toplevel.set_title("airlock-present".into());
        toplevel.set_fullscreen(None);
        surface.commit();
        while !state.configured {
            queue
                .blocking_dispatch(&mut state)
                .map_err(|e| wayland_error("waiting for the first configure", e))?;
        }
        let (w, h) = state.size;
        if (w, h) != (0, 0) && (w as u32, h as u32) != (size, size) {
            return Err(wayland_error(
                "the compositor",
                format!("a fullscreen window of {w}x{h}, not {size}x{size}: start it with a {size}x{size} output"),
            ));
        }
        // Nothing more is read from this queue: the toplevel needs no more answers while the
        // program runs (weston pings only a window the user interacts with).
        Ok(WaylandWindow {
            conn,
            queue,
            surface,
            xdg_surface,
            toplevel,
        })
    }

    /// The application's `wl_display` and `wl_surface`, for `VkWaylandSurfaceCreateInfoKHR`.
    pub fn raw(&self) -> (*mut c_void, *mut c_void) {
        (
            self.conn.backend().display_ptr().cast(),
            self.surface.id().as_ptr().cast(),
        )
    }

    /// What the compositor shows in the top-left `size` square, RGBA.
    pub fn pixels(&self, size: u32) -> Result<Vec<[u8; 4]>> {
        let (width, height, rgba) = crate::drivers::weston_screenshot(|_| {})
            .map_err(|e| wayland_error("a screenshot", e))?;
        if width < size || height < size {
            return Err(wayland_error(
                "the screenshot",
                format!("{width}x{height}, smaller than the window"),
            ));
        }
        let mut out = Vec::with_capacity((size * size) as usize);
        for y in 0..size {
            for x in 0..size {
                out.push(rgba[(y * width + x) as usize]);
            }
        }
        Ok(out)
    }
}

impl Drop for WaylandWindow {
    fn drop(&mut self) {
        self.toplevel.destroy();
        self.xdg_surface.destroy();
        self.surface.destroy();
        let _ = self.queue.flush();
    }
}
