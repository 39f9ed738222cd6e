//! Executes one decoded command against the host driver: the generic path, and the router to
//! the families that handle a command themselves.
//!
//! Almost every command takes the generic path: decode the request into an arena, resolve the
//! host's function through the dispatch table of the object it is called on, call it, bind the
//! objects it created, encode the reply. The few decisions Airlock makes itself sit in the
//! module of the command's object family (the same names as in the ICD); [`Server::before`]
//! and [`Server::after`] say which command goes where.

use crate::generated::calls;
use crate::generated::views::EnumerateDeviceExtensionProperties;
use crate::host::HostDriver;
use crate::limits::Limits;
use crate::memory::{Backing, Memory};
use crate::objects::{CallObjects, ClientId, Entry, HostHandle, Objects};
use crate::tables::Table;
use crate::{command_buffer, descriptor, device, external, image, instance, memory, pipeline};
use crate::{private_data, query, queue, sampler, validation};
use ash::vk;
use bumpalo::Bump;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use thiserror::Error;
use wire::codec::{DecodeError, Decoder, Encoder};
use wire::desc::{CommandDesc, Kind, Level, Ret, Ty};
use wire::generated::commands::id;
use wire::interp::{self, DecodedCall};

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

pub type Pfn = unsafe extern "system" fn();

pub struct Server {
    pub host: Arc<HostDriver>,
    pub objects: Objects,
    /// Extensions both sides carry: name → the lower spec version.
    pub carried: HashMap<String, u32>,
    pub tables: RwLock<HashMap<u64, Arc<Table>>>,
    /// What one client may hold: device memory, live objects.
    pub limits: Limits,
    /// What the families keep, each in its own module.
    pub memory: Memory,
    pub instances: instance::Instances,
    pub semaphores: queue::Semaphores,
    pub command_buffers: command_buffer::CommandBuffers,
    pub pipelines: pipeline::Pipelines,
    pub images: image::Images,
    pub devices: device::Devices,
    pub feedback: queue::feedback::Feedback,
}

/// The instance or device whose functions serve a call, and its table.
pub struct Route {
    owner: HostHandle,
    table: Option<Arc<Table>>,
}

/// What a family's `before` hook leaves for its `after` hook.
pub enum Pending {
    None,
    /// The shared memory the allocation imports.
    Backing(Backing),
    /// The device was created with host-memory import enabled.
    ImportEnabled,
    /// The destruction waits until no command buffer records.
    Deferred,
    /// The query asked the host about host memory in place of opaque fds.
    Opaque,
    /// The fence of a submission, counted (`queue::SubmittedFence`).
    Fence(queue::SubmittedFence),
}

/// A `before` hook's decision: `Some(r)` answers the call with `r` instead of the host.
pub type Before = (Option<u64>, Pending);

/// Let the host answer, with nothing pending.
pub const HOST: Before = (None, Pending::None);

/// Answer the call with `r` instead of the host, nothing pending.
pub fn answer(r: vk::Result) -> Before {
    (Some(r.as_raw() as i64 as u64), Pending::None)
}

/// Replaces decoded argument `i` (a view's index) before the host sees it.
pub fn set_arg(args: &mut [u64], i: usize, v: u64) {
    if let Some(a) = args.get_mut(i) {
        *a = v;
    }
}

/// What a hook may use beside the arguments.
pub struct Hook<'a> {
    pub cmd: &'static CommandDesc,
    pub arena: &'a Bump,
    pub table: Option<&'a Table>,
}

impl Server {
    pub fn new(
        host: impl Into<Arc<HostDriver>>,
        client_extensions: &[wire::control::ExtensionInfo],
    ) -> Server {
        let carried = client_extensions
            .iter()
            .filter_map(|c| {
                wire::desc::extension(&c.name)
                    .filter(|e| !e.client)
                    .map(|e| (c.name.clone(), c.spec_version.min(e.spec_version)))
            })
            .collect();
        Server {
            host: host.into(),
            objects: Objects::default(),
            carried,
            tables: RwLock::new(HashMap::new()),
            limits: Limits::from_env(),
            memory: Memory::default(),
            instances: Default::default(),
            semaphores: Default::default(),
            command_buffers: Default::default(),
            pipelines: Default::default(),
            images: Default::default(),
            devices: Default::default(),
            feedback: Default::default(),
        }
    }

    /// The families' special handling before the host sees a call.
    ///
    /// # Safety
    /// `args` were decoded for `h.cmd`; every pointer in them points into `h.arena`.
    unsafe fn before(&self, args: &mut [u64], h: &Hook) -> Before {
        match h.cmd.id {
            id::vkCreateInstance => instance::before_create(self, args, h),
            id::vkDestroyInstance => instance::before_destroy(self, args),
            id::vkCreateDevice => device::before_create(self, args, h),
            id::vkAllocateMemory => memory::before_allocate(self, args, h),
            id::vkCreateBuffer | id::vkCreateImage => memory::before_create_resource(self, args, h),
            id::vkGetPhysicalDeviceExternalBufferProperties => {
                external::before_buffer_query(self, args, h)
            }
            id::vkGetPhysicalDeviceImageFormatProperties2 => {
                external::before_image_query(self, args, h)
            }
            id::vkGetMemoryFdKHR | id::vkGetMemoryFdPropertiesKHR => {
                external::answered_by_client(h)
            }
            id::vkQueueSubmit | id::vkQueueSubmit2 => queue::before_submit(self, args, h),
            id::vkResetFences => queue::before_reset_fences(self, args, h),
            id::vkDestroyFence | id::vkDestroySemaphore => {
                queue::before_destroy_sync(self, args, h)
            }
            id::vkDestroyDevice => device::before_destroy(self, h),
            id::vkQueueWaitIdle
            | id::vkDeviceWaitIdle
            | id::vkWaitForFences
            | id::vkGetFenceStatus
            | id::vkGetEventStatus => queue::before_sync(self, h).unwrap_or(HOST),
            id::vkGetSemaphoreCounterValue | id::vkWaitSemaphores => {
                queue::before_sync(self, h).unwrap_or_else(|| queue::before_timeline(self, args, h))
            }
            id::vkSignalSemaphore => queue::before_timeline(self, args, h),
            id::vkBeginCommandBuffer | id::vkResetCommandBuffer => {
                command_buffer::before_begin(self, args, h)
            }
            id::vkCreateDescriptorSetLayout => descriptor::before_create_layout(args, h),
            id::vkCreateQueryPool => query::before_create_pool(args, h),
            id::vkCreateRenderPass | id::vkCreateRenderPass2 => {
                pipeline::before_render_pass(args, h)
            }
            id::vkCreateGraphicsPipelines => pipeline::before_graphics(self, args, h),
            id::vkCreateComputePipelines => pipeline::before_compute(args, h),
            id::vkCreateSampler => sampler::before_create(args),
            id::vkDestroyImage => image::before_destroy(self, args),
            id::vkDestroyPipelineLayout => pipeline::before_destroy_layout(self, args),
            id::vkSetPrivateData | id::vkGetPrivateData => private_data::before(self, args, h),
            _ => HOST,
        }
    }

    /// The families' special handling after a successful call.
    ///
    /// # Safety
    /// `call` is the decoded call of `h.cmd`, which the host (or a hook) answered.
    unsafe fn after(&self, call: &DecodedCall, h: &Hook, pending: Pending) {
        let args = &call.args;
        match h.cmd.id {
            id::vkCreateInstance => instance::after_create(self, args),
            id::vkGetPhysicalDeviceProperties2 => instance::after_properties(args),
            id::vkCreateDevice => device::after_create(self, args, h, pending),
            id::vkGetPhysicalDeviceMemoryProperties | id::vkGetPhysicalDeviceMemoryProperties2 => {
                memory::after_properties(self, args, h)
            }
            id::vkAllocateMemory => memory::after_allocate(self, call, pending),
            id::vkGetPhysicalDeviceExternalBufferProperties => {
                external::after_buffer_query(args, pending)
            }
            id::vkGetPhysicalDeviceImageFormatProperties2 => {
                external::after_image_query(args, pending)
            }
            id::vkGetPhysicalDeviceExternalSemaphoreProperties
            | id::vkGetPhysicalDeviceExternalFenceProperties => {
                queue::after_external_properties(args, h)
            }
            id::vkCreateSemaphore => queue::after_create_semaphore(self, args),
            id::vkCreateImage => image::after_create(self, args),
            id::vkCreateImageView => image::after_create_view(self, args),
            id::vkDestroyImageView => image::after_destroy_view(self, args, h),
            id::vkQueueSubmit | id::vkQueueSubmit2 => {
                if let Pending::Fence(f) = pending {
                    queue::after_submit(self, args, h, f);
                }
            }
            id::vkQueueWaitIdle
            | id::vkDeviceWaitIdle
            | id::vkWaitForFences
            | id::vkGetFenceStatus
            | id::vkWaitSemaphores
            | id::vkGetSemaphoreCounterValue
            | id::vkSignalSemaphore
            | id::vkSetEvent
            | id::vkResetEvent
            | id::vkGetEventStatus => queue::after_sync(self, args, h),
            id::vkCreateRenderPass | id::vkCreateRenderPass2 => {
                pipeline::after_render_pass(self, args, h)
            }
            id::vkAllocateCommandBuffers => command_buffer::after_allocate(self, call),
            id::vkAllocateDescriptorSets => descriptor::after_allocate_sets(self, call),
            id::vkResetDescriptorPool => descriptor::after_reset_pool(self, args),
            _ => {}
        }
    }

    /// The host instance or device whose table serves a call whose first argument is `id`.
    fn owner_of(&self, id: ClientId) -> HostHandle {
        match self.objects.get(id) {
            Some(e) if e.ty == vk::ObjectType::INSTANCE || e.ty == vk::ObjectType::DEVICE => e.host,
            Some(e) => e.owner,
            None => HostHandle(0),
        }
    }

    /// Host extensions (instance or device) both sides carry, at the lowest spec version.
    pub fn filter_extensions(
        &self,
        all: Vec<vk::ExtensionProperties>,
        instance: bool,
    ) -> Vec<vk::ExtensionProperties> {
        all.into_iter()
            .filter_map(|mut p| {
                let name = p.extension_name_as_c_str().ok()?.to_str().ok()?;
                // The ICD's own extensions (window systems) are never the host's to offer.
                let ours =
                    wire::desc::extension(name).filter(|e| e.instance == instance && !e.client)?;
                let theirs = *self.carried.get(name)?;
                p.spec_version = p.spec_version.min(theirs).min(ours.spec_version);
                Some(p)
            })
            .collect()
    }

    /// Executes one request and encodes its reply into `out`. A `posted` request has nobody
    /// waiting for its reply: a failure it meets goes to its device's next synchronisation.
    pub fn execute(
        &self,
        cmd: &'static CommandDesc,
        payload: &[u8],
        arena: &Bump,
        out: &mut Encoder,
        posted: bool,
    ) -> Result<(), ExecError> {
        let route = self.route(cmd, Self::first_id(cmd, payload)?)?;
        self.execute_routed(cmd, payload, arena, out, &route, posted)
    }

    /// Decodes a request as [`Server::execute`] would, without executing it (`replay::Kept`
    /// learns from it which object a creation would bind, on which physical device).
    pub fn decode<'a>(
        &self,
        cmd: &'static CommandDesc,
        payload: &[u8],
        arena: &'a Bump,
    ) -> Result<DecodedCall<'a>, ExecError> {
        let route = self.route(cmd, Self::first_id(cmd, payload)?)?;
        let cx = CallObjects {
            objects: &self.objects,
            owner: route.owner,
        };
        interp::decode_request(&mut Decoder::new(payload), cmd, arena, &cx)
            .map_err(|err| ExecError::Decode { cmd: cmd.name, err })
    }

    /// The object a request is made on: its first parameter, none for global commands.
    fn first_id(cmd: &'static CommandDesc, payload: &[u8]) -> Result<ClientId, ExecError> {
        Ok(if cmd.level == Level::Global {
            ClientId(0)
        } else {
            let b = payload.get(..8).ok_or(ExecError::Decode {
                cmd: cmd.name,
                err: DecodeError::Truncated {
                    needed: 8,
                    left: payload.len(),
                },
            })?;
            ClientId(u64::from_le_bytes(b.try_into().unwrap()))
        })
    }

    /// Which instance or device serves calls made on object `first`.
    pub fn route(&self, cmd: &'static CommandDesc, first: ClientId) -> Result<Route, ExecError> {
        let owner = self.owner_of(first);
        let table = self.table(owner);
        if cmd.level != Level::Global && table.is_none() {
            let err = DecodeError::UnknownHandle {
                ty: vk::ObjectType::UNKNOWN,
                id: first.0,
            };
            return Err(ExecError::Decode { cmd: cmd.name, err });
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
        posted: bool,
    ) -> Result<(), ExecError> {
        let derr = |err| ExecError::Decode { cmd: cmd.name, err };
        let owner = route.owner;
        let table = route.table.as_deref();
        let cx = CallObjects {
            objects: &self.objects,
            owner,
        };
        let mut dc = Decoder::new(payload);
        let mut call = interp::decode_request(&mut dc, cmd, arena, &cx).map_err(derr)?;
        let hook = Hook { cmd, arena, table };
        // Refused before the host allocates anything for the new objects; a posted creation
        // spends the room set aside for it (`limits::Limits::grant`), if any.
        let n = call.new_handles.len();
        let over_objects = cmd.creates
            && n > 0
            && !(posted && self.limits.spend(owner.0, n))
            && !self.limits.objects_fit(cmd.name, self.objects.count(), n);
        let (early, pending) = if over_objects {
            answer(vk::Result::ERROR_OUT_OF_HOST_MEMORY)
        } else {
            // SAFETY: the arguments were decoded for `cmd`, pointers into `arena`.
            unsafe { self.before(&mut call.args, &hook) }
        };
        let ret = if let Some(r) = early {
            r
        } else if cmd.id == id::vkEnumerateDeviceExtensionProperties {
            // SAFETY: the decoded arguments of that command.
            unsafe {
                device::extensions(
                    self,
                    EnumerateDeviceExtensionProperties::of(&call.args),
                    table,
                )
            }
        } else {
            let fp = self
                .resolve(cmd, table)
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
        let created = call.new_handles.iter().filter_map(|n| {
            // SAFETY: the slot is arena memory, zeroed, that the driver wrote the new handle into.
            let host = HostHandle(unsafe { *n.slot });
            // What the reply tells the client exists, and nothing else.
            if !interp::created(cmd, ret, host.0) {
                return None;
            }
            let own = if n.ty == vk::ObjectType::INSTANCE || n.ty == vk::ObjectType::DEVICE {
                host
            } else {
                owner
            };
            let e = Entry {
                ty: n.ty,
                host,
                owner: own,
            };
            Some((ClientId(n.id), e))
        });
        self.objects.bind_all(created);
        if ok {
            // SAFETY: the call returned; its outputs are filled.
            unsafe { self.after(&call, &hook, pending) };
        } else if posted {
            // Nobody reads this result; the device's next synchronisation reports it.
            queue::after_failed_post(self, &hook, vk::Result::from_raw(ret as i64 as i32));
        }
        // Before the destruction unbinds a pool's command buffers.
        command_buffer::recording_ended(self, cmd, &call.args);
        if let Some(i) = cmd.destroys {
            if !deferred {
                self.destroyed(cmd, i as usize, &call.args, &call.destroyed);
            }
        }
        if posted {
            // Nobody reads the reply (2048 created flags for a posted set allocation).
            return Ok(());
        }
        // SAFETY: the call returned; its outputs are filled.
        unsafe { interp::encode_reply(out, cmd, &call, ret, &cx) }.map_err(derr)
    }

    /// Unbinds what a destroying command destroyed: `ids` are the ids the client named it by.
    fn destroyed(&self, cmd: &CommandDesc, param: usize, args: &[u64], ids: &[u64]) {
        let Some(&raw) = args.get(param) else { return };
        let host = HostHandle(raw);
        match cmd.params[param].kind {
            Kind::Value(Ty::Dispatchable(vk::ObjectType::INSTANCE | vk::ObjectType::DEVICE))
            | Kind::Object(Ty::Dispatchable(vk::ObjectType::INSTANCE | vk::ObjectType::DEVICE)) => {
                // The children of an instance or device go with it.
                self.objects.unbind_owned_by(host);
                self.remove_table(host);
                self.memory.forget_device(host.0);
                self.limits.device_gone(host.0);
            }
            Kind::Value(Ty::Handle(ty) | Ty::Dispatchable(ty))
            | Kind::Object(Ty::Handle(ty) | Ty::Dispatchable(ty)) => {
                if let Some(&id) = ids.first().filter(|id| **id != 0) {
                    self.unbind_id(ty, ClientId(id), host);
                }
            }
            // vkFreeCommandBuffers, vkFreeDescriptorSets: the count precedes the array.
            Kind::Array {
                elem: Ty::Handle(ty) | Ty::Dispatchable(ty),
                ..
            } if param > 0 => {
                // Memory's own accounts are settled after the tables' lock is released.
                let mut memory = Vec::new();
                self.objects.unbind_ids(ty, ids, |id| {
                    if ty == vk::ObjectType::DEVICE_MEMORY {
                        memory.push(id);
                    }
                });
                for id in memory {
                    self.memory.release(id.0);
                    self.limits.freed(id.0);
                }
            }
            _ => {}
        }
    }

    /// Unbinds the object of type `ty` the host knows as `host`.
    pub fn unbind_host(&self, ty: vk::ObjectType, host: HostHandle) {
        if let Some(id) = self.objects.id_of(ty, host) {
            self.unbind_id(ty, id, host);
        }
    }

    /// Unbinds object `id` of type `ty`, the host's `host`.
    fn unbind_id(&self, ty: vk::ObjectType, id: ClientId, host: HostHandle) {
        let Some(e) = self.objects.get(id).filter(|e| e.ty == ty) else {
            return;
        };
        if let Some(kind) = queue::watched_kind(ty) {
            let table = self.device_table(e.owner);
            self.feedback.unbind(table.as_deref(), kind, host.0);
        }
        self.objects.unbind(id);
        if ty == vk::ObjectType::DEVICE_MEMORY {
            self.memory.release(id.0);
            self.limits.freed(id.0);
        }
    }
}
