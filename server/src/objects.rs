//! The server's typed tables: client id → host handle, and back.
//!
//! Ids the client names (created objects) are below 2^63; ids the server names for objects the
//! host reports (physical devices, queues) have the top bit set, so the two never collide. A
//! destroyed id is retired and never accepted again in the connection.
//!
//! The ICD numbers its objects 1, 2, 3 … so the table is dense: pages of 4096 slots in a
//! directory indexed by `id / 4096`, each slot going once from free to live to retired. A lookup
//! (every handle of every call) is two loads and no lock: a slot is written once before it is
//! published live, so whoever sees it live sees its entry. Writers (creation, destruction) take
//! one lock. A page whose slots have all been used and retired is dropped and its ids recorded
//! as one retired range, so a pool reset that retires thousands of sets keeps nothing per set.
//! Ids past the directory (a client that numbers sparsely, the server's own) go to a hash map.

use ash::vk;
use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
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

const PAGE_BITS: u32 = 12;
const PAGE: usize = 1 << PAGE_BITS;
/// Pages in the directory: ids below 2^31 are dense (4 MiB of pointers, touched as used).
const PAGES: usize = 1 << 19;
const DENSE_LIMIT: u64 = (PAGES * PAGE) as u64;

const FREE: u8 = 0;
const LIVE: u8 = 1;
const RETIRED: u8 = 2;

struct Slot {
    state: AtomicU8,
    ty: AtomicU64,
    host: AtomicU64,
    owner: AtomicU64,
}

struct Page {
    slots: Box<[Slot]>,
    /// Slots ever bound, and of those the live ones (changed under the writers' lock).
    used: AtomicUsize,
    live: AtomicUsize,
    /// One past the highest slot ever bound: scans stop there.
    end: AtomicUsize,
}

impl Page {
    /// Makes a dropped page free again: every slot free, nothing counted.
    fn clear(&self) {
        for s in self.slots.iter() {
            s.state.store(FREE, Ordering::Relaxed);
        }
        self.used.store(0, Ordering::Relaxed);
        self.live.store(0, Ordering::Relaxed);
        self.end.store(0, Ordering::Relaxed);
    }

    fn new() -> Page {
        // SAFETY: a slot of zeros is a free slot (atomics of zero).
        let slots = unsafe { Box::<[Slot]>::new_zeroed_slice(PAGE).assume_init() };
        Page {
            slots,
            used: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
        }
    }
}

/// What only writers touch.
#[derive(Default)]
struct Writers {
    /// Entries outside the dense range.
    sparse: HashMap<u64, Entry>,
    /// Host object → id, for server-named objects and the families that look objects up by
    /// host handle; not kept for the objects pools allocate, by far the most numerous.
    by_host: HashMap<(i32, u64), u64>,
    /// Retired ids of the sparse range and of dropped pages: start → end (exclusive), merged.
    retired: BTreeMap<u64, u64>,
    /// Objects a pool allocated (command buffers, descriptor sets), by pool id; freed ones are
    /// dropped from the list when it has grown to twice what it held after the last sweep.
    children: HashMap<u64, (Vec<u64>, usize)>,
    live: usize,
    next_server_id: u64,
    /// Dropped pages, cleared, for the next ones: ids are never reused, so a program that
    /// allocates and frees in a loop moves on through the pages, and a fresh page costs a
    /// page fault per 4 KiB.
    spare: Vec<Page>,
}

/// How many dropped pages are kept for reuse.
const SPARE_PAGES: usize = 2;

pub struct Objects {
    dir: Dir,
    /// One past the highest page made, for scans.
    pages: AtomicUsize,
    /// Sparse entries, read under the writers' lock (rare: the server's own ids).
    w: Mutex<Writers>,
}

impl Default for Objects {
    fn default() -> Objects {
        Objects {
            dir: Dir::new(),
            pages: AtomicUsize::new(0),
            w: Mutex::default(),
        }
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        for p in self.dir[..*self.pages.get_mut()].iter() {
            let page = p.swap(std::ptr::null_mut(), Ordering::AcqRel);
            if !page.is_null() && page != closed() {
                // SAFETY: made by Box::into_raw in `page_for`, dropped once.
                drop(unsafe { Box::from_raw(page) });
            }
        }
    }
}

/// The page directory: anonymous memory the kernel zero-fills as it is touched. (A zeroed
/// allocation from malloc is cleared in full once malloc's mmap threshold has grown past it,
/// 4 MiB per server state: most of the cost of a new one in the fuzzer.)
struct Dir {
    slots: std::ptr::NonNull<AtomicPtr<Page>>,
    /// From `mmap`; else from the allocator (where the mapping failed).
    mapped: bool,
}

// SAFETY: the memory is owned by the `Dir` alone; its contents are atomics.
unsafe impl Send for Dir {}
unsafe impl Sync for Dir {}

impl Dir {
    const BYTES: usize = PAGES * std::mem::size_of::<AtomicPtr<Page>>();

    fn new() -> Dir {
        use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
        let rw = ProtFlags::READ | ProtFlags::WRITE;
        // SAFETY: a new private mapping, used only through this `Dir`.
        let mapped =
            unsafe { mmap_anonymous(std::ptr::null_mut(), Self::BYTES, rw, MapFlags::PRIVATE) };
        match mapped.ok().and_then(|p| std::ptr::NonNull::new(p.cast())) {
            Some(slots) => Dir {
                slots,
                mapped: true,
            },
            None => {
                // SAFETY: null pointers are zeros.
                let b = unsafe { Box::<[AtomicPtr<Page>]>::new_zeroed_slice(PAGES).assume_init() };
                let slots = std::ptr::NonNull::new(Box::into_raw(b).cast()).expect("a box");
                Dir {
                    slots,
                    mapped: false,
                }
            }
        }
    }
}

impl std::ops::Deref for Dir {
    type Target = [AtomicPtr<Page>];
    fn deref(&self) -> &[AtomicPtr<Page>] {
        // SAFETY: `PAGES` zero-initialised pointers, alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr(), PAGES) }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let p = self.slots.as_ptr();
        // SAFETY: made in `new` in the way `mapped` says, no longer referenced.
        unsafe {
            if self.mapped {
                let _ = rustix::mm::munmap(p.cast(), Self::BYTES);
            } else {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, PAGES)));
            }
        }
    }
}

/// The directory's mark of a page dropped when all its ids were retired.
fn closed() -> *mut Page {
    std::ptr::NonNull::<Page>::dangling().as_ptr()
}

/// Whether objects of type `ty` are found by host handle too ([`Objects::id_of`]). Descriptor
/// sets and command buffers are not: they are destroyed by id (`DecodedCall::destroyed`), and
/// hashing each would be most of the cost of allocating them.
fn keyed_by_host(ty: vk::ObjectType) -> bool {
    !matches!(
        ty,
        vk::ObjectType::DESCRIPTOR_SET | vk::ObjectType::COMMAND_BUFFER
    )
}

/// Whether objects of type `ty` allocate children that go with them.
fn is_pool(ty: vk::ObjectType) -> bool {
    matches!(
        ty,
        vk::ObjectType::DESCRIPTOR_POOL | vk::ObjectType::COMMAND_POOL
    )
}

/// Adds to a counter only writers change, under their lock.
fn bump(c: &AtomicUsize, n: usize) {
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

fn split(id: u64) -> (usize, usize) {
    ((id >> PAGE_BITS) as usize, (id as usize) & (PAGE - 1))
}

fn retire_range(retired: &mut BTreeMap<u64, u64>, start: u64, end: u64) {
    let (mut s, mut e) = (start, end);
    if let Some((&ps, &pe)) = retired.range(..=s).next_back() {
        if pe >= s {
            s = ps;
            e = e.max(pe);
            retired.remove(&ps);
        }
    }
    while let Some((&ns, &ne)) = retired.range(s..).next() {
        if ns > e {
            break;
        }
        e = e.max(ne);
        retired.remove(&ns);
    }
    retired.insert(s, e);
}

fn is_retired(retired: &BTreeMap<u64, u64>, id: u64) -> bool {
    retired
        .range(..=id)
        .next_back()
        .is_some_and(|(_, &end)| id < end)
}

/// The page of the dense id looked at last: one call's ids (2048 descriptor sets) are
/// neighbours, and the directory is read once per page rather than once per id.
struct Cursor {
    index: usize,
    page: *mut Page,
}

impl Cursor {
    fn new() -> Cursor {
        Cursor {
            index: usize::MAX,
            page: std::ptr::null_mut(),
        }
    }

    /// The directory's entry for page `p`: null, closed or a live page.
    fn page(&mut self, dir: &Dir, p: usize) -> *mut Page {
        if p != self.index {
            self.index = p;
            self.page = dir[p].load(Ordering::Acquire);
        }
        self.page
    }
}

/// The live entry in slot `i` of directory entry `page`.
fn live_in(page: *mut Page, i: usize) -> Option<Entry> {
    if page.is_null() || page == closed() {
        return None;
    }
    // SAFETY: pages are dropped only when all their slots are retired, and only by writers
    // who swap the pointer first; a reader racing with that drop holds an id that was
    // retired, which only a misbehaving client sends. Pages live as long as the `Objects`.
    let slot = unsafe { &(*page).slots[i] };
    if slot.state.load(Ordering::Acquire) != LIVE {
        return None;
    }
    Some(Entry {
        ty: vk::ObjectType::from_raw(slot.ty.load(Ordering::Relaxed) as i32),
        host: HostHandle(slot.host.load(Ordering::Relaxed)),
        owner: HostHandle(slot.owner.load(Ordering::Relaxed)),
    })
}

impl Objects {
    /// The live slot of a dense id, without a lock.
    fn dense(&self, id: u64) -> Option<Entry> {
        let (p, i) = split(id);
        live_in(self.dir[p].load(Ordering::Acquire), i)
    }

    /// Replaces each id of `ids` by its object's host handle (`0` stays `0`): an array of one
    /// call, read with a [`Cursor`]. The first id that is not a live `ty` is the error.
    pub fn lookup_all(&self, ty: vk::ObjectType, ids: &mut [u64]) -> Result<(), DecodeError> {
        let mut cursor = Cursor::new();
        for v in ids.iter_mut() {
            let id = *v;
            if id == 0 {
                continue;
            }
            let e = if id < DENSE_LIMIT {
                let (p, i) = split(id);
                live_in(cursor.page(&self.dir, p), i)
            } else {
                self.get(ClientId(id))
            };
            match e {
                Some(e) if e.ty == ty => *v = e.host.0,
                _ => return Err(DecodeError::UnknownHandle { ty, id }),
            }
        }
        Ok(())
    }

    pub fn get(&self, id: ClientId) -> Option<Entry> {
        if id.0 < DENSE_LIMIT {
            return self.dense(id.0);
        }
        self.w.lock().sparse.get(&id.0).copied()
    }

    /// How many objects are live.
    pub fn count(&self) -> usize {
        self.w.lock().live
    }

    pub fn lookup(&self, ty: vk::ObjectType, id: ClientId) -> Result<Entry, DecodeError> {
        match self.get(id) {
            Some(e) if e.ty == ty => Ok(e),
            _ => Err(DecodeError::UnknownHandle { ty, id: id.0 }),
        }
    }

    pub fn check_new(&self, ty: vk::ObjectType, id: ClientId) -> Result<(), DecodeError> {
        self.check_new_at(&mut Cursor::new(), ty, id.0)
    }

    /// [`Objects::check_new`] of every id of one call's array.
    pub fn check_new_all(&self, ty: vk::ObjectType, ids: &[u64]) -> Result<(), DecodeError> {
        let mut cursor = Cursor::new();
        ids.iter()
            .try_for_each(|&id| self.check_new_at(&mut cursor, ty, id))
    }

    fn check_new_at(
        &self,
        cursor: &mut Cursor,
        ty: vk::ObjectType,
        id: u64,
    ) -> Result<(), DecodeError> {
        let bad = Err(DecodeError::BadNewHandle { ty, id });
        if id == 0 || id >= SERVER_NAMED {
            return bad;
        }
        if id < DENSE_LIMIT {
            let (p, i) = split(id);
            let page = cursor.page(&self.dir, p);
            if page == closed() {
                return bad;
            }
            // SAFETY: as in `dense`.
            if !page.is_null() && unsafe { (*page).slots[i].state.load(Ordering::Acquire) } != FREE
            {
                return bad;
            }
            return Ok(());
        }
        let w = self.w.lock();
        if w.sparse.contains_key(&id) || is_retired(&w.retired, id) {
            return bad;
        }
        Ok(())
    }

    /// The page of dense id `id`, made if need be (writers only).
    fn page_for(&self, w: &mut Writers, id: u64) -> Option<&Page> {
        let (p, _) = split(id);
        let mut page = self.dir[p].load(Ordering::Acquire);
        if page == closed() {
            return None;
        }
        if page.is_null() {
            page = Box::into_raw(Box::new(w.spare.pop().unwrap_or_else(Page::new)));
            self.dir[p].store(page, Ordering::Release);
            self.pages.fetch_max(p + 1, Ordering::AcqRel);
        }
        // SAFETY: a live page, changed only under the writers' lock the caller holds.
        Some(unsafe { &*page })
    }

    #[cfg(test)]
    pub fn bind(&self, ty: vk::ObjectType, id: ClientId, host: HostHandle, owner: HostHandle) {
        self.bind_all([(id, Entry { ty, host, owner })]);
    }

    /// Binds what one call created, under one lock.
    pub fn bind_all(&self, new: impl IntoIterator<Item = (ClientId, Entry)>) {
        let mut w = self.w.lock();
        for (id, e) in new {
            if self.insert(&mut w, id.0, e) {
                if keyed_by_host(e.ty) {
                    w.by_host.insert((e.ty.as_raw(), e.host.0), id.0);
                }
                w.live += 1;
            }
        }
    }

    /// Stores a new entry; false when the id cannot take one (used before).
    fn insert(&self, w: &mut Writers, id: u64, e: Entry) -> bool {
        if id >= DENSE_LIMIT {
            if w.sparse.contains_key(&id) || is_retired(&w.retired, id) {
                return false;
            }
            w.sparse.insert(id, e);
            return true;
        }
        let (_, i) = split(id);
        let Some(page) = self.page_for(w, id) else {
            return false;
        };
        let slot = &page.slots[i];
        if slot.state.load(Ordering::Acquire) != FREE {
            return false;
        }
        slot.ty
            .store(e.ty.as_raw() as u32 as u64, Ordering::Relaxed);
        slot.host.store(e.host.0, Ordering::Relaxed);
        slot.owner.store(e.owner.0, Ordering::Relaxed);
        slot.state.store(LIVE, Ordering::Release);
        // Changed only under the writers' lock: plain loads and stores, no locked operations.
        bump(&page.used, 1);
        bump(&page.live, 1);
        if page.end.load(Ordering::Relaxed) <= i {
            page.end.store(i + 1, Ordering::Relaxed);
        }
        true
    }

    /// Retires a live id (of type `ty`, if given); its entry.
    fn remove(&self, w: &mut Writers, id: u64, ty: Option<vk::ObjectType>) -> Option<Entry> {
        let e = if id >= DENSE_LIMIT {
            if ty.is_some_and(|t| w.sparse.get(&id).is_some_and(|e| e.ty != t)) {
                return None;
            }
            let e = w.sparse.remove(&id)?;
            retire_range(&mut w.retired, id, id + 1);
            e
        } else {
            let (p, i) = split(id);
            let page = self.dir[p].load(Ordering::Acquire);
            if page.is_null() || page == closed() {
                return None;
            }
            // SAFETY: a live page (not closed), under the writers' lock.
            let pg = unsafe { &*page };
            let slot = &pg.slots[i];
            let e = live_in(page, i)?;
            if ty.is_some_and(|t| t != e.ty) {
                return None;
            }
            slot.state.store(RETIRED, Ordering::Release);
            let live = pg.live.load(Ordering::Relaxed) - 1;
            pg.live.store(live, Ordering::Relaxed);
            if live == 0 && pg.used.load(Ordering::Relaxed) == PAGE {
                // Every id of the page used and retired: one range stands for them all.
                self.dir[p].store(closed(), Ordering::Release);
                let start = (p as u64) << PAGE_BITS;
                retire_range(&mut w.retired, start, start + PAGE as u64);
                // SAFETY: unpublished above; lookups of its ids are of retired ids.
                let page = unsafe { Box::from_raw(page) };
                if w.spare.len() < SPARE_PAGES {
                    page.clear();
                    w.spare.push(*page);
                }
            }
            e
        };
        if keyed_by_host(e.ty) && w.by_host.get(&(e.ty.as_raw(), e.host.0)) == Some(&id) {
            w.by_host.remove(&(e.ty.as_raw(), e.host.0));
        }
        w.live -= 1;
        Some(e)
    }

    /// The id of a host object the server reports, naming it on first sight.
    pub fn id_for_host(&self, ty: vk::ObjectType, host: HostHandle, owner: HostHandle) -> ClientId {
        if host.0 == 0 {
            return ClientId(0);
        }
        let key = (ty.as_raw(), host.0);
        let mut w = self.w.lock();
        if let Some(&id) = w.by_host.get(&key) {
            return ClientId(id);
        }
        w.next_server_id += 1;
        let id = SERVER_NAMED | w.next_server_id;
        w.sparse.insert(id, Entry { ty, host, owner });
        w.by_host.insert(key, id);
        w.live += 1;
        ClientId(id)
    }

    pub fn id_of(&self, ty: vk::ObjectType, host: HostHandle) -> Option<ClientId> {
        debug_assert!(keyed_by_host(ty), "{ty:?} is not found by host handle");
        let w = self.w.lock();
        w.by_host
            .get(&(ty.as_raw(), host.0))
            .map(|id| ClientId(*id))
    }

    pub fn unbind(&self, id: ClientId) -> Option<Entry> {
        let mut w = self.w.lock();
        self.unbind_locked(&mut w, id.0)
    }

    fn unbind_locked(&self, w: &mut Writers, id: u64) -> Option<Entry> {
        let ty = if id < DENSE_LIMIT {
            self.dense(id)?.ty
        } else {
            w.sparse.get(&id)?.ty
        };
        self.unbind_typed(w, id, ty)
    }

    /// [`Objects::unbind_locked`] of a live id of type `ty`.
    fn unbind_typed(&self, w: &mut Writers, id: u64, ty: vk::ObjectType) -> Option<Entry> {
        if is_pool(ty) {
            if let Some((children, _)) = w.children.remove(&id) {
                for child in children {
                    self.remove(w, child, None);
                }
            }
        }
        self.remove(w, id, None)
    }

    /// Unbinds the objects of type `ty` that `ids` name (a destruction: `0` for a null
    /// handle), under one lock, and tells `gone` each id unbound; those that are gone or of
    /// another type are skipped.
    pub fn unbind_ids(&self, ty: vk::ObjectType, ids: &[u64], mut gone: impl FnMut(ClientId)) {
        let mut w = self.w.lock();
        for &id in ids {
            if id == 0 {
                continue;
            }
            let unbound = if is_pool(ty) {
                let live = if id < DENSE_LIMIT {
                    self.dense(id)
                } else {
                    w.sparse.get(&id).copied()
                };
                live.is_some_and(|e| e.ty == ty) && self.unbind_typed(&mut w, id, ty).is_some()
            } else {
                self.remove(&mut w, id, Some(ty)).is_some()
            };
            if unbound {
                gone(ClientId(id));
            }
        }
    }

    /// Records that `child` was allocated from pool `pool`.
    #[cfg(test)]
    pub fn adopt(&self, pool: ClientId, child: ClientId) {
        self.adopt_all(pool, &[child.0]);
    }

    /// Records that `children` were allocated from pool `pool`, under one lock.
    pub fn adopt_all(&self, pool: ClientId, children: &[u64]) {
        let mut w = self.w.lock();
        let (list, swept) = w.children.entry(pool.0).or_default();
        list.extend_from_slice(children);
        if list.len() > 64 && list.len() > 2 * *swept {
            let mut list = std::mem::take(list);
            let mut cursor = Cursor::new();
            list.retain(|&c| {
                if c < DENSE_LIMIT {
                    let (p, i) = split(c);
                    live_in(cursor.page(&self.dir, p), i).is_some()
                } else {
                    w.sparse.contains_key(&c)
                }
            });
            let n = list.len();
            w.children.insert(pool.0, (list, n));
        }
    }

    /// The live objects pool `pool` allocated.
    pub fn children_of(&self, pool: ClientId) -> Vec<Entry> {
        let list = self
            .w
            .lock()
            .children
            .get(&pool.0)
            .map(|(c, _)| c.clone())
            .unwrap_or_default();
        list.iter()
            .filter_map(|id| self.get(ClientId(*id)))
            .collect()
    }

    /// Unbinds what pool `pool` allocated (`vkResetDescriptorPool`).
    pub fn unbind_children(&self, pool: ClientId) {
        let mut w = self.w.lock();
        if let Some((children, _)) = w.children.remove(&pool.0) {
            for child in children {
                self.remove(&mut w, child, None);
            }
        }
    }

    /// Every live id with its entry.
    fn live(&self, w: &Writers) -> Vec<(ClientId, Entry)> {
        let mut out: Vec<(ClientId, Entry)> =
            w.sparse.iter().map(|(k, v)| (ClientId(*k), *v)).collect();
        let made = self.pages.load(Ordering::Acquire);
        for (p, ptr) in self.dir[..made].iter().enumerate() {
            let page = ptr.load(Ordering::Acquire);
            if page.is_null() || page == closed() {
                continue;
            }
            // SAFETY: a live page, under the writers' lock the caller holds.
            let end = unsafe { &*page }.end.load(Ordering::Relaxed);
            for i in 0..end {
                let id = ((p as u64) << PAGE_BITS) | i as u64;
                if let Some(e) = self.dense(id) {
                    out.push((ClientId(id), e));
                }
            }
        }
        out
    }

    /// Removes every object served by `owner` (the children of a destroyed instance or device).
    pub fn unbind_owned_by(&self, owner: HostHandle) -> Vec<(ClientId, Entry)> {
        let mut w = self.w.lock();
        let mine: Vec<(ClientId, Entry)> = self
            .live(&w)
            .into_iter()
            .filter(|(_, e)| e.owner == owner)
            .collect();
        for (id, _) in &mine {
            self.remove(&mut w, id.0, None);
        }
        mine
    }

    /// Every live object, for cleanup when the client goes away.
    pub fn all(&self) -> Vec<(ClientId, Entry)> {
        let w = self.w.lock();
        self.live(&w)
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
    fn decode_handles(
        &self,
        ty: vk::ObjectType,
        _dispatchable: bool,
        ids: &mut [u64],
    ) -> Result<(), DecodeError> {
        self.objects.lookup_all(ty, ids)
    }
}

impl ServerObjects for CallObjects<'_> {
    fn check_new(&self, ty: vk::ObjectType, id: u64) -> Result<(), DecodeError> {
        self.objects.check_new(ty, ClientId(id))
    }
    fn check_new_all(&self, ty: vk::ObjectType, ids: &[u64]) -> Result<(), DecodeError> {
        self.objects.check_new_all(ty, ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_typed_unique_and_never_reused() {
        let o = Objects::default();
        let t = vk::ObjectType::BUFFER;
        for id in [5, DENSE_LIMIT + 5] {
            let five = ClientId(id);
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
            assert_eq!(o.id_of(t, HostHandle(0xabc)), Some(five));
            o.unbind(five).unwrap();
            assert!(o.lookup(t, five).is_err());
            assert!(o.check_new(t, five).is_err(), "retired id");
            assert_eq!(o.count(), 0);
        }
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

    #[test]
    fn a_retired_page_becomes_one_range_and_refuses_its_ids() {
        let o = Objects::default();
        let t = vk::ObjectType::DESCRIPTOR_SET;
        let pool = ClientId(1);
        o.bind(
            vk::ObjectType::DESCRIPTOR_POOL,
            pool,
            HostHandle(1),
            HostHandle(9),
        );
        // Ids 4096..8192: one whole page, allocated from the pool, then the pool reset.
        for id in PAGE as u64..2 * PAGE as u64 {
            o.bind(t, ClientId(id), HostHandle(0x10_0000 + id), HostHandle(9));
            o.adopt(pool, ClientId(id));
        }
        assert_eq!(o.children_of(pool).len(), PAGE);
        o.unbind_children(pool);
        assert_eq!(
            o.dir[1].load(Ordering::Acquire),
            closed(),
            "the page was dropped"
        );
        assert_eq!(o.w.lock().retired.len(), 1);
        for id in [PAGE as u64, PAGE as u64 + 77, 2 * PAGE as u64 - 1] {
            assert!(o.check_new(t, ClientId(id)).is_err(), "{id} reused");
            assert!(o.get(ClientId(id)).is_none());
        }
        assert!(o.check_new(t, ClientId(2 * PAGE as u64)).is_ok());
        assert_eq!(o.count(), 1);
    }

    #[test]
    fn arrays_are_checked_looked_up_and_unbound_like_single_ids() {
        let o = Objects::default();
        let set = vk::ObjectType::DESCRIPTOR_SET;
        // Across a page boundary, with a sparse id among them.
        let ids: Vec<u64> = (PAGE as u64 - 3..PAGE as u64 + 3)
            .chain([DENSE_LIMIT + 9])
            .collect();
        o.check_new_all(set, &ids).unwrap();
        for &id in &ids {
            o.bind(set, ClientId(id), HostHandle(id ^ 0xf00), HostHandle(9));
        }
        assert!(
            o.check_new_all(set, &[ids[0] - 1, ids[3]]).is_err(),
            "a live id"
        );
        let mut looked = ids.clone();
        looked.insert(2, 0);
        o.lookup_all(set, &mut looked).unwrap();
        assert_eq!(looked[2], 0, "a null handle stays null");
        looked.remove(2);
        assert!(ids.iter().zip(&looked).all(|(i, h)| *h == i ^ 0xf00));
        let wrong = [ids[0], ids[1]];
        assert!(matches!(
            o.lookup_all(vk::ObjectType::BUFFER, &mut wrong.clone()),
            Err(DecodeError::UnknownHandle { id, .. }) if id == ids[0]
        ));
        assert!(o.lookup_all(set, &mut [ids[0], 77]).is_err(), "unknown id");
        // A destruction of the wrong type unbinds nothing; of the right one, each id once.
        let mut gone = Vec::new();
        o.unbind_ids(vk::ObjectType::BUFFER, &ids, |id| gone.push(id.0));
        assert!(gone.is_empty());
        o.unbind_ids(set, &[ids[0], 0, ids[0], ids[6]], |id| gone.push(id.0));
        assert_eq!(gone, vec![ids[0], ids[6]]);
        assert!(o.lookup_all(set, &mut [ids[0]]).is_err());
        assert!(o.lookup_all(set, &mut [ids[6]]).is_err());
        assert!(o.check_new_all(set, &[ids[0]]).is_err(), "retired");
        assert!(o.check_new_all(set, &[ids[6]]).is_err(), "retired sparse");
        assert_eq!(o.count(), ids.len() - 2);
    }

    #[test]
    fn retired_ranges_merge() {
        let mut r = BTreeMap::new();
        retire_range(&mut r, 10, 20);
        retire_range(&mut r, 30, 40);
        retire_range(&mut r, 20, 30);
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec![(10, 40)]);
    }

    #[test]
    fn freed_children_do_not_pile_up() {
        let o = Objects::default();
        let pool = ClientId(1);
        o.bind(
            vk::ObjectType::DESCRIPTOR_POOL,
            pool,
            HostHandle(1),
            HostHandle(9),
        );
        for id in 2..10_000u64 {
            o.bind(
                vk::ObjectType::DESCRIPTOR_SET,
                ClientId(id),
                HostHandle(id),
                HostHandle(9),
            );
            o.adopt(pool, ClientId(id));
            o.unbind(ClientId(id));
        }
        assert!(o.w.lock().children[&1].0.len() <= 200);
    }
}
