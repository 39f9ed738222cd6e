//! Devices: creation with host-memory import enabled where the host has it (the shared memory
//! behind every allocation), the device extensions the client sees, and the cleanup of a
//! device the client left behind.

use crate::dispatch::{Before, Hook, Pending, Pfn, Server, HOST};
use crate::generated::views;
use crate::memory;
use crate::objects::{ClientId, Entry, HostHandle};
use crate::tables::Table;
use crate::util::{enumerate, fill};
use ash::vk::{self, Handle};
use std::ffi::CStr;
use std::sync::Arc;

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

/// No watcher may wait in a device the host is about to destroy.
pub fn before_destroy(server: &Server, h: &Hook) -> Before {
    if let Some((device, _)) = h.table.and_then(|t| t.device) {
        server.feedback.close_device(device.as_raw());
    }
    HOST
}

/// Enables host-memory import on a device whose physical device has it.
///
/// # Safety
/// `args` are the decoded arguments of `vkCreateDevice`, in `h.arena`.
pub unsafe fn before_create(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    let v = views::CreateDevice::of(args);
    if !host_has_import(server, v.physical_device, h.table) {
        return HOST;
    }
    let info = &mut *(v.p_create_info as *mut vk::DeviceCreateInfo);
    let names = crate::util::slice(
        info.pp_enabled_extension_names,
        u64::from(info.enabled_extension_count),
    );
    if !names
        .iter()
        .any(|n| CStr::from_ptr(*n) == memory::IMPORT_EXTENSION)
    {
        let more = h
            .arena
            .alloc_slice_fill_copy(names.len() + 1, std::ptr::null());
        more[..names.len()].copy_from_slice(names);
        more[names.len()] = memory::IMPORT_EXTENSION.as_ptr();
        info.pp_enabled_extension_names = more.as_ptr();
        info.enabled_extension_count = more.len() as u32;
    }
    (None, Pending::ImportEnabled)
}

/// Learns how the new device imports host memory, and serves its calls from now on.
///
/// # Safety
/// `args` are the arguments of a `vkCreateDevice` that succeeded.
pub unsafe fn after_create(server: &Server, args: &[u64], h: &Hook, pending: Pending) {
    let v = views::CreateDevice::of(args);
    let device = *v.p_device;
    let Some(t) = h.table else { return };
    if matches!(pending, Pending::ImportEnabled) {
        add_device_memory(server, v.physical_device, device, t);
    }
    if let Some(gdpa) = server
        .host
        .instance_proc(t.instance, c"vkGetDeviceProcAddr")
    {
        let gdpa: vk::PFN_vkGetDeviceProcAddr = std::mem::transmute(gdpa);
        let owner = HostHandle(device.as_raw());
        server.add_table(owner, t.instance, Some((device, gdpa)));
    }
}

/// Whether the host driver can import host memory on `pd`.
pub fn host_has_import(server: &Server, pd: vk::PhysicalDevice, table: Option<&Table>) -> bool {
    host_extensions(server, pd, table).is_some_and(|list| {
        list.iter()
            .any(|p| p.extension_name_as_c_str() == Ok(memory::IMPORT_EXTENSION))
    })
}

/// The host's device extensions of `pd`, asked once per instance: they never change, and the
/// loader's answer costs a quadratic merge of names (found as most of a fuzz input's time).
fn host_extensions(
    server: &Server,
    pd: vk::PhysicalDevice,
    table: Option<&Table>,
) -> Option<Arc<[vk::ExtensionProperties]>> {
    let t = table?;
    if let Some(list) = t.device_extensions.lock().get(&pd.as_raw()) {
        return Some(Arc::clone(list));
    }
    let f = server
        .host
        .instance_proc(t.instance, c"vkEnumerateDeviceExtensionProperties")?;
    // SAFETY: the host's function of that name, called on one of its physical devices.
    let list: Arc<[vk::ExtensionProperties]> = unsafe {
        let f: vk::PFN_vkEnumerateDeviceExtensionProperties = std::mem::transmute(f);
        enumerate(|n, p| f(pd, std::ptr::null(), n, p)).into()
    };
    let mut kept = t.device_extensions.lock();
    kept.insert(pd.as_raw(), Arc::clone(&list));
    Some(list)
}

/// Learns how a new device imports host memory.
unsafe fn add_device_memory(
    server: &Server,
    pd: vk::PhysicalDevice,
    device: vk::Device,
    t: &Table,
) {
    let inst = |n: &CStr| server.host.instance_proc(t.instance, n);
    let (Some(mp), Some(gdpa)) = (
        inst(c"vkGetPhysicalDeviceMemoryProperties"),
        inst(c"vkGetDeviceProcAddr"),
    ) else {
        return;
    };
    // A Vulkan 1.0 instance (vkcube's) without VK_KHR_get_physical_device_properties2 has no
    // vkGetPhysicalDeviceProperties2: the import alignment is then the page size.
    let p2 = inst(c"vkGetPhysicalDeviceProperties2")
        .or_else(|| inst(c"vkGetPhysicalDeviceProperties2KHR"));
    let gdpa: vk::PFN_vkGetDeviceProcAddr = std::mem::transmute(gdpa);
    let Some(hp) = gdpa(device, c"vkGetMemoryHostPointerPropertiesEXT".as_ptr()) else {
        return;
    };
    let info = memory::device_memory(
        pd,
        std::mem::transmute::<Pfn, vk::PFN_vkGetPhysicalDeviceMemoryProperties>(mp),
        p2.map(|p2| std::mem::transmute::<Pfn, vk::PFN_vkGetPhysicalDeviceProperties2>(p2)),
        std::mem::transmute::<Pfn, vk::PFN_vkGetMemoryHostPointerPropertiesEXT>(hp),
    );
    server.memory.add_device(device.as_raw(), info);
}

/// `vkEnumerateDeviceExtensionProperties`: the host's list, less what Airlock cannot carry.
///
/// # Safety
/// `v` are decoded arguments: a count and a (possibly NULL) array of as many elements.
pub unsafe fn extensions(
    server: &Server,
    v: views::EnumerateDeviceExtensionProperties,
    table: Option<&Table>,
) -> u64 {
    let res = |r: vk::Result| r.as_raw() as i64 as u64;
    if !v.p_layer_name.is_null() {
        return res(vk::Result::ERROR_LAYER_NOT_PRESENT);
    }
    let pd = v.physical_device;
    let kept = server.devices.extensions.lock().get(&pd.as_raw()).cloned();
    let list = match kept {
        Some(list) => list,
        None => {
            let Some(all) = host_extensions(server, pd, table) else {
                return res(vk::Result::ERROR_INITIALIZATION_FAILED);
            };
            let mut list = server.filter_extensions(all.to_vec(), false);
            if !crate::external::opaque_fds(server, pd, table) {
                list.retain(|p| p.extension_name_as_c_str() != Ok(crate::external::EXTENSION));
            }
            let list: Arc<[vk::ExtensionProperties]> = list.into();
            let mut kept = server.devices.extensions.lock();
            kept.insert(pd.as_raw(), Arc::clone(&list));
            list
        }
    };
    fill(&list, v.p_property_count, v.p_properties)
}

/// What the device family keeps: the device extensions each physical device offers this
/// client (the host's, filtered by what both sides carry), by host handle, worked out once.
#[derive(Default)]
pub struct Devices {
    extensions: parking_lot::Mutex<std::collections::HashMap<u64, Arc<[vk::ExtensionProperties]>>>,
}

/// Destroys a device the client left behind, and every object the client made on it: the
/// device's work is waited for, then its children go in an order where nothing is destroyed
/// before what uses it. Returns how many children it destroyed.
pub fn destroy(server: &Server, host: HostHandle) -> usize {
    server.feedback.close_device(host.0);
    let mut freed = 0;
    if let Some((dev, gdpa)) = server.device_table(host).and_then(|t| t.device) {
        freed = destroy_children(server, host, dev, gdpa);
        // SAFETY: a device the host created, now without children, and nobody using it.
        unsafe {
            if let Some(d) = gdpa(dev, c"vkDestroyDevice".as_ptr()) {
                let d: vk::PFN_vkDestroyDevice = std::mem::transmute(d);
                d(dev, std::ptr::null());
            }
        }
    }
    forget(server, host);
    freed
}

/// The children the client made on device `host`, destroyed after its work is done.
fn destroy_children(
    server: &Server,
    host: HostHandle,
    dev: vk::Device,
    gdpa: vk::PFN_vkGetDeviceProcAddr,
) -> usize {
    let mut freed = 0;
    // SAFETY: a device the host created, its children, and nobody using either now.
    unsafe {
        let f = |n: &CStr| gdpa(dev, n.as_ptr());
        if let Some(wait) = f(c"vkDeviceWaitIdle") {
            let wait: vk::PFN_vkDeviceWaitIdle = std::mem::transmute(wait);
            let _ = wait(dev);
        }
        let live = server.objects.all();
        for (ty, name) in CHILD_DESTROYERS {
            let Some(destroy) = f(name) else { continue };
            let destroy: DestroyChild = std::mem::transmute(destroy);
            for (id, e) in live.iter().filter(|(_, e)| e.owner == host && e.ty == *ty) {
                destroy(dev, e.host.0, std::ptr::null());
                server.objects.unbind(*id);
                freed += 1;
            }
        }
    }
    freed
}

/// What this server state knew of device `host`, gone.
fn forget(server: &Server, host: HostHandle) {
    server.objects.unbind_owned_by(host);
    server.remove_table(host);
    server.memory.forget_device(host.0);
    server.limits.device_gone(host.0);
}

/// A host device kept alive between two server states (`replay::Kept`, for the fuzzer):
/// what [`release`] returns and [`adopt`] takes.
pub struct KeptDevice {
    pub host: HostHandle,
    pub physical: vk::PhysicalDevice,
    table: Arc<Table>,
    imports: bool,
}

/// Takes device `host` out of this server state without destroying it on the host: its children
/// are destroyed, its ids unbound. `None` when it had children of a kind [`destroy`] does not
/// know (nothing may outlive the state that made it): the device is then destroyed.
pub fn release(
    server: &Server,
    host: HostHandle,
    physical: vk::PhysicalDevice,
) -> Option<KeptDevice> {
    let table = server.device_table(host)?;
    let (dev, gdpa) = table.device?;
    let known = |ty: vk::ObjectType| {
        matches!(
            ty,
            vk::ObjectType::QUEUE | vk::ObjectType::COMMAND_BUFFER | vk::ObjectType::DESCRIPTOR_SET
        ) || CHILD_DESTROYERS.iter().any(|(t, _)| *t == ty)
    };
    let unknown = server
        .objects
        .all()
        .iter()
        .any(|(_, e)| e.owner == host && e.host != host && !known(e.ty));
    if unknown {
        destroy(server, host);
        return None;
    }
    server.feedback.close_device(host.0);
    destroy_children(server, host, dev, gdpa);
    let imports = server.memory.imports(host.0);
    forget(server, host);
    Some(KeptDevice {
        host,
        physical,
        table,
        imports,
    })
}

impl KeptDevice {
    /// The host instance the device was made on.
    pub fn instance(&self) -> vk::Instance {
        self.table.instance
    }
}

/// Destroys a device [`release`] kept.
pub fn discard(server: &Server, kept: KeptDevice) {
    server.tables.write().insert(kept.host.0, kept.table);
    destroy(server, kept.host);
}

/// Binds client id `id` to a device [`release`] kept, as a `vkCreateDevice` would have.
pub fn adopt(server: &Server, id: ClientId, kept: KeptDevice) {
    let (ty, host, owner) = (vk::ObjectType::DEVICE, kept.host, kept.host);
    server.objects.bind_all([(id, Entry { ty, host, owner })]);
    if kept.imports {
        if let Some((device, _)) = kept.table.device {
            // SAFETY: the host's device, made on `kept.physical` of `kept.table`'s instance.
            unsafe { add_device_memory(server, kept.physical, device, &kept.table) };
        }
    }
    server.tables.write().insert(kept.host.0, kept.table);
}

/// `wire::private::CREDIT`: room under the object limit set aside for a device's posted
/// creations (`limits::Limits::grant`); the number granted.
pub fn credit_request(server: &Server, payload: &[u8]) -> Result<u64, String> {
    let device = |id| {
        let e = server.objects.lookup(vk::ObjectType::DEVICE, ClientId(id));
        e.ok().map(|e| e.host.0)
    };
    server
        .limits
        .credit_request(server.objects.count(), payload, device)
}
