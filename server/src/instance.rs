//! Instances: creation (behind the validation layer with its gating messenger under
//! `AIRLOCK_VALIDATE=1`), destruction (its devices first), the instance extensions the client
//! sees, and the driver identity its physical devices report.

use crate::device;
use crate::dispatch::{answer, Before, Hook, Server, HOST};
use crate::generated::views;
use crate::objects::{ClientId, Entry, HostHandle};
use crate::tables::Table;
use crate::validation;
use ash::vk::{self, Handle};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::{c_char, CStr};
use std::sync::Arc;

/// What the instance family keeps: under `AIRLOCK_VALIDATE=1`, each host instance's gating
/// messenger (`validation.rs`).
#[derive(Default)]
pub struct Instances {
    messengers: Mutex<HashMap<u64, u64>>,
}

/// # Safety
/// `args` are the decoded arguments of `vkCreateInstance`.
pub unsafe fn before_create(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    if server.host.validated.is_none() {
        return HOST;
    }
    let v = views::CreateInstance::of(args);
    let info = &mut *(v.p_create_info as *mut vk::InstanceCreateInfo);
    if validation::prepare_instance(info, h.arena) {
        HOST
    } else {
        answer(vk::Result::ERROR_VALIDATION_FAILED_EXT)
    }
}

/// # Safety
/// `args` are the arguments of a `vkCreateInstance` that succeeded.
pub unsafe fn after_create(server: &Server, args: &[u64]) {
    let instance = *views::CreateInstance::of(args).p_instance;
    server.add_table(HostHandle(instance.as_raw()), instance, None);
    if server.host.validated.is_some() {
        if let Some(m) = validation::create_messenger(&server.host, instance) {
            let messengers = &server.instances.messengers;
            messengers.lock().insert(instance.as_raw(), m);
        }
    }
}

/// Vulkan wants an instance's devices destroyed first. A client that leaves one would have the
/// host touch it after its instance is gone (at the latest when the server cleans up after the
/// client: found by the server_stream fuzzer), so they go first, children and all.
///
/// # Safety
/// `args` are the decoded arguments of `vkDestroyInstance`.
pub unsafe fn before_destroy(server: &Server, args: &mut [u64]) -> Before {
    let instance = views::DestroyInstance::of(args).instance;
    for (host, _) in server.devices_of(instance) {
        device::destroy(server, host);
        if let Some(id) = server.objects.id_of(vk::ObjectType::DEVICE, host) {
            server.objects.unbind(id);
        }
    }
    drop_messenger(server, instance);
    HOST
}

/// Destroys an instance the client left behind.
pub fn destroy(server: &Server, host: HostHandle) {
    let instance = vk::Instance::from_raw(host.0);
    drop_messenger(server, instance);
    if let Some(f) = server.host.instance_proc(instance, c"vkDestroyInstance") {
        // SAFETY: an instance the host created whose devices are gone.
        unsafe {
            let f: vk::PFN_vkDestroyInstance = std::mem::transmute(f);
            f(instance, std::ptr::null());
        }
    }
    server.objects.unbind_owned_by(host);
    server.remove_table(host);
}

fn drop_messenger(server: &Server, instance: vk::Instance) {
    let m = server
        .instances
        .messengers
        .lock()
        .remove(&instance.as_raw());
    if let Some(m) = m {
        validation::destroy_messenger(&server.host, instance, m);
    }
}

/// Host instance extensions both sides carry, with the lowest spec version of the three.
pub fn extensions(server: &Server) -> Vec<vk::ExtensionProperties> {
    let f = server.host.instance_proc(
        vk::Instance::null(),
        c"vkEnumerateInstanceExtensionProperties",
    );
    let Some(f) = f else { return Vec::new() };
    // SAFETY: the host's function of that name, asked for the whole list.
    let all = unsafe {
        let f: vk::PFN_vkEnumerateInstanceExtensionProperties = std::mem::transmute(f);
        crate::util::enumerate(|n, p| f(std::ptr::null(), n, p))
    };
    server.filter_extensions(all, true)
}

/// The driver identity: Airlock, naming the host driver it runs on.
///
/// # Safety
/// `args` are the arguments of a `vkGetPhysicalDeviceProperties2` that returned.
pub unsafe fn after_properties(args: &[u64]) {
    let props = views::GetPhysicalDeviceProperties2::of(args).p_properties;
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

fn set_identity(name: &mut [c_char; 256], info: &mut [c_char; 256]) {
    // SAFETY: the host's NUL-terminated strings, in their fixed-size arrays.
    let (host_name, host_info) = unsafe {
        (
            CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned(),
            CStr::from_ptr(info.as_ptr()).to_string_lossy().into_owned(),
        )
    };
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

/// A host instance kept alive between two server states (`replay::Kept`, for the fuzzer).
pub struct KeptInstance {
    pub host: HostHandle,
    table: Arc<Table>,
    messenger: Option<u64>,
}

/// Takes instance `host`, whose devices are gone, out of this server state without destroying
/// it on the host. `None` when the client made other objects on it (messengers, callbacks),
/// which must not outlive this state: the caller destroys it.
pub fn release(server: &Server, host: HostHandle) -> Option<KeptInstance> {
    let table = server.table(host)?;
    let others =
        server.objects.all().iter().any(|(_, e)| {
            e.owner == host && e.host != host && e.ty != vk::ObjectType::PHYSICAL_DEVICE
        });
    if others || !server.devices_of(table.instance).is_empty() {
        return None;
    }
    let messenger = server.instances.messengers.lock().remove(&host.0);
    server.objects.unbind_owned_by(host);
    server.remove_table(host);
    Some(KeptInstance {
        host,
        table,
        messenger,
    })
}

/// Destroys an instance [`release`] kept (its kept devices gone first).
pub fn discard(server: &Server, kept: KeptInstance) {
    destroy(server, restore(server, kept));
}

/// Binds client id `id` to an instance [`release`] kept, as a `vkCreateInstance` would have.
pub fn adopt(server: &Server, id: ClientId, kept: KeptInstance) {
    let h = restore(server, kept);
    let (ty, host, owner) = (vk::ObjectType::INSTANCE, h, h);
    server.objects.bind_all([(id, Entry { ty, host, owner })]);
}

/// Gives a kept instance back its table and messenger in this server state.
fn restore(server: &Server, kept: KeptInstance) -> HostHandle {
    let h = kept.host;
    if let Some(m) = kept.messenger {
        server.instances.messengers.lock().insert(h.0, m);
    }
    server.tables.write().insert(h.0, kept.table);
    h
}
