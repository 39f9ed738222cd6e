//! The server's typed tables: client id → host handle, and back.
//!
//! Ids the client names (created objects) are below 2^63; ids the server names for objects the
//! host reports (physical devices, queues) have the top bit set, so the two never collide. A
//! destroyed id is retired and never accepted again in the connection.

use ash::vk;
use parking_lot::RwLock;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use wire::codec::DecodeError;
use wire::interp::{Handles, ServerObjects};

use wire::interp::SERVER_NAMED;

/// An id the client gave an object, or the server named a host object by: what travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(pub u64);

/// A handle of the host driver's: what the host is called with. Never travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostHandle(pub u64);

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub ty: vk::ObjectType,
    pub host: HostHandle,
    /// The host instance or device whose dispatch table serves this object.
    pub owner: HostHandle,
}

// FxHash, not SipHash: ids are hashed several times per created or destroyed object, and a pool
// reset retires thousands. Only the client chooses ids, so colliding ones slow its own server.
#[derive(Default)]
struct Tables {
    by_id: HashMap<u64, Entry>,
    by_host: HashMap<(i32, u64), u64>,
    retired: HashSet<u64>,
    /// Objects a pool allocated (command buffers, descriptor sets), by pool id.
    children: HashMap<u64, Vec<u64>>,
    next_server_id: u64,
}

impl Tables {
    fn unbind(&mut self, id: u64) -> Option<Entry> {
        let e = self.by_id.remove(&id)?;
        self.by_host.remove(&(e.ty.as_raw(), e.host.0));
        self.retired.insert(id);
        Some(e)
    }
}

#[derive(Default)]
pub struct Objects {
    t: RwLock<Tables>,
}

impl Objects {
    pub fn get(&self, id: ClientId) -> Option<Entry> {
        self.t.read().by_id.get(&id.0).copied()
    }

    /// How many objects are live.
    pub fn count(&self) -> usize {
        self.t.read().by_id.len()
    }

    pub fn lookup(&self, ty: vk::ObjectType, id: ClientId) -> Result<Entry, DecodeError> {
        match self.get(id) {
            Some(e) if e.ty == ty => Ok(e),
            _ => Err(DecodeError::UnknownHandle { ty, id: id.0 }),
        }
    }

    pub fn check_new(&self, ty: vk::ObjectType, id: ClientId) -> Result<(), DecodeError> {
        let t = self.t.read();
        let id = id.0;
        if id == 0 || id >= SERVER_NAMED || t.by_id.contains_key(&id) || t.retired.contains(&id) {
            return Err(DecodeError::BadNewHandle { ty, id });
        }
        Ok(())
    }

    pub fn bind(&self, ty: vk::ObjectType, id: ClientId, host: HostHandle, owner: HostHandle) {
        let mut t = self.t.write();
        t.by_id.insert(id.0, Entry { ty, host, owner });
        t.by_host.insert((ty.as_raw(), host.0), id.0);
    }

    /// The id of a host object the server reports, naming it on first sight.
    pub fn id_for_host(&self, ty: vk::ObjectType, host: HostHandle, owner: HostHandle) -> ClientId {
        if host.0 == 0 {
            return ClientId(0);
        }
        let key = (ty.as_raw(), host.0);
        if let Some(&id) = self.t.read().by_host.get(&key) {
            return ClientId(id);
        }
        let mut t = self.t.write();
        if let Some(&id) = t.by_host.get(&key) {
            return ClientId(id);
        }
        t.next_server_id += 1;
        let id = SERVER_NAMED | t.next_server_id;
        t.by_id.insert(id, Entry { ty, host, owner });
        t.by_host.insert(key, id);
        ClientId(id)
    }

    pub fn id_of(&self, ty: vk::ObjectType, host: HostHandle) -> Option<ClientId> {
        let t = self.t.read();
        t.by_host
            .get(&(ty.as_raw(), host.0))
            .map(|id| ClientId(*id))
    }

    pub fn unbind(&self, id: ClientId) -> Option<Entry> {
        let mut t = self.t.write();
        for child in t.children.remove(&id.0).unwrap_or_default() {
            t.unbind(child);
        }
        t.unbind(id.0)
    }

    /// Records that `child` was allocated from pool `pool`.
    pub fn adopt(&self, pool: ClientId, child: ClientId) {
        self.t
            .write()
            .children
            .entry(pool.0)
            .or_default()
            .push(child.0);
    }

    /// The live objects pool `pool` allocated.
    pub fn children_of(&self, pool: ClientId) -> Vec<Entry> {
        let t = self.t.read();
        t.children
            .get(&pool.0)
            .map(|c| c.iter().filter_map(|id| t.by_id.get(id).copied()).collect())
            .unwrap_or_default()
    }

    /// Unbinds what pool `pool` allocated (`vkResetDescriptorPool`).
    pub fn unbind_children(&self, pool: ClientId) {
        let mut t = self.t.write();
        for child in t.children.remove(&pool.0).unwrap_or_default() {
            t.unbind(child);
        }
    }

    /// Removes every object served by `owner` (the children of a destroyed instance or device).
    pub fn unbind_owned_by(&self, owner: HostHandle) -> Vec<(ClientId, Entry)> {
        let mut t = self.t.write();
        let ids: Vec<u64> = t
            .by_id
            .iter()
            .filter(|(_, e)| e.owner == owner)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = t.by_id.remove(&id) {
                t.by_host.remove(&(e.ty.as_raw(), e.host.0));
                t.retired.insert(id);
                out.push((ClientId(id), e));
            }
        }
        out
    }

    /// Every live object, for cleanup when the client goes away.
    pub fn all(&self) -> Vec<(ClientId, Entry)> {
        let t = self.t.read();
        t.by_id.iter().map(|(k, v)| (ClientId(*k), *v)).collect()
    }
}

/// The handle view of one call: ids travel, host handles are stored; objects the host reports
/// during the call are owned by `owner`.
pub struct CallObjects<'a> {
    pub objects: &'a Objects,
    pub owner: HostHandle,
}

impl Handles for CallObjects<'_> {
    fn encode_handle(
        &self,
        ty: vk::ObjectType,
        _dispatchable: bool,
        raw: u64,
    ) -> Result<u64, DecodeError> {
        Ok(self.objects.id_for_host(ty, HostHandle(raw), self.owner).0)
    }
    fn decode_handle(
        &self,
        ty: vk::ObjectType,
        _dispatchable: bool,
        id: u64,
    ) -> Result<u64, DecodeError> {
        if id == 0 {
            return Ok(0);
        }
        Ok(self.objects.lookup(ty, ClientId(id))?.host.0)
    }
}

impl ServerObjects for CallObjects<'_> {
    fn check_new(&self, ty: vk::ObjectType, id: u64) -> Result<(), DecodeError> {
        self.objects.check_new(ty, ClientId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_typed_unique_and_never_reused() {
        let o = Objects::default();
        let t = vk::ObjectType::BUFFER;
        let five = ClientId(5);
        assert!(o.check_new(t, ClientId(0)).is_err());
        assert!(o.check_new(t, ClientId(SERVER_NAMED | 1)).is_err());
        o.check_new(t, five).unwrap();
        o.bind(t, five, HostHandle(0xabc), HostHandle(1));
        assert!(o.check_new(t, five).is_err(), "duplicate id");
        assert_eq!(o.lookup(t, five).unwrap().host, HostHandle(0xabc));
        assert!(
            matches!(
                o.lookup(vk::ObjectType::IMAGE, five),
                Err(DecodeError::UnknownHandle { .. })
            ),
            "type mismatch"
        );
        o.unbind(five).unwrap();
        assert!(o.lookup(t, five).is_err());
        assert!(o.check_new(t, five).is_err(), "retired id");
    }

    #[test]
    fn host_objects_get_stable_server_ids() {
        let o = Objects::default();
        let pd = vk::ObjectType::PHYSICAL_DEVICE;
        let owner = HostHandle(7);
        let a = o.id_for_host(pd, HostHandle(0x1000), owner);
        assert_eq!(a, o.id_for_host(pd, HostHandle(0x1000), owner));
        assert_ne!(a, o.id_for_host(pd, HostHandle(0x2000), owner));
        assert!(a.0 & SERVER_NAMED != 0);
        assert_eq!(o.id_for_host(pd, HostHandle(0), owner), ClientId(0));
        assert_eq!(o.unbind_owned_by(owner).len(), 2);
        assert!(o.lookup(pd, a).is_err());
    }
}
