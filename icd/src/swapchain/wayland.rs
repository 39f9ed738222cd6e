//! Presenting to a Wayland surface. Each image's memfd becomes a `wl_shm` pool holding one
//! `wl_buffer` over the very pages the host driver wrote (no copy), attached to the
//! application's `wl_surface`. The compositor owns an image from the commit until it releases
//! the buffer; acquire waits for that release.
//!
//! Everything of ours goes through a private event queue on the application's own connection
//! (wayland-backend's guest backend over its `wl_display`): none of our events reach the
//! application's dispatch, and we never read its queues. libwayland-client is the application's,
//! opened when the first Wayland swapchain is made.
//!
//! FIFO presents wait for the previous frame's `wl_surface.frame` callback, but never longer
//! than `FRAME_WAIT`: a compositor sends none while the window is hidden (weston, for a window
//! under others), and a hidden window must not stop the application. Once a wait has run out,
//! the next ones wait at most `MISSED_FRAME_WAIT`, a refresh at 60 Hz, until callbacks come
//! again: a hidden window's presents go on at about the rate a shown one would.

use super::Image;
use crate::log::log;
use ash::vk;
use parking_lot::Mutex;
use std::ffi::c_void;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};
use wayland_backend::client::{Backend, ObjectId};
use wayland_client::protocol::{
    wl_buffer::{self, WlBuffer},
    wl_callback::{self, WlCallback},
    wl_registry::{self, WlRegistry},
    wl_shm::{self, WlShm},
    wl_shm_pool::WlShmPool,
    wl_surface::WlSurface,
};
use wayland_client::{Connection, Dispatch, EventQueue, Proxy, QueueHandle};

/// The longest a FIFO present waits for the compositor's frame callback.
const FRAME_WAIT: Duration = Duration::from_millis(100);
/// The longest it waits after a callback failed to come.
const MISSED_FRAME_WAIT: Duration = Duration::from_micros(16_667);

/// What our queue's events told us.
#[derive(Default)]
struct Events {
    /// The compositor's `wl_shm` global: name and version.
    shm: Option<(u32, u32)>,
    /// Images whose buffers the compositor released, not yet handed back to the swapchain.
    released: Vec<usize>,
    /// The last frame callback asked for has come (or none was asked for).
    frame_done: bool,
}

impl Dispatch<WlRegistry, ()> for Events {
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

impl Dispatch<WlShm, ()> for Events {
    fn event(
        _: &mut Self,
        _: &WlShm,
        _: wl_shm::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<WlShmPool, ()> for Events {
    fn event(
        _: &mut Self,
        _: &WlShmPool,
        _: <WlShmPool as Proxy>::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<WlBuffer, usize> for Events {
    fn event(
        state: &mut Self,
        _: &WlBuffer,
        event: wl_buffer::Event,
        index: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            state.released.push(*index);
        }
    }
}

impl Dispatch<WlCallback, ()> for Events {
    fn event(
        state: &mut Self,
        _: &WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            state.frame_done = true;
        }
    }
}

struct Queue {
    queue: EventQueue<Events>,
    events: Events,
    /// The last FIFO wait ran out before its frame callback came.
    missed: bool,
}

impl Queue {
    /// Dispatches what the compositor sent, reading the socket for up to `wait` when nothing
    /// of ours is queued yet.
    fn pump(&mut self, wait: Duration) -> Result<(), vk::Result> {
        let lost = |e: &dyn std::fmt::Display| {
            log!(warn, "airlock: Wayland connection: {e}");
            vk::Result::ERROR_SURFACE_LOST_KHR
        };
        if self
            .queue
            .dispatch_pending(&mut self.events)
            .map_err(|e| lost(&e))?
            > 0
        {
            return Ok(());
        }
        self.queue.flush().map_err(|e| lost(&e))?;
        if let Some(guard) = self.queue.prepare_read() {
            let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
            let timeout = rustix::event::Timespec {
                tv_sec: i64::from(ms / 1000),
                tv_nsec: i64::from(ms % 1000) * 1_000_000,
            };
            let ready = {
                let fd = guard.connection_fd();
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                rustix::event::poll(&mut fds, Some(&timeout))
            };
            match ready {
                Ok(n) if n > 0 => {
                    guard.read().map_err(|e| lost(&e))?;
                }
                // Nothing came: dropping the guard cancels the read.
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(lost(&e)),
            }
        }
        self.queue
            .dispatch_pending(&mut self.events)
            .map_err(|e| lost(&e))?;
        Ok(())
    }
}

pub(super) struct Wayland {
    surface: WlSurface,
    shm: WlShm,
    pools: Vec<WlShmPool>,
    buffers: Vec<WlBuffer>,
    fifo: bool,
    queue: Mutex<Queue>,
    // Last: the connection outlives the objects above.
    _conn: Connection,
}

impl Wayland {
    /// Sets up to present `images` (of `extent`) to the application's `surface` on `display`.
    ///
    /// # Safety
    /// `display` and `surface` are the application's live `wl_display` and `wl_surface`, as
    /// Vulkan requires of a surface's window for as long as the swapchain lives.
    pub(super) unsafe fn new(
        display: *mut c_void,
        surface: *mut c_void,
        images: &[Image],
        info: &vk::SwapchainCreateInfoKHR<'_>,
    ) -> Result<Wayland, vk::Result> {
        let lost = |e: &dyn std::fmt::Display| {
            log!(warn, "airlock: presenting to a Wayland surface: {e}");
            vk::Result::ERROR_SURFACE_LOST_KHR
        };
        if !wayland_sys::client::is_lib_available() {
            return Err(lost(&"libwayland-client.so.0 cannot be opened"));
        }
        let backend = Backend::from_foreign_display(display.cast());
        let conn = Connection::from_backend(backend);
        let id = ObjectId::from_ptr(WlSurface::interface(), surface.cast())
            .map_err(|_| lost(&"the surface's window is not a wl_surface"))?;
        let surface = WlSurface::from_id(&conn, id).map_err(|e| lost(&e))?;
        let queue = conn.new_event_queue::<Events>();
        let qh = queue.handle();
        let mut q = Queue {
            queue,
            events: Events {
                frame_done: true,
                ..Events::default()
            },
            missed: false,
        };
        let registry = conn.display().get_registry(&qh, ());
        q.queue.roundtrip(&mut q.events).map_err(|e| lost(&e))?;
        let (name, version) = q
            .events
            .shm
            .ok_or_else(|| lost(&"the compositor offers no wl_shm"))?;
        let shm: WlShm = registry.bind(name, version.min(1), &qh, ());
        // Opaque images go without alpha: the compositor ignores theirs.
        let Some(shm_format) = crate::surface::WAYLAND_FORMATS
            .iter()
            .find(|f| f.format == info.image_format)
        else {
            return Err(lost(&format!(
                "no wl_shm format holds {:?}",
                info.image_format
            )));
        };
        let format = if info.composite_alpha == vk::CompositeAlphaFlagsKHR::OPAQUE {
            shm_format.opaque
        } else {
            shm_format.alpha
        };
        let too_big = || lost(&"a swapchain image is larger than wl_shm takes");
        let (w, h) = (
            i32::try_from(info.image_extent.width).map_err(|_| too_big())?,
            i32::try_from(info.image_extent.height).map_err(|_| too_big())?,
        );
        let mut pools = Vec::with_capacity(images.len());
        let mut buffers = Vec::with_capacity(images.len());
        for (k, image) in images.iter().enumerate() {
            let size = i32::try_from(image.len).map_err(|_| too_big())?;
            let stride = i32::try_from(image.row_pitch).map_err(|_| too_big())?;
            let offset = i32::try_from(image.offset).map_err(|_| too_big())?;
            let pool = shm.create_pool(image.memfd.as_fd(), size, &qh, ());
            buffers.push(pool.create_buffer(offset, w, h, stride, format, &qh, k));
            pools.push(pool);
        }
        // A pool the compositor cannot map ends the connection: better seen now than at the
        // first present.
        q.queue.roundtrip(&mut q.events).map_err(|e| lost(&e))?;
        Ok(Wayland {
            surface,
            shm,
            pools,
            buffers,
            fifo: matches!(
                info.present_mode,
                vk::PresentModeKHR::FIFO | vk::PresentModeKHR::FIFO_RELAXED
            ),
            queue: Mutex::new(q),
            _conn: conn,
        })
    }

    /// Shows image `index` of `extent`; returns the images the compositor gave back meanwhile
    /// (never `index`: the compositor holds it until a later commit replaces it).
    pub(super) fn present(
        &self,
        index: usize,
        extent: vk::Extent2D,
    ) -> Result<Vec<usize>, vk::Result> {
        let mut q = self.queue.lock();
        if self.fifo {
            let wait = if q.missed {
                MISSED_FRAME_WAIT
            } else {
                FRAME_WAIT
            };
            let deadline = Instant::now() + wait;
            while !q.events.frame_done {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                q.pump(left)?;
            }
            q.missed = !q.events.frame_done;
        }
        let (w, h) = (extent.width as i32, extent.height as i32);
        self.surface.attach(Some(&self.buffers[index]), 0, 0);
        if self.surface.version() >= 4 {
            self.surface.damage_buffer(0, 0, w, h);
        } else {
            self.surface.damage(0, 0, w, h);
        }
        if self.fifo {
            self.surface.frame(&q.queue.handle(), ());
            q.events.frame_done = false;
        }
        self.surface.commit();
        q.pump(Duration::ZERO)?;
        Ok(std::mem::take(&mut q.events.released))
    }

    /// Waits up to `wait` for the compositor to give an image back; returns those it gave.
    pub(super) fn released(&self, wait: Duration) -> Result<Vec<usize>, vk::Result> {
        let mut q = self.queue.lock();
        let deadline = Instant::now() + wait;
        loop {
            q.pump(deadline.saturating_duration_since(Instant::now()))?;
            if !q.events.released.is_empty() || Instant::now() >= deadline {
                return Ok(std::mem::take(&mut q.events.released));
            }
        }
    }

    pub(super) fn close(&self) {
        for b in &self.buffers {
            b.destroy();
        }
        for p in &self.pools {
            p.destroy();
        }
        let _ = &self.shm;
        let _ = self.queue.lock().queue.flush();
    }
}
