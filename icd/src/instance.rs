//! Instance-level entry points written by hand: proc-address lookup, what the ICD answers alone
//! (extension and layer lists), and instance creation and destruction, which start the server
//! and own the instance's wrapper.

use crate::call::call;
use crate::conn;
use crate::generated::entry::ENTRIES;
use crate::objects::{free_children, Dispatchable};
use ash::vk;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, CStr};
use std::sync::Arc;
use wire::desc::Level;
use wire::generated::commands::{C_vkCreateInstance, C_vkDestroyInstance, COMMANDS};

/// What an instance or device has enabled: its API version and extensions (a device's include
/// its instance's).
#[derive(Debug, Default)]
pub struct Enabled {
    minor: u32,
    extensions: HashSet<String>,
}

impl Enabled {
    /// Whether a command given by `origins` (core versions, extensions) is available.
    fn provides(&self, origins: &[&str]) -> bool {
        origins
            .iter()
            .any(|o| match o.strip_prefix("VK_VERSION_1_") {
                Some(minor) => minor.parse::<u32>().is_ok_and(|m| m <= self.minor),
                None => self.extensions.contains(*o),
            })
    }
}

/// Enabled sets by instance or device id.
#[derive(Default)]
pub struct EnabledSets(HashMap<u64, Arc<Enabled>>);

unsafe fn names(list: *const *const c_char, n: u32) -> impl Iterator<Item = String> {
    (0..n as usize).filter_map(move |i| {
        let p = *list.add(i);
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    })
}

/// Records what a new device enables, on top of its instance.
pub unsafe fn enable_device(
    conn: &conn::Connection,
    device_id: u64,
    instance_id: u64,
    info: &vk::DeviceCreateInfo<'_>,
) {
    let mut sets = conn.enabled.lock();
    let base = sets.0.get(&instance_id).cloned().unwrap_or_default();
    let mut extensions = base.extensions.clone();
    if !info.pp_enabled_extension_names.is_null() {
        extensions.extend(names(
            info.pp_enabled_extension_names,
            info.enabled_extension_count,
        ));
    }
    let e = Enabled {
        minor: base.minor,
        extensions,
    };
    sets.0.insert(device_id, Arc::new(e));
}

pub fn forget_enabled(conn: &conn::Connection, id: u64) {
    conn.enabled.lock().0.remove(&id);
}

/// The entry point named `name`, if it is one of `levels`, with the names of what provides it.
pub unsafe fn lookup_entry(
    name: *const c_char,
    levels: &[Level],
) -> Option<(unsafe extern "system" fn(), &'static [&'static str])> {
    if name.is_null() {
        return None;
    }
    let name = CStr::from_ptr(name).to_str().ok()?;
    let i = ENTRIES.binary_search_by(|e| e.0.cmp(name)).ok()?;
    let (_, id, f, origins) = ENTRIES[i];
    if levels.contains(&COMMANDS[id as usize].level) {
        Some((f?, origins))
    } else {
        None
    }
}

/// The entry point named `name`, if it is one of `levels`.
pub unsafe fn lookup(name: *const c_char, levels: &[Level]) -> vk::PFN_vkVoidFunction {
    lookup_entry(name, levels).map(|(f, _)| f)
}

const ALL: &[Level] = &[
    Level::Global,
    Level::Instance,
    Level::PhysicalDevice,
    Level::Device,
];

pub unsafe extern "system" fn vkGetInstanceProcAddr(
    instance: vk::Instance,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    if instance == vk::Instance::null() {
        lookup(name, &[Level::Global])
    } else {
        lookup(name, ALL)
    }
}

/// A device's commands: only those of its API version and of the extensions it (or its instance)
/// enabled, as Vulkan requires of `vkGetDeviceProcAddr`.
pub unsafe extern "system" fn vkGetDeviceProcAddr(
    device: vk::Device,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    use ash::vk::Handle;
    let (f, origins) = lookup_entry(name, &[Level::Device])?;
    if device == vk::Device::null() {
        return None;
    }
    let conn = Dispatchable::conn_borrowed(device.as_raw());
    let id = Dispatchable::id_of(device.as_raw());
    let enabled = conn.enabled.lock().0.get(&id).cloned()?;
    enabled.provides(origins).then_some(f)
}

unsafe fn fill<T: Copy>(list: &[T], count: *mut u32, out: *mut T) -> vk::Result {
    if count.is_null() {
        return vk::Result::ERROR_INITIALIZATION_FAILED;
    }
    if out.is_null() {
        *count = list.len() as u32;
        return vk::Result::SUCCESS;
    }
    let n = (*count as usize).min(list.len());
    std::ptr::copy_nonoverlapping(list.as_ptr(), out, n);
    *count = n as u32;
    if n < list.len() {
        vk::Result::INCOMPLETE
    } else {
        vk::Result::SUCCESS
    }
}

fn properties(name: &str, spec_version: u32) -> vk::ExtensionProperties {
    let mut p = vk::ExtensionProperties {
        spec_version,
        ..Default::default()
    };
    for (d, s) in p.extension_name.iter_mut().zip(name.bytes().take(255)) {
        *d = s as c_char;
    }
    p
}

/// The host's instance extensions that Airlock carries, as the handshake reported them.
pub unsafe extern "system" fn vkEnumerateInstanceExtensionProperties(
    layer: *const c_char,
    count: *mut u32,
    out: *mut vk::ExtensionProperties,
) -> vk::Result {
    if !layer.is_null() {
        return vk::Result::ERROR_LAYER_NOT_PRESENT;
    }
    let conn = match conn::current() {
        Ok(c) => c,
        Err(r) => return r,
    };
    let list: Vec<_> = conn
        .welcome
        .extensions
        .iter()
        .map(|e| properties(&e.name, e.spec_version))
        .collect();
    fill(&list, count, out)
}

/// A driver has no layers of its own.
pub unsafe extern "system" fn vkEnumerateInstanceLayerProperties(
    count: *mut u32,
    out: *mut vk::LayerProperties,
) -> vk::Result {
    fill(&[], count, out)
}

pub unsafe extern "system" fn vkEnumerateDeviceLayerProperties(
    _pd: vk::PhysicalDevice,
    count: *mut u32,
    out: *mut vk::LayerProperties,
) -> vk::Result {
    fill(&[], count, out)
}

pub unsafe extern "system" fn vkCreateInstance(
    info: *const vk::InstanceCreateInfo,
    allocator: *const vk::AllocationCallbacks,
    instance: *mut vk::Instance,
) -> vk::Result {
    let conn = match conn::current() {
        Ok(c) => c,
        Err(r) => return r,
    };
    if info.is_null() || instance.is_null() {
        return vk::Result::ERROR_INITIALIZATION_FAILED;
    }
    let i = &*info;
    for k in 0..i.enabled_extension_count as usize {
        let name = CStr::from_ptr(*i.pp_enabled_extension_names.add(k));
        if !conn
            .welcome
            .extensions
            .iter()
            .any(|e| e.name.as_bytes() == name.to_bytes())
        {
            crate::log::log!(
                warn,
                "airlock: vkCreateInstance: extension {name:?} is not carried"
            );
            return vk::Result::ERROR_EXTENSION_NOT_PRESENT;
        }
    }
    let r = vk::Result::from_raw(call(
        &C_vkCreateInstance,
        &[info as u64, allocator as u64, instance as u64],
    ) as i32);
    if r == vk::Result::SUCCESS {
        use ash::vk::Handle;
        // Without application info the instance is Vulkan 1.0; the host device is 1.3 at most.
        let app = i.p_application_info.as_ref();
        let version = app.map_or(0, |a| a.api_version);
        let minor = if version == 0 {
            0
        } else if vk::api_version_major(version) > 1 {
            3
        } else {
            vk::api_version_minor(version).min(3)
        };
        let enabled = Enabled {
            minor,
            extensions: names(i.pp_enabled_extension_names, i.enabled_extension_count).collect(),
        };
        let id = Dispatchable::id_of((*instance).as_raw());
        conn.enabled.lock().0.insert(id, Arc::new(enabled));
    }
    r
}

pub unsafe extern "system" fn vkDestroyInstance(
    instance: vk::Instance,
    allocator: *const vk::AllocationCallbacks,
) {
    use ash::vk::Handle;
    let h = instance.as_raw();
    if h == 0 {
        return;
    }
    call(&C_vkDestroyInstance, &[h, allocator as u64]);
    crate::stats::dump();
    let conn = Dispatchable::conn(h);
    forget_enabled(&conn, Dispatchable::id_of(h));
    free_children(&conn, Dispatchable::id_of(h));
    Dispatchable::free(h);
}
