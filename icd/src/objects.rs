//! Client-side objects: ids for everything the application creates, and the dispatchable
//! wrappers the Vulkan loader requires.

use crate::conn::Connection;
use ash::vk;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wire::codec::DecodeError;
use wire::desc::Level;
use wire::ignored::Facts;
use wire::interp::{ClientObjects, Handles, SERVER_NAMED};

/// What the loader expects in the first word of a dispatchable object until it stores its own
/// dispatch table pointer there.
pub const ICD_LOADER_MAGIC: usize = 0x01CD_C0DE;

/// A dispatchable handle (instance, physical device, device, queue, command buffer).
#[repr(C)]
pub struct Dispatchable {
    loader_data: usize,
    pub id: u64,
    conn: *const Connection,
    /// Commands recorded and not yet shipped (command buffers only).
    pub(crate) rec: std::cell::UnsafeCell<crate::command_buffer::Recording>,
}

impl Dispatchable {
    /// A new wrapper holding a reference to `conn`; the handle the application sees.
    pub fn create(id: u64, conn: &Arc<Connection>) -> u64 {
        let d = Box::new(Dispatchable {
            loader_data: ICD_LOADER_MAGIC,
            id,
            conn: Arc::into_raw(Arc::clone(conn)),
            rec: Default::default(),
        });
        Box::into_raw(d) as u64
    }

    /// The connection an object was created on.
    ///
    /// # Safety
    /// `handle` must be a live wrapper made by [`Dispatchable::create`].
    pub unsafe fn conn(handle: u64) -> Arc<Connection> {
        let d = &*(handle as *const Dispatchable);
        Arc::increment_strong_count(d.conn);
        Arc::from_raw(d.conn)
    }

    /// The connection an object was created on, borrowed for as long as the object lives.
    ///
    /// # Safety
    /// `handle` must be a live wrapper made by [`Dispatchable::create`].
    pub unsafe fn conn_borrowed(handle: u64) -> std::mem::ManuallyDrop<Arc<Connection>> {
        // The wrapper owns one count; this view neither takes nor gives one back.
        std::mem::ManuallyDrop::new(Arc::from_raw((*(handle as *const Dispatchable)).conn))
    }

    /// # Safety
    /// `handle` must be a live wrapper made by [`Dispatchable::create`], used by nobody after this.
    pub unsafe fn free(handle: u64) {
        let d = Box::from_raw(handle as *mut Dispatchable);
        drop(Arc::from_raw(d.conn));
        crate::private_data::forget_dispatchable(handle);
    }

    /// # Safety
    /// `handle` must be null or a live wrapper.
    pub unsafe fn id_of(handle: u64) -> u64 {
        if handle == 0 {
            0
        } else {
            (*(handle as *const Dispatchable)).id
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id; ids are never reused in the process.
pub fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The handle view of one call on the client.
pub struct ClientCx<'a> {
    pub conn: &'a Arc<Connection>,
    /// The first argument: the object the call is made on.
    pub parent: u64,
    pub level: Level,
}

impl Handles for ClientCx<'_> {
    fn encode_handle(
        &self,
        _ty: vk::ObjectType,
        dispatchable: bool,
        raw: u64,
    ) -> Result<u64, DecodeError> {
        // SAFETY: the application passes live handles, as Vulkan requires.
        Ok(if dispatchable {
            unsafe { Dispatchable::id_of(raw) }
        } else {
            raw
        })
    }

    fn decode_handle(
        &self,
        ty: vk::ObjectType,
        dispatchable: bool,
        id: u64,
    ) -> Result<u64, DecodeError> {
        if !dispatchable || id == 0 {
            return Ok(id);
        }
        // An object the server reports: one wrapper per id, remembered with its parent so that
        // destroying the parent frees it. The server is not trusted with the wrappers: only the
        // kinds it may report, only under its own ids (never one of ours), and an id keeps its
        // kind (a queue named with a physical device's id would have the loader write a device
        // dispatch table into the physical device).
        if !server_may_name(ty) || id & SERVER_NAMED == 0 {
            return Err(DecodeError::UnknownHandle { ty, id });
        }
        let mut named = self.conn.named.lock();
        let parent_id = if self.level == Level::Global {
            0
        } else {
            unsafe { Dispatchable::id_of(self.parent) }
        };
        let entry = named
            .entry(id)
            .or_insert_with(|| (Dispatchable::create(id, self.conn) as usize, parent_id, ty));
        if entry.2 != ty {
            return Err(DecodeError::UnknownHandle { ty, id });
        }
        Ok(entry.0 as u64)
    }

    fn facts(&self) -> Option<&dyn Facts> {
        Some(self)
    }
}

/// What the encoder's ignored-member rules ask of the application's objects.
impl Facts for ClientCx<'_> {
    fn is_primary(&self, command_buffer: u64) -> bool {
        // SAFETY: the application's command buffer, live while it records or begins.
        command_buffer != 0 && unsafe { crate::command_buffer::is_primary(command_buffer) }
    }

    fn set_binding_immutable(&self, set: u64, binding: u32) -> bool {
        self.conn.immutable.lock().set_binding(set, binding)
    }

    fn layout_binding_immutable(&self, layout: u64, set: u32, binding: u32) -> bool {
        self.conn
            .immutable
            .lock()
            .layout_binding(layout, set, binding)
    }
}

impl ClientObjects for ClientCx<'_> {
    fn new_id(&self) -> u64 {
        new_id()
    }

    fn wrap_new(&self, _ty: vk::ObjectType, dispatchable: bool, id: u64) -> u64 {
        if dispatchable {
            Dispatchable::create(id, self.conn)
        } else {
            id
        }
    }
}

/// The dispatchable objects the host reports rather than the application creates.
fn server_may_name(ty: vk::ObjectType) -> bool {
    matches!(ty, vk::ObjectType::PHYSICAL_DEVICE | vk::ObjectType::QUEUE)
}

/// Wrappers of the dispatchable objects the server named: id → (handle, parent id, kind).
pub type Named = std::collections::HashMap<u64, (usize, u64, vk::ObjectType)>;

/// Frees the wrappers of server-named objects whose parent was `parent_id`.
pub fn free_children(conn: &Connection, parent_id: u64) {
    let mut named = conn.named.lock();
    named.retain(|_, (handle, parent, _)| {
        if *parent == parent_id {
            // SAFETY: the parent is destroyed, so its children are unused.
            unsafe { Dispatchable::free(*handle as u64) };
            false
        } else {
            true
        }
    });
}
