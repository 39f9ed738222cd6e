//! Client-side objects: the ids the client gives everything the application creates, and the
//! wrappers the Vulkan loader requires for dispatchable objects.
//!
//! A wrapper holds what the ICD keeps for its object, and drops it with the object: its
//! family's own state (`Object::state`: a command buffer's recording), what other families keep
//! for it (`Header::families`: a device's mappings, command pools, templates …), and the
//! wrappers the server named under it (an instance's physical devices, a device's queues).
//! Destroying an instance or a device therefore releases everything it owned, without a scan.

use crate::conn::Connection;
use ash::vk;
use parking_lot::Mutex;
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wire::codec::DecodeError;
use wire::desc::Level;
use wire::ignored::Facts;
use wire::interp::{ClientObjects, Handles, SERVER_NAMED};

/// What the loader expects in the first word of a dispatchable object until it stores its own
/// dispatch table pointer there.
pub const ICD_LOADER_MAGIC: usize = 0x01CD_C0DE;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id; ids are never reused in the process.
pub fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The part every dispatchable wrapper begins with.
#[repr(C)]
pub struct Header {
    loader_data: usize,
    pub id: u64,
    conn: Arc<Connection>,
    /// The wrapper of the object this one was made from (a physical device's instance, a
    /// device's physical device, a queue's or command buffer's device), or 0.
    pub parent: u64,
    /// Wrappers the server named under this object, by id: handle and kind.
    named: Mutex<HashMap<u64, (u64, vk::ObjectType)>>,
    /// What the families keep for this object.
    pub families: Families,
}

/// A dispatchable object: the loader's header, then its family's state.
#[repr(C)]
pub struct Object<S> {
    pub header: Header,
    pub state: S,
}

impl<S> Object<S> {
    /// A new wrapper; the handle the application sees.
    pub fn create(id: u64, conn: &Arc<Connection>, parent: u64, state: S) -> u64 {
        let o = Box::new(Object {
            header: Header {
                loader_data: ICD_LOADER_MAGIC,
                id,
                conn: Arc::clone(conn),
                parent,
                named: Mutex::default(),
                families: Families::default(),
            },
            state,
        });
        Box::into_raw(o) as u64
    }

    /// # Safety
    /// `handle` must be a live wrapper made by `Object::<S>::create`.
    pub unsafe fn get<'a>(handle: u64) -> &'a Object<S> {
        &*(handle as *const Object<S>)
    }

    /// Frees the wrapper and everything it holds.
    ///
    /// # Safety
    /// `handle` must be a live wrapper made by `Object::<S>::create`, used by nobody after this.
    pub unsafe fn free(handle: u64) {
        drop(Box::from_raw(handle as *mut Object<S>));
    }
}

/// The header of any dispatchable handle.
///
/// # Safety
/// `handle` must be a live wrapper.
pub unsafe fn header<'a>(handle: u64) -> &'a Header {
    &*(handle as *const Header)
}

/// The id behind a dispatchable handle (0 for NULL).
///
/// # Safety
/// `handle` must be NULL or a live wrapper.
pub unsafe fn id_of(handle: u64) -> u64 {
    if handle == 0 {
        0
    } else {
        header(handle).id
    }
}

impl Header {
    /// The connection the object was created on.
    pub fn conn(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// The wrapper of the object the server named `id` (of kind `ty`) under this one, made on
    /// first sight. An id keeps its kind.
    fn named(&self, ty: vk::ObjectType, id: u64) -> Option<u64> {
        let mut named = self.named.lock();
        let parent = self as *const Header as u64;
        let (h, kind) = *named
            .entry(id)
            .or_insert_with(|| (Object::create(id, &self.conn, parent, ()), ty));
        (kind == ty).then_some(h)
    }

    /// A wrapper of the ICD's own under this object, for what the server can no longer name
    /// (a queue asked for once the server is gone); freed with this object.
    pub fn adopt_unnamed(&self, ty: vk::ObjectType) -> u64 {
        let id = new_id();
        let h = Object::create(id, &self.conn, self as *const Header as u64, ());
        self.named.lock().insert(id, (h, ty));
        h
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        for (h, _) in self.named.get_mut().values() {
            // SAFETY: wrappers named under this object, which goes; nobody uses them after it.
            unsafe { Object::<()>::free(*h) };
        }
        crate::private_data::forget_dispatchable(self as *const Header as u64);
    }
}

/// What the families keep for one object, by type: made on first use, dropped with it.
#[derive(Default)]
pub struct Families(Mutex<Vec<Box<dyn Any + Send + Sync>>>);

impl Families {
    /// The `T` kept for the object.
    pub fn get<T: Default + Send + Sync + 'static>(&self) -> &T {
        let mut all = self.0.lock();
        let p: *const T = match all.iter().find_map(|b| b.downcast_ref::<T>()) {
            Some(t) => t,
            None => {
                all.push(Box::new(T::default()));
                all.last()
                    .and_then(|b| b.downcast_ref::<T>())
                    .expect("just added")
            }
        };
        // SAFETY: boxed values stay where they are until the object (and `self`) is dropped.
        unsafe { &*p }
    }
}

/// Facts for a call whose family has none to give: every rule that needs one holds false.
pub struct NoFacts;

impl Facts for NoFacts {
    fn is_primary(&self, _: u64) -> bool {
        false
    }
    fn set_binding_immutable(&self, _: u64, _: u32) -> bool {
        false
    }
    fn layout_binding_immutable(&self, _: u64, _: u32, _: u32) -> bool {
        false
    }
}

/// The handle view of one call on the client.
pub struct ClientCx<'a> {
    /// The first argument: the object the call is made on.
    pub parent: u64,
    pub level: Level,
    /// What the call's family knows of the objects, for the encoder's ignored-member rules.
    pub facts: &'a dyn Facts,
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
            unsafe { id_of(raw) }
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
        // An object the server reports, named under the object the call was made on. The
        // server is not trusted with the wrappers: only the kinds it may report, only under its
        // own ids (never one of ours), and an id keeps its kind (a queue named with a physical
        // device's id would have the loader write a device dispatch table into it).
        if !server_may_name(ty) || id & SERVER_NAMED == 0 || self.level == Level::Global {
            return Err(DecodeError::UnknownHandle { ty, id });
        }
        // SAFETY: the first argument of a non-global call is a live wrapper.
        unsafe { header(self.parent) }
            .named(ty, id)
            .ok_or(DecodeError::UnknownHandle { ty, id })
    }

    fn facts(&self) -> Option<&dyn Facts> {
        Some(self.facts)
    }
}

impl ClientObjects for ClientCx<'_> {
    fn new_id(&self) -> u64 {
        new_id()
    }

    /// Dispatchable objects the application creates (instances, devices, command buffers) come
    /// back as their ids: their families' entry points wrap them with their state.
    fn wrap_new(&self, _ty: vk::ObjectType, _dispatchable: bool, id: u64) -> u64 {
        id
    }
}

/// The dispatchable objects the host reports rather than the application creates.
fn server_may_name(ty: vk::ObjectType) -> bool {
    matches!(ty, vk::ObjectType::PHYSICAL_DEVICE | vk::ObjectType::QUEUE)
}
