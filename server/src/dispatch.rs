//! Executes one decoded command against the host driver.
//!
//! Almost every command takes the generic path: decode the request into an arena, resolve the
//! host's function through the dispatch table of the object it is called on, call it, bind the
//! objects it created, encode the reply. The few decisions Airlock makes itself (which
//! extensions the client sees, the driver identity, dispatch tables) are hooks around it here.

use crate::deferred::Deferred;
use crate::generated::calls;
use crate::host::HostDriver;
use crate::indices;
use crate::limits::{Limits, MAX_LAYOUT_DESCRIPTORS};
use crate::memory::{self, Backing, Memory};
use crate::objects::{CallObjects, Objects};
use crate::validation;
use ash::vk;
use bumpalo::Bump;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, CStr, CString};
use std::sync::{Arc, OnceLock};
use thiserror::Error;
use wire::codec::{DecodeError, Decoder, Encoder};
use wire::desc::{CommandDesc, Kind, Level, Ret, Ty};
use wire::generated::commands::{id, COMMANDS, EXTENSIONS};
use wire::interp;

mod external;

#[derive(Debug, Error)]
pub enum ExecError {
    #[error("{cmd}: {err}")]
    Decode { cmd: &'static str, err: DecodeError },
    #[error("{0}: the host driver does not provide it")]
    Unsupported(&'static str),
    /// A recorded command the validation layer refused (`AIRLOCK_VALIDATE=1`).
    #[error("{0}: refused by the validation layer")]
    Refused(&'static str),
}

type Pfn = unsafe extern "system" fn();

/// The host functions of one instance or device, resolved on first use.
struct Table {
    instance: vk::Instance,
    device: Option<(vk::Device, vk::PFN_vkGetDeviceProcAddr)>,
    fns: Vec<OnceLock<Option<Pfn>>>,
}

pub struct Server {
    pub host: HostDriver,
    pub objects: Objects,
    /// Extensions both sides carry: name → the lower spec version.
    pub carried: HashMap<String, u32>,
    tables: RwLock<HashMap<u64, Arc<Table>>>,
    /// Shared memory behind host-visible allocations.
    pub memory: Memory,
    /// Pipeline layouts whose destruction waits for recordings to end.
    deferred: Deferred,
    /// Host command buffers whose recording could not be decoded; submitting them fails.
    pub broken: Mutex<HashSet<u64>>,
    /// What this client may hold: device memory, live objects.
    pub limits: Limits,
    /// Host semaphores created as timeline semaphores. The host driver trusts the client to
    /// pass only those to the timeline calls (lavapipe calls through a null function pointer on
    /// a binary one: found by the server_stream fuzzer); the server checks.
    pub timeline: Mutex<HashSet<u64>>,
    /// Under `AIRLOCK_VALIDATE=1`: each host instance's gating messenger (`validation.rs`).
    messengers: Mutex<HashMap<u64, u64>>,
}

/// `vkDestroy*(device, object, allocator)` and `vkFreeMemory`.
type DestroyChild = unsafe extern "system" fn(vk::Device, u64, *const std::ffi::c_void);

/// How the objects of a device are destroyed when the client left them behind, users before
/// what they use; command buffers and descriptor sets go with their pools.
const CHILD_DESTROYERS: &[(vk::ObjectType, &CStr)] = &[
    (vk::ObjectType::PIPELINE, c"vkDestroyPipeline"),
    (vk::ObjectType::PIPELINE_CACHE, c"vkDestroyPipelineCache"),
    (vk::ObjectType::PIPELINE_LAYOUT, c"vkDestroyPipelineLayout"),
    (
        vk::ObjectType::DESCRIPTOR_UPDATE_TEMPLATE,
        c"vkDestroyDescriptorUpdateTemplate",
    ),
    (vk::ObjectType::DESCRIPTOR_POOL, c"vkDestroyDescriptorPool"),
    (
        vk::ObjectType::DESCRIPTOR_SET_LAYOUT,
        c"vkDestroyDescriptorSetLayout",
    ),
    (vk::ObjectType::SHADER_MODULE, c"vkDestroyShaderModule"),
    (vk::ObjectType::FRAMEBUFFER, c"vkDestroyFramebuffer"),
    (vk::ObjectType::RENDER_PASS, c"vkDestroyRenderPass"),
    (vk::ObjectType::IMAGE_VIEW, c"vkDestroyImageView"),
    (vk::ObjectType::BUFFER_VIEW, c"vkDestroyBufferView"),
    (vk::ObjectType::SAMPLER, c"vkDestroySampler"),
    (
        vk::ObjectType::SAMPLER_YCBCR_CONVERSION,
        c"vkDestroySamplerYcbcrConversion",
    ),
    (vk::ObjectType::IMAGE, c"vkDestroyImage"),
    (vk::ObjectType::BUFFER, c"vkDestroyBuffer"),
    (vk::ObjectType::COMMAND_POOL, c"vkDestroyCommandPool"),
    (vk::ObjectType::QUERY_POOL, c"vkDestroyQueryPool"),
    (vk::ObjectType::EVENT, c"vkDestroyEvent"),
    (vk::ObjectType::FENCE, c"vkDestroyFence"),
    (vk::ObjectType::SEMAPHORE, c"vkDestroySemaphore"),
    (
        vk::ObjectType::PRIVATE_DATA_SLOT,
        c"vkDestroyPrivateDataSlot",
    ),
    (vk::ObjectType::DEVICE_MEMORY, c"vkFreeMemory"),
];

/// The instance or device whose functions serve a call, and its table.
pub struct Route {
    owner: u64,
    table: Option<Arc<Table>>,
}

/// A `before` hook's own answer to a call: `r` instead of the host's result, nothing pending.
fn answer(r: vk::Result) -> (Option<u64>, Pending) {
    (Some(r.as_raw() as i64 as u64), Pending::None)
}

/// What a call's `before` hook left for its `after` hook.
enum Pending {
    None,
    /// The shared memory the allocation imports.
    Backing(Backing),
    /// The device was created with host-memory import enabled.
    ImportEnabled,
    /// The destruction waits until no command buffer records (`deferred`).
    Deferred,
    /// The query asked the host about host memory in place of opaque fds (`external.rs`).
    Opaque,
}

/// Whether a `VkSemaphoreCreateInfo` chain makes a timeline semaphore.
///
/// # Safety
/// `p` is a valid, decoded `pNext` chain.
unsafe fn semaphore_is_timeline(mut p: *const std::ffi::c_void) -> bool {
    while !p.is_null() {
        let b = &*(p as *const vk::BaseInStructure);
        if b.s_type == vk::StructureType::SEMAPHORE_TYPE_CREATE_INFO {
            let t = &*(p as *const vk::SemaphoreTypeCreateInfo);
            return t.semaphore_type == vk::SemaphoreType::TIMELINE;
        }
        p = b.p_next as *const std::ffi::c_void;
    }
    false
}

/// A decoded array as a slice (empty when null).
unsafe fn slice<'a, T>(p: *const T, n: u64) -> &'a [T] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(p, n as usize)
    }
}

impl Server {
    pub fn new(host: HostDriver, client_extensions: &[wire::control::ExtensionInfo]) -> Server {
        let carried = client_extensions
            .iter()
            .filter_map(|c| {
                EXTENSIONS
                    .iter()
                    .find(|e| e.name == c.name)
                    .map(|e| (c.name.clone(), c.spec_version.min(e.spec_version)))
            })
            .collect();
        Server {
            host,
            objects: Objects::default(),
            carried,
            tables: RwLock::new(HashMap::new()),
            memory: Memory::default(),
            broken: Mutex::new(HashSet::new()),
            deferred: Deferred::default(),
            limits: Limits::from_env(),
            timeline: Mutex::new(HashSet::new()),
            messengers: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self, owner: u64) -> Option<Arc<Table>> {
        self.tables.read().get(&owner).cloned()
    }

    fn resolve(&self, cmd: &CommandDesc, table: Option<&Table>) -> Option<Pfn> {
        let name = || CString::new(cmd.name).ok();
        let Some(t) = table else {
            return self.host.instance_proc(vk::Instance::null(), &name()?);
        };
        // Resolved once per instance or device; later calls only read the table.
        *t.fns[cmd.id as usize].get_or_init(|| {
            let name = name()?;
            match (cmd.level, t.device) {
                (Level::Device, Some((dev, gdpa))) => unsafe { gdpa(dev, name.as_ptr()) },
                _ => self.host.instance_proc(t.instance, &name),
            }
        })
    }

    /// The host instance or device whose table serves a call whose first argument is `id`.
    fn owner_of(&self, id: u64) -> u64 {
        match self.objects.get(id) {
            Some(e) if e.ty == vk::ObjectType::INSTANCE || e.ty == vk::ObjectType::DEVICE => e.host,
            Some(e) => e.owner,
            None => 0,
        }
    }

    /// Host instance extensions both sides carry, with the lowest spec version of the three.
    pub fn instance_extensions(&self) -> Vec<vk::ExtensionProperties> {
        let f = self.host.instance_proc(
            vk::Instance::null(),
            c"vkEnumerateInstanceExtensionProperties",
        );
        let Some(f) = f else { return Vec::new() };
        let f: vk::PFN_vkEnumerateInstanceExtensionProperties = unsafe { std::mem::transmute(f) };
        let all = unsafe { enumerate(|n, p| f(std::ptr::null(), n, p)) };
        self.filter_extensions(all, true)
    }

    fn filter_extensions(
        &self,
        all: Vec<vk::ExtensionProperties>,
        instance: bool,
    ) -> Vec<vk::ExtensionProperties> {
        all.into_iter()
            .filter_map(|mut p| {
                let name = p.extension_name_as_c_str().ok()?.to_str().ok()?;
                let ours = EXTENSIONS
                    .iter()
                    .find(|e| e.name == name && e.instance == instance)?;
                let theirs = *self.carried.get(name)?;
                p.spec_version = p.spec_version.min(theirs).min(ours.spec_version);
                Some(p)
            })
            .collect()
    }

    /// Executes one request and encodes its reply into `out`.
    pub fn execute(
        &self,
        cmd: &'static CommandDesc,
        payload: &[u8],
        arena: &Bump,
        out: &mut Encoder,
    ) -> Result<(), ExecError> {
        let first_id = if cmd.level == Level::Global {
            0
        } else {
            let b = payload.get(..8).ok_or(ExecError::Decode {
                cmd: cmd.name,
                err: DecodeError::Truncated {
                    needed: 8,
                    left: payload.len(),
                },
            })?;
            u64::from_le_bytes(b.try_into().unwrap())
        };
        let route = self.route(cmd, first_id)?;
        self.execute_routed(cmd, payload, arena, out, &route)
    }

    /// Which instance or device serves calls made on object `first_id`.
    pub fn route(&self, cmd: &'static CommandDesc, first_id: u64) -> Result<Route, ExecError> {
        let owner = self.owner_of(first_id);
        let table = self.table(owner);
        if cmd.level != Level::Global && table.is_none() {
            return Err(ExecError::Decode {
                cmd: cmd.name,
                err: DecodeError::UnknownHandle {
                    ty: vk::ObjectType::UNKNOWN,
                    id: first_id,
                },
            });
        }
        Ok(Route { owner, table })
    }

    /// [`Server::execute`] once the route is known: a batch of recorded commands shares one.
    pub fn execute_routed(
        &self,
        cmd: &'static CommandDesc,
        payload: &[u8],
        arena: &Bump,
        out: &mut Encoder,
        route: &Route,
    ) -> Result<(), ExecError> {
        let derr = |err| ExecError::Decode { cmd: cmd.name, err };
        let (owner, table) = (route.owner, route.table.clone());
        let cx = CallObjects {
            objects: &self.objects,
            owner,
        };
        let mut dc = Decoder::new(payload);
        let mut call = interp::decode_request(&mut dc, cmd, arena, &cx).map_err(derr)?;
        // Refused before the host allocates anything for the new objects.
        let over_objects = cmd.creates
            && !call.new_handles.is_empty()
            && !self
                .limits
                .objects_fit(cmd.name, self.objects.count(), call.new_handles.len());
        let (early, pending) = if over_objects {
            answer(vk::Result::ERROR_OUT_OF_HOST_MEMORY)
        } else {
            // SAFETY: the arguments were decoded for `cmd`, pointers into `arena`.
            unsafe { self.before(cmd, &mut call.args, arena, table.as_deref()) }
        };
        let ret = if let Some(r) = early {
            r
        } else if cmd.id == id::vkEnumerateDeviceExtensionProperties {
            self.device_extensions(&call.args, table.as_deref())
        } else {
            let fp = self
                .resolve(cmd, table.as_deref())
                .ok_or(ExecError::Unsupported(cmd.name))?;
            validation::arm();
            // SAFETY: `fp` is the host's function for `cmd`; the arguments were decoded for it,
            // with every handle translated and every pointer into `arena`.
            let r = unsafe { calls::call(cmd.id, fp, &call.args) }
                .ok_or(ExecError::Unsupported(cmd.name))?;
            if cmd.recorded && self.host.validated.is_some() && validation::refused() {
                return Err(ExecError::Refused(cmd.name));
            }
            r
        };
        let ok = cmd.ret != Ret::Result || (ret as i64) >= 0;
        let deferred = matches!(pending, Pending::Deferred);
        for n in call.new_handles.iter() {
            // SAFETY: the slot is arena memory, zeroed, that the driver wrote the new handle into.
            let host = unsafe { *n.slot };
            // What the reply tells the client exists, and nothing else.
            if !interp::created(cmd, ret, host) {
                continue;
            }
            let own = if n.ty == vk::ObjectType::INSTANCE || n.ty == vk::ObjectType::DEVICE {
                host
            } else {
                owner
            };
            self.objects.bind(n.ty, n.id, host, own);
        }
        if ok {
            self.after(cmd, &call, table.as_deref(), pending);
        }
        // Before the destruction unbinds a pool's command buffers.
        self.recording_ended(cmd, &call.args);
        if let Some(i) = cmd.destroys {
            if !deferred {
                self.destroyed(cmd, i as usize, &call.args);
            }
        }
        // SAFETY: the call returned; its outputs are filled.
        unsafe { interp::encode_reply(out, cmd, &call, ret, &cx) }.map_err(derr)
    }

    /// Decisions after a successful call.
    fn after(
        &self,
        cmd: &CommandDesc,
        call: &interp::DecodedCall,
        table: Option<&Table>,
        pending: Pending,
    ) {
        let args = &call.args;
        match (cmd.id, pending) {
            (id::vkAllocateMemory, Pending::Backing(b)) => {
                if let Some(n) = call.new_handles.first() {
                    self.memory.adopt(n.id, b);
                }
            }
            // SAFETY: the arguments of the query, which returned.
            (id::vkGetPhysicalDeviceExternalBufferProperties, p) => unsafe {
                Self::external_buffer_answer(args, &p)
            },
            (id::vkGetPhysicalDeviceImageFormatProperties2, Pending::Opaque) => unsafe {
                Self::external_image_answer(args)
            },
            (id::vkCreateDevice, Pending::ImportEnabled) => {
                // SAFETY: args[0] is the physical device, args[3] the new device's slot.
                unsafe { self.add_device_memory(args[0], *(args[3] as *const u64), table) };
            }
            (id::vkAllocateCommandBuffers, _) => {
                // SAFETY: args[1] is the decoded allocate info.
                let pool =
                    unsafe { (*(args[1] as *const vk::CommandBufferAllocateInfo)).command_pool };
                self.adopt_children(vk::ObjectType::COMMAND_POOL, pool.as_raw(), call);
            }
            (id::vkAllocateDescriptorSets, _) => {
                // SAFETY: args[1] is the decoded allocate info.
                let pool =
                    unsafe { (*(args[1] as *const vk::DescriptorSetAllocateInfo)).descriptor_pool };
                self.adopt_children(vk::ObjectType::DESCRIPTOR_POOL, pool.as_raw(), call);
            }
            (id::vkCreateSemaphore, _) => {
                // SAFETY: args[1] is the decoded create info, args[3] the new semaphore's slot.
                let (timeline, host) = unsafe {
                    let info = &*(args[1] as *const vk::SemaphoreCreateInfo);
                    (semaphore_is_timeline(info.p_next), *(args[3] as *const u64))
                };
                // Set either way: a host handle may be a destroyed semaphore's, reused.
                let mut t = self.timeline.lock();
                if timeline {
                    t.insert(host);
                } else {
                    t.remove(&host);
                }
            }
            (id::vkResetDescriptorPool, _) => {
                if let Some(pool) = self.objects.id_of(vk::ObjectType::DESCRIPTOR_POOL, args[1]) {
                    self.objects.unbind_children(pool);
                }
            }
            _ => {}
        }
        match cmd.id {
            // Airlock carries no external semaphore or fence (a descriptor of one process
            // means nothing to the other): none is reported importable or exportable.
            id::vkGetPhysicalDeviceExternalSemaphoreProperties => unsafe {
                let p = &mut *(args[2] as *mut vk::ExternalSemaphoreProperties);
                p.export_from_imported_handle_types = Default::default();
                p.compatible_handle_types = Default::default();
                p.external_semaphore_features = Default::default();
            },
            id::vkGetPhysicalDeviceExternalFenceProperties => unsafe {
                let p = &mut *(args[2] as *mut vk::ExternalFenceProperties);
                p.export_from_imported_handle_types = Default::default();
                p.compatible_handle_types = Default::default();
                p.external_fence_features = Default::default();
            },
            id::vkCreateInstance => {
                // SAFETY: args[2] points at the new instance handle in the arena.
                let instance = vk::Instance::from_raw(unsafe { *(args[2] as *const u64) });
                self.add_table(instance.as_raw(), instance, None);
                if self.host.validated.is_some() {
                    if let Some(m) = validation::create_messenger(&self.host, instance) {
                        self.messengers.lock().insert(instance.as_raw(), m);
                    }
                }
            }
            id::vkCreateDevice => {
                let device = unsafe { *(args[3] as *const u64) };
                if let Some(t) = table {
                    let gdpa = self.host.instance_proc(t.instance, c"vkGetDeviceProcAddr");
                    if let Some(gdpa) = gdpa {
                        let gdpa: vk::PFN_vkGetDeviceProcAddr =
                            unsafe { std::mem::transmute(gdpa) };
                        self.add_table(
                            device,
                            t.instance,
                            Some((vk::Device::from_raw(device), gdpa)),
                        );
                    }
                }
            }
            id::vkGetPhysicalDeviceProperties2 => unsafe {
                self.patch_identity(args[1] as *mut vk::PhysicalDeviceProperties2)
            },
            id::vkAllocateMemory => {
                // SAFETY: args[1] is the decoded allocate info, its size the one the host
                // allocated (rounded up when shared memory backs it).
                let size = unsafe { (*(args[1] as *const vk::MemoryAllocateInfo)).allocation_size };
                if let Some(n) = call.new_handles.first() {
                    self.limits.allocated(n.id, size, args[0]);
                }
            }
            // The heaps the client sees are no larger than what it may allocate.
            id::vkGetPhysicalDeviceMemoryProperties => unsafe {
                self.clamp_heaps(&mut *(args[1] as *mut vk::PhysicalDeviceMemoryProperties))
            },
            id::vkGetPhysicalDeviceMemoryProperties2 => unsafe {
                let p = &mut *(args[1] as *mut vk::PhysicalDeviceMemoryProperties2);
                self.clamp_heaps(&mut p.memory_properties);
                let mut node = p.p_next as *mut vk::BaseOutStructure;
                while !node.is_null() {
                    if (*node).s_type
                        == vk::StructureType::PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT
                    {
                        self.clamp_budget(
                            &mut *(node as *mut vk::PhysicalDeviceMemoryBudgetPropertiesEXT),
                        );
                    }
                    node = (*node).p_next;
                }
            },
            _ => {}
        }
    }

    fn clamp_heaps(&self, p: &mut vk::PhysicalDeviceMemoryProperties) {
        let Some(max) = self.limits.max_device_memory else {
            return;
        };
        let n = (p.memory_heap_count as usize).min(p.memory_heaps.len());
        for h in &mut p.memory_heaps[..n] {
            h.size = h.size.min(max);
        }
    }

    fn clamp_budget(&self, b: &mut vk::PhysicalDeviceMemoryBudgetPropertiesEXT<'_>) {
        let Some(max) = self.limits.max_device_memory else {
            return;
        };
        let left = max.saturating_sub(self.limits.memory_in_use());
        for budget in &mut b.heap_budget {
            *budget = (*budget).min(left);
        }
    }

    /// Decisions before the host sees a call: the answer, if Airlock gives it instead, and what
    /// to finish once the call succeeded.
    ///
    /// # Safety
    /// `args` were decoded for `cmd`; every pointer in them points into `arena`.
    unsafe fn before(
        &self,
        cmd: &CommandDesc,
        args: &mut [u64],
        arena: &Bump,
        table: Option<&Table>,
    ) -> (Option<u64>, Pending) {
        match cmd.id {
            id::vkCreateInstance if self.host.validated.is_some() => {
                let info = &mut *(args[0] as *mut vk::InstanceCreateInfo);
                if validation::prepare_instance(info, arena) {
                    (None, Pending::None)
                } else {
                    answer(vk::Result::ERROR_VALIDATION_FAILED_EXT)
                }
            }
            id::vkCreateDevice => {
                let info = &mut *(args[1] as *mut vk::DeviceCreateInfo);
                let pd = vk::PhysicalDevice::from_raw(args[0]);
                if !self.host_has_import(pd, table) {
                    return (None, Pending::None);
                }
                let names = if info.pp_enabled_extension_names.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(
                        info.pp_enabled_extension_names,
                        info.enabled_extension_count as usize,
                    )
                };
                if !names
                    .iter()
                    .any(|n| CStr::from_ptr(*n) == memory::IMPORT_EXTENSION)
                {
                    let more = arena.alloc_slice_fill_copy(names.len() + 1, std::ptr::null());
                    more[..names.len()].copy_from_slice(names);
                    more[names.len()] = memory::IMPORT_EXTENSION.as_ptr();
                    info.pp_enabled_extension_names = more.as_ptr();
                    info.enabled_extension_count = more.len() as u32;
                }
                (None, Pending::ImportEnabled)
            }
            id::vkAllocateMemory => self.allocate_memory(args, arena),
            id::vkGetPhysicalDeviceExternalBufferProperties => {
                (None, self.external_buffer_query(args, table))
            }
            // The client answers these itself: the fds are its memfds (`external.rs`).
            id::vkGetMemoryFdKHR | id::vkGetMemoryFdPropertiesKHR => {
                tracing::warn!("{}: the client answers it, not the server", cmd.name);
                answer(vk::Result::ERROR_INVALID_EXTERNAL_HANDLE)
            }
            id::vkCreateBuffer | id::vkCreateImage if self.memory.imports(args[0]) => {
                // Vulkan lets memory imported from a host pointer back only resources created
                // for that handle type; the client cannot know its memory is imported.
                let host = vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT;
                let (head, s_type) = if cmd.id == id::vkCreateBuffer {
                    let info = &mut *(args[1] as *mut vk::BufferCreateInfo);
                    let t = vk::StructureType::EXTERNAL_MEMORY_BUFFER_CREATE_INFO;
                    (&mut info.p_next, t)
                } else {
                    let info = &mut *(args[1] as *mut vk::ImageCreateInfo);
                    let t = vk::StructureType::EXTERNAL_MEMORY_IMAGE_CREATE_INFO;
                    (&mut info.p_next, t)
                };
                // Both structs are {sType, pNext, handleTypes}.
                let mut node = *head as *mut vk::ExternalMemoryBufferCreateInfo;
                while !node.is_null() && (*node).s_type != s_type {
                    node = (*node).p_next as *mut vk::ExternalMemoryBufferCreateInfo;
                }
                if let Some(n) = node.as_mut() {
                    // An opaque fd is the client's name for the same shared memory.
                    n.handle_types =
                        (n.handle_types & !vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD) | host;
                } else {
                    let n = arena.alloc(vk::ExternalMemoryBufferCreateInfo {
                        s_type,
                        p_next: *head,
                        handle_types: host,
                        ..Default::default()
                    });
                    *head = n as *const _ as *const std::ffi::c_void;
                }
                (None, Pending::None)
            }
            id::vkCreateRenderPass | id::vkCreateRenderPass2 => {
                let checked = if cmd.id == id::vkCreateRenderPass {
                    indices::render_pass(&*(args[1] as *const vk::RenderPassCreateInfo))
                } else {
                    indices::render_pass2(&*(args[1] as *const vk::RenderPassCreateInfo2))
                };
                match checked {
                    Ok(()) => (None, Pending::None),
                    Err(why) => {
                        tracing::warn!("{}: {why}; VK_ERROR_VALIDATION_FAILED_EXT", cmd.name);
                        answer(vk::Result::ERROR_VALIDATION_FAILED_EXT)
                    }
                }
            }
            id::vkCreateDescriptorSetLayout => {
                let info = &*(args[1] as *const vk::DescriptorSetLayoutCreateInfo);
                let total: u64 = slice(info.p_bindings, info.binding_count as u64)
                    .iter()
                    .map(|b| u64::from(b.descriptor_count))
                    .sum();
                if total > MAX_LAYOUT_DESCRIPTORS {
                    tracing::warn!(
                        "{}: {total} descriptors, more than any pipeline layout may use \
                         ({MAX_LAYOUT_DESCRIPTORS} at most); VK_ERROR_OUT_OF_HOST_MEMORY",
                        cmd.name
                    );
                    return answer(vk::Result::ERROR_OUT_OF_HOST_MEMORY);
                }
                (None, Pending::None)
            }
            id::vkSetPrivateData | id::vkGetPrivateData => {
                // The object travels as an id whose table its type names.
                let ty = vk::ObjectType::from_raw(args[1] as u32 as i32);
                match self.objects.lookup(ty, args[2]) {
                    Ok(e) => {
                        args[2] = e.host;
                        (None, Pending::None)
                    }
                    Err(e) => {
                        tracing::warn!("{}: {e}", cmd.name);
                        answer(vk::Result::ERROR_OUT_OF_HOST_MEMORY)
                    }
                }
            }
            id::vkGetPhysicalDeviceImageFormatProperties2 => self.external_image_query(args, table),
            id::vkBeginCommandBuffer | id::vkResetCommandBuffer => {
                self.broken.lock().remove(&args[0]);
                if cmd.id == id::vkBeginCommandBuffer {
                    self.deferred.begin(args[0]);
                }
                (None, Pending::None)
            }
            id::vkDestroyPipelineLayout if args[1] != 0 => {
                let Some(id) = self.objects.id_of(vk::ObjectType::PIPELINE_LAYOUT, args[1]) else {
                    return (None, Pending::None);
                };
                if self.deferred.defer((id, args[1], args[0])) {
                    (Some(0), Pending::Deferred)
                } else {
                    (None, Pending::None)
                }
            }
            id::vkQueueSubmit | id::vkQueueSubmit2 => {
                let broken = self.broken.lock();
                if broken.is_empty() {
                    return (None, Pending::None);
                }
                let used: Vec<u64> = if cmd.id == id::vkQueueSubmit {
                    let submits = slice(args[2] as *const vk::SubmitInfo, args[1]);
                    submits
                        .iter()
                        .flat_map(|s| slice(s.p_command_buffers, s.command_buffer_count as u64))
                        .map(|c| c.as_raw())
                        .collect()
                } else {
                    let submits = slice(args[2] as *const vk::SubmitInfo2, args[1]);
                    submits
                        .iter()
                        .flat_map(|s| {
                            slice(s.p_command_buffer_infos, s.command_buffer_info_count as u64)
                        })
                        .map(|c| c.command_buffer.as_raw())
                        .collect()
                };
                if let Some(bad) = used.iter().find(|c| broken.contains(c)) {
                    tracing::warn!(
                        command_buffer = format!("{bad:#x}"),
                        "{}: a command buffer whose recording the server rejected; VK_ERROR_UNKNOWN",
                        cmd.name
                    );
                    return answer(vk::Result::ERROR_UNKNOWN);
                }
                (None, Pending::None)
            }
            id::vkGetSemaphoreCounterValue | id::vkSignalSemaphore | id::vkWaitSemaphores => {
                let semaphores: Vec<u64> = match cmd.id {
                    id::vkGetSemaphoreCounterValue => vec![args[1]],
                    id::vkSignalSemaphore => {
                        vec![(*(args[1] as *const vk::SemaphoreSignalInfo))
                            .semaphore
                            .as_raw()]
                    }
                    _ => {
                        let info = &*(args[1] as *const vk::SemaphoreWaitInfo);
                        slice(info.p_semaphores, info.semaphore_count as u64)
                            .iter()
                            .map(|s| s.as_raw())
                            .collect()
                    }
                };
                let timeline = self.timeline.lock();
                if let Some(bad) = semaphores.iter().find(|s| !timeline.contains(s)) {
                    tracing::warn!(
                        semaphore = format!("{bad:#x}"),
                        "{}: not a timeline semaphore; VK_ERROR_UNKNOWN",
                        cmd.name
                    );
                    return answer(vk::Result::ERROR_UNKNOWN);
                }
                (None, Pending::None)
            }
            id::vkDestroyInstance => {
                // Vulkan wants the instance's devices destroyed first. A client that leaves one
                // would have the host touch it after its instance is gone (at the latest when
                // the server cleans up after the client: found by the server_stream fuzzer), so
                // they go first, children and all.
                let devices: Vec<u64> = self
                    .tables
                    .read()
                    .iter()
                    .filter(|(_, t)| t.device.is_some() && t.instance.as_raw() == args[0])
                    .map(|(host, _)| *host)
                    .collect();
                for host in devices {
                    self.destroy_device(host);
                    if let Some(id) = self.objects.id_of(vk::ObjectType::DEVICE, host) {
                        self.objects.unbind(id);
                    }
                }
                self.drop_messenger(args[0]);
                (None, Pending::None)
            }
            _ => (None, Pending::None),
        }
    }

    /// Command buffers that stop recording may release postponed pipeline layouts.
    fn recording_ended(&self, cmd: &CommandDesc, args: &[u64]) {
        let ended: Vec<u64> = match cmd.id {
            id::vkEndCommandBuffer | id::vkResetCommandBuffer => vec![args[0]],
            // SAFETY: the decoded array of `args[2]` host handles.
            id::vkFreeCommandBuffers => unsafe { slice(args[3] as *const u64, args[2]) }.to_vec(),
            id::vkResetCommandPool | id::vkDestroyCommandPool => {
                match self.objects.id_of(vk::ObjectType::COMMAND_POOL, args[1]) {
                    Some(pool) => self
                        .objects
                        .children_of(pool)
                        .iter()
                        .map(|e| e.host)
                        .collect(),
                    None => Vec::new(),
                }
            }
            _ => return,
        };
        for (id, host, device) in self.deferred.end(ended) {
            let destroy = self.table(device).and_then(|t| {
                self.resolve(
                    &wire::generated::commands::C_vkDestroyPipelineLayout,
                    Some(&t),
                )
            });
            if let Some(fp) = destroy {
                // SAFETY: a layout the client destroyed, that no recording names any more.
                unsafe {
                    calls::call(id::vkDestroyPipelineLayout, fp, &[device, host, 0]);
                }
            }
            self.objects.unbind(id);
        }
    }

    /// Whether the host driver can import host memory on `pd`.
    fn host_has_import(&self, pd: vk::PhysicalDevice, table: Option<&Table>) -> bool {
        let Some(f) = table.and_then(|t| {
            self.host
                .instance_proc(t.instance, c"vkEnumerateDeviceExtensionProperties")
        }) else {
            return false;
        };
        let f: vk::PFN_vkEnumerateDeviceExtensionProperties = unsafe { std::mem::transmute(f) };
        let list = unsafe { enumerate(|n, p| f(pd, std::ptr::null(), n, p)) };
        list.iter()
            .any(|p| p.extension_name_as_c_str() == Ok(memory::IMPORT_EXTENSION))
    }

    /// Learns how a new device imports host memory.
    unsafe fn add_device_memory(&self, pd: u64, device: u64, table: Option<&Table>) {
        let Some(t) = table else { return };
        let inst = |n: &CStr| self.host.instance_proc(t.instance, n);
        let gdpa = inst(c"vkGetDeviceProcAddr");
        let (Some(mp), Some(p2), Some(gdpa)) = (
            inst(c"vkGetPhysicalDeviceMemoryProperties"),
            inst(c"vkGetPhysicalDeviceProperties2"),
            gdpa,
        ) else {
            return;
        };
        let gdpa: vk::PFN_vkGetDeviceProcAddr = std::mem::transmute(gdpa);
        let Some(hp) = gdpa(
            vk::Device::from_raw(device),
            c"vkGetMemoryHostPointerPropertiesEXT".as_ptr(),
        ) else {
            return;
        };
        let info = memory::device_memory(
            vk::PhysicalDevice::from_raw(pd),
            std::mem::transmute::<Pfn, vk::PFN_vkGetPhysicalDeviceMemoryProperties>(mp),
            std::mem::transmute::<Pfn, vk::PFN_vkGetPhysicalDeviceProperties2>(p2),
            std::mem::transmute::<Pfn, vk::PFN_vkGetMemoryHostPointerPropertiesEXT>(hp),
        );
        self.memory.add_device(device, info);
    }

    /// Remembers the objects a pool allocated, which go when the pool goes.
    fn adopt_children(&self, ty: vk::ObjectType, pool_host: u64, call: &interp::DecodedCall) {
        if let Some(pool) = self.objects.id_of(ty, pool_host) {
            for n in call.new_handles.iter() {
                self.objects.adopt(pool, n.id);
            }
        }
    }

    fn add_table(
        &self,
        owner: u64,
        instance: vk::Instance,
        device: Option<(vk::Device, vk::PFN_vkGetDeviceProcAddr)>,
    ) {
        let fns = (0..COMMANDS.len()).map(|_| OnceLock::new()).collect();
        self.tables.write().insert(
            owner,
            Arc::new(Table {
                instance,
                device,
                fns,
            }),
        );
    }

    fn destroyed(&self, cmd: &CommandDesc, param: usize, args: &[u64]) {
        let host = args[param];
        match cmd.params[param].kind {
            Kind::Value(Ty::Dispatchable(vk::ObjectType::INSTANCE | vk::ObjectType::DEVICE))
            | Kind::Object(Ty::Dispatchable(vk::ObjectType::INSTANCE | vk::ObjectType::DEVICE)) => {
                // The children of an instance or device go with it.
                self.objects.unbind_owned_by(host);
                self.tables.write().remove(&host);
                self.memory.forget_device(host);
                self.limits.device_gone(host);
            }
            Kind::Value(Ty::Handle(ty) | Ty::Dispatchable(ty))
            | Kind::Object(Ty::Handle(ty) | Ty::Dispatchable(ty)) => self.unbind_host(ty, host),
            // vkFreeCommandBuffers, vkFreeDescriptorSets: the count precedes the array.
            Kind::Array {
                elem: Ty::Handle(ty) | Ty::Dispatchable(ty),
                ..
            } if param > 0 => {
                let n = args[param - 1];
                // SAFETY: the decoded array of `n` host handles.
                for h in unsafe { slice(host as *const u64, n) } {
                    self.unbind_host(ty, *h);
                }
            }
            _ => {}
        }
    }

    fn unbind_host(&self, ty: vk::ObjectType, host: u64) {
        if let Some(id) = self.objects.id_of(ty, host) {
            self.objects.unbind(id);
            if ty == vk::ObjectType::DEVICE_MEMORY {
                self.memory.release(id);
                self.limits.freed(id);
            }
        }
    }

    /// Destroys a device the client left behind, and every object the client made on it: the
    /// device's work is waited for, then its children go in an order where nothing is destroyed
    /// before what uses it.
    pub fn destroy_device(&self, host: u64) -> usize {
        let mut freed = 0;
        if let Some((dev, gdpa)) = self.table(host).and_then(|t| t.device) {
            // SAFETY: a device the host created, its children, and nobody using either now.
            unsafe {
                let f = |n: &CStr| gdpa(dev, n.as_ptr());
                if let Some(wait) = f(c"vkDeviceWaitIdle") {
                    let wait: vk::PFN_vkDeviceWaitIdle = std::mem::transmute(wait);
                    let _ = wait(dev);
                }
                let live = self.objects.all();
                for (ty, name) in CHILD_DESTROYERS {
                    let Some(destroy) = f(name) else { continue };
                    let destroy: DestroyChild = std::mem::transmute(destroy);
                    for (id, e) in live.iter().filter(|(_, e)| e.owner == host && e.ty == *ty) {
                        destroy(dev, e.host, std::ptr::null());
                        self.objects.unbind(*id);
                        freed += 1;
                    }
                }
                if let Some(d) = f(c"vkDestroyDevice") {
                    let d: vk::PFN_vkDestroyDevice = std::mem::transmute(d);
                    d(dev, std::ptr::null());
                }
            }
        }
        self.objects.unbind_owned_by(host);
        self.tables.write().remove(&host);
        self.memory.forget_device(host);
        self.limits.device_gone(host);
        freed
    }

    /// Destroys an instance the client left behind.
    pub fn destroy_instance(&self, host: u64) {
        self.drop_messenger(host);
        let instance = vk::Instance::from_raw(host);
        if let Some(f) = self.host.instance_proc(instance, c"vkDestroyInstance") {
            // SAFETY: an instance the host created whose devices are gone.
            unsafe {
                let f: vk::PFN_vkDestroyInstance = std::mem::transmute(f);
                f(instance, std::ptr::null());
            }
        }
        self.objects.unbind_owned_by(host);
        self.tables.write().remove(&host);
    }

    fn drop_messenger(&self, instance: u64) {
        if let Some(m) = self.messengers.lock().remove(&instance) {
            validation::destroy_messenger(&self.host, vk::Instance::from_raw(instance), m);
        }
    }

    /// The driver identity: Airlock, naming the host driver it runs on.
    unsafe fn patch_identity(&self, props: *mut vk::PhysicalDeviceProperties2) {
        let mut node = (*props).p_next as *mut vk::BaseOutStructure;
        while !node.is_null() {
            match (*node).s_type {
                vk::StructureType::PHYSICAL_DEVICE_DRIVER_PROPERTIES => {
                    let d = &mut *(node as *mut vk::PhysicalDeviceDriverProperties);
                    set_identity(&mut d.driver_name, &mut d.driver_info);
                }
                vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES => {
                    let d = &mut *(node as *mut vk::PhysicalDeviceVulkan12Properties);
                    set_identity(&mut d.driver_name, &mut d.driver_info);
                }
                _ => {}
            }
            node = (*node).p_next;
        }
    }

    /// `vkEnumerateDeviceExtensionProperties`: the host's list, less what Airlock cannot carry.
    fn device_extensions(&self, args: &[u64], table: Option<&Table>) -> u64 {
        let res = |r: vk::Result| r.as_raw() as i64 as u64;
        if args[1] != 0 {
            return res(vk::Result::ERROR_LAYER_NOT_PRESENT);
        }
        let Some(f) = table.and_then(|t| {
            self.host
                .instance_proc(t.instance, c"vkEnumerateDeviceExtensionProperties")
        }) else {
            return res(vk::Result::ERROR_INITIALIZATION_FAILED);
        };
        let f: vk::PFN_vkEnumerateDeviceExtensionProperties = unsafe { std::mem::transmute(f) };
        let pd = vk::PhysicalDevice::from_raw(args[0]);
        let mut list = self.filter_extensions(
            unsafe { enumerate(|n, p| f(pd, std::ptr::null(), n, p)) },
            false,
        );
        if !self.opaque_fds(pd, table) {
            list.retain(|p| p.extension_name_as_c_str() != Ok(external::EXTENSION));
        }
        // SAFETY: args[2] is the count and args[3] the (possibly NULL) array, both in the arena,
        // the array holding as many elements as the count said on entry.
        unsafe {
            fill(
                &list,
                args[2] as *mut u32,
                args[3] as *mut vk::ExtensionProperties,
            )
        }
    }
}

use ash::vk::Handle;

fn set_identity(name: &mut [c_char; 256], info: &mut [c_char; 256]) {
    let host_name = unsafe { CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let host_info = unsafe { CStr::from_ptr(info.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let text = format!(
        "Airlock {} on {host_name}: {host_info}",
        env!("CARGO_PKG_VERSION")
    );
    write_cstr(name, "Airlock");
    write_cstr(info, &text);
}

fn write_cstr(dst: &mut [c_char; 256], s: &str) {
    let n = s.len().min(255);
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    dst[n..].fill(0);
}

/// The "count, then fill" idiom with an answer already known.
unsafe fn fill<T: Copy>(list: &[T], count: *mut u32, out: *mut T) -> u64 {
    if out.is_null() {
        *count = list.len() as u32;
        return 0;
    }
    let n = (*count as usize).min(list.len());
    std::ptr::copy_nonoverlapping(list.as_ptr(), out, n);
    *count = n as u32;
    if n < list.len() {
        vk::Result::INCOMPLETE.as_raw() as i64 as u64
    } else {
        0
    }
}

unsafe fn enumerate<T: Default + Clone>(f: impl Fn(*mut u32, *mut T) -> vk::Result) -> Vec<T> {
    loop {
        let mut n = 0u32;
        if f(&mut n, std::ptr::null_mut()) != vk::Result::SUCCESS {
            return Vec::new();
        }
        let mut v = vec![T::default(); n as usize];
        match f(&mut n, v.as_mut_ptr()) {
            vk::Result::SUCCESS => {
                v.truncate(n as usize);
                return v;
            }
            vk::Result::INCOMPLETE => continue,
            _ => return Vec::new(),
        }
    }
}
