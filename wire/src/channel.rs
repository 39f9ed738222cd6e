//! Shared-memory layout of one client connection: one command ring
//! (client → server) and `reply_slots` reply rings (server → client), all in
//! a single memfd.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ring::{Ring, RingError, RING_HEADER_SIZE};
use crate::shm::SharedMemory;

/// Smallest ring capacity a layout may request.
pub const MIN_LAYOUT_RING: u32 = 4 * 1024;
/// Largest ring capacity a layout may request.
pub const MAX_LAYOUT_RING: u32 = 64 * 1024 * 1024;
/// Most reply slots a layout may request.
pub const MAX_REPLY_SLOTS: u32 = 256;
/// Largest total shared-memory size a layout may describe.
pub const MAX_CHANNEL_BYTES: u64 = 256 * 1024 * 1024;

/// Rings start on their own page so no two rings share a cache line.
const REGION_ALIGN: u64 = 4096;

/// Ring sizes of a connection. The server receives this from the client,
/// so it must be [`validate`](ChannelLayout::validate)d before use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLayout {
    /// Command ring capacity in bytes (power of two).
    pub command_ring: u32,
    /// Capacity of each reply ring in bytes (power of two).
    pub reply_ring: u32,
    /// Number of reply rings, one per concurrently waiting client thread.
    pub reply_slots: u32,
}

impl Default for ChannelLayout {
    fn default() -> Self {
        Self {
            command_ring: 4 * 1024 * 1024,
            reply_ring: 256 * 1024,
            reply_slots: 16,
        }
    }
}

impl ChannelLayout {
    /// Checks every field against fixed bounds so a hostile client cannot
    /// make the server map or trust absurd sizes.
    pub fn validate(&self) -> Result<(), ChannelError> {
        let ring_ok =
            |cap: u32| cap.is_power_of_two() && (MIN_LAYOUT_RING..=MAX_LAYOUT_RING).contains(&cap);
        if !ring_ok(self.command_ring) {
            return Err(ChannelError::Layout(
                "command ring must be a power of two between 4 KiB and 64 MiB",
            ));
        }
        if !ring_ok(self.reply_ring) {
            return Err(ChannelError::Layout(
                "reply ring must be a power of two between 4 KiB and 64 MiB",
            ));
        }
        if !(1..=MAX_REPLY_SLOTS).contains(&self.reply_slots) {
            return Err(ChannelError::Layout(
                "reply slots must be between 1 and 256",
            ));
        }
        if self.total_bytes_unchecked() > MAX_CHANNEL_BYTES {
            return Err(ChannelError::Layout("channel exceeds 256 MiB in total"));
        }
        Ok(())
    }

    /// Total size of the shared memory this layout needs, in bytes.
    pub fn total_bytes(&self) -> Result<usize, ChannelError> {
        self.validate()?;
        usize::try_from(self.total_bytes_unchecked())
            .map_err(|_| ChannelError::Layout("channel does not fit the address space"))
    }

    /// `(offset, len)` of every ring: the command ring first, then the
    /// reply rings in slot order. Only meaningful for a validated layout.
    fn regions(&self) -> impl Iterator<Item = (u64, u64)> {
        let sizes = std::iter::once(self.command_ring)
            .chain(std::iter::repeat_n(
                self.reply_ring,
                self.reply_slots as usize,
            ))
            .map(|cap| RING_HEADER_SIZE as u64 + u64::from(cap));
        sizes.scan(0u64, |offset, len| {
            let here = *offset;
            *offset = here + round_up(len);
            Some((here, len))
        })
    }

    /// u64 arithmetic cannot overflow: at most 257 regions of < 2^33 bytes.
    fn total_bytes_unchecked(&self) -> u64 {
        round_up(RING_HEADER_SIZE as u64 + u64::from(self.command_ring))
            + u64::from(self.reply_slots)
                * round_up(RING_HEADER_SIZE as u64 + u64::from(self.reply_ring))
    }
}

fn round_up(len: u64) -> u64 {
    len.div_ceil(REGION_ALIGN) * REGION_ALIGN
}

/// Errors setting up a channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The layout is outside the accepted bounds.
    #[error("invalid channel layout: {0}")]
    Layout(&'static str),
    /// Creating or mapping the shared memory failed (including a peer fd
    /// that is too small or not sealed).
    #[error("shared memory: {0}")]
    Io(#[from] io::Error),
    /// A ring header is inconsistent with the layout.
    #[error("ring setup: {0}")]
    Ring(#[from] RingError),
}

/// All rings of one client connection, backed by a single memfd.
#[derive(Debug)]
pub struct Channel {
    /// Client → server command stream.
    pub commands: Ring,
    /// Server → client reply streams; slot `i` is waited on by the client
    /// thread that owns it.
    pub replies: Vec<Ring>,
    mem: Arc<SharedMemory>,
    layout: ChannelLayout,
}

impl Channel {
    /// Client side: creates the memfd and initialises every ring.
    pub fn create(layout: ChannelLayout) -> Result<Channel, ChannelError> {
        let total = layout.total_bytes()?;
        let mem = Arc::new(SharedMemory::create("airlock-channel", total)?);
        Self::build(mem, layout, Ring::init)
    }

    /// Server side: maps the client's memfd and attaches to its rings.
    pub fn attach(fd: OwnedFd, layout: ChannelLayout) -> Result<Channel, ChannelError> {
        let total = layout.total_bytes()?;
        let mem = Arc::new(SharedMemory::from_fd(fd, total)?);
        Self::build(mem, layout, Ring::attach)
    }

    fn build(
        mem: Arc<SharedMemory>,
        layout: ChannelLayout,
        make: fn(Arc<SharedMemory>, usize, usize) -> Result<Ring, RingError>,
    ) -> Result<Channel, ChannelError> {
        let mut rings = Vec::with_capacity(layout.reply_slots as usize + 1);
        for (offset, len) in layout.regions() {
            // Both fit in usize: their sum is bounded by `total_bytes`.
            let (offset, len) = (offset as usize, len as usize);
            rings.push(make(Arc::clone(&mem), offset, len)?);
        }
        let mut rings = rings.into_iter();
        let commands = rings
            .next()
            .ok_or(ChannelError::Layout("layout has no command ring"))?;
        Ok(Channel {
            commands,
            replies: rings.collect(),
            mem,
            layout,
        })
    }

    /// The memfd backing all rings, to send to the server.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.mem.fd()
    }

    /// The layout this channel was built with.
    pub fn layout(&self) -> ChannelLayout {
        self.layout
    }
}
