//! Instances: creating one starts the server (on first need) and makes the instance's wrapper,
//! which keeps what it enabled and the physical devices the server named under it; what the
//! ICD answers alone (extension and layer lists).

use crate::call::call;
use crate::conn;
use crate::log::log;
use crate::objects::{header, Object};
use crate::util::{fill, names};
use ash::vk::{self, Handle};
use std::collections::HashSet;
use std::ffi::{c_char, CStr};
use std::sync::Arc;
use wire::desc::ExtensionDesc;
use wire::generated::commands::{C_vkCreateInstance, C_vkDestroyInstance, EXTENSIONS};

/// What an instance or device has enabled: its API version and extensions (a device's include
/// its instance's).
#[derive(Debug, Default)]
pub struct Enabled {
    minor: u32,
    extensions: HashSet<String>,
}

impl Enabled {
    /// Whether a command given by `origins` (core versions, extensions) is available.
    pub fn provides(&self, origins: &[&str]) -> bool {
        origins
            .iter()
            .any(|o| match o.strip_prefix("VK_VERSION_1_") {
                Some(minor) => minor.parse::<u32>().is_ok_and(|m| m <= self.minor),
                None => self.extensions.contains(*o),
            })
    }

    /// This set with `more` extensions enabled on top (a device's on its instance's).
    pub fn with(&self, more: impl Iterator<Item = String>) -> Enabled {
        let mut extensions = self.extensions.clone();
        extensions.extend(more);
        Enabled {
            minor: self.minor,
            extensions,
        }
    }
}

/// An instance's own state.
pub struct Instance {
    pub enabled: Arc<Enabled>,
}

/// What the instance of `physical_device` enabled.
///
/// # Safety
/// `physical_device` is a live physical device wrapper, named under an instance.
pub unsafe fn enabled_of_physical_device(physical_device: u64) -> Arc<Enabled> {
    let instance = header(physical_device).parent;
    Arc::clone(&Object::<Instance>::get(instance).state.enabled)
}

pub fn properties(name: &str, spec_version: u32) -> vk::ExtensionProperties {
    let mut p = vk::ExtensionProperties {
        spec_version,
        ..Default::default()
    };
    for (d, s) in p.extension_name.iter_mut().zip(name.bytes().take(255)) {
        *d = s as c_char;
    }
    p
}

/// The extensions the ICD implements alone (window-system integration), instance or device.
pub fn own_extensions(instance: bool) -> impl Iterator<Item = &'static ExtensionDesc> {
    EXTENSIONS
        .iter()
        .filter(move |e| e.client && e.instance == instance)
}

/// Whether `name` is an extension the ICD implements alone: kept out of what the server sees.
pub fn is_own_extension(name: &str) -> bool {
    EXTENSIONS.iter().any(|e| e.client && e.name == name)
}

/// `names` without the ICD's own extensions, as C strings for the server's create call.
///
/// # Safety
/// A non-NULL `list` points at `n` pointers, each NULL or a valid C string.
pub unsafe fn carried_names(list: *const *const c_char, n: u32) -> Vec<*const c_char> {
    crate::util::app_slice(list, n)
        .iter()
        .copied()
        .filter(|p| !p.is_null() && !is_own_extension(&CStr::from_ptr(*p).to_string_lossy()))
        .collect()
}

/// The host's instance extensions that Airlock carries, as the handshake reported them, and
/// the ICD's own.
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
        .chain(own_extensions(true).map(|e| properties(e.name, e.spec_version)))
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
    for name in names(i.pp_enabled_extension_names, i.enabled_extension_count) {
        if !conn.welcome.extensions.iter().any(|e| e.name == name) && !is_own_extension(&name) {
            log!(
                warn,
                "airlock: vkCreateInstance: extension {name:?} is not carried"
            );
            return vk::Result::ERROR_EXTENSION_NOT_PRESENT;
        }
    }
    // The server creates the instance without the extensions that are the ICD's alone.
    let carried = carried_names(i.pp_enabled_extension_names, i.enabled_extension_count);
    let sent = vk::InstanceCreateInfo {
        enabled_extension_count: carried.len() as u32,
        pp_enabled_extension_names: carried.as_ptr(),
        ..*i
    };
    let r = vk::Result::from_raw(call(
        &C_vkCreateInstance,
        &[&sent as *const _ as u64, allocator as u64, instance as u64],
    ) as i32);
    if r != vk::Result::SUCCESS {
        return r;
    }
    // Without application info the instance is Vulkan 1.0; the host device is 1.3 at most.
    let version = i.p_application_info.as_ref().map_or(0, |a| a.api_version);
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
    // The generic path leaves the new instance's id; the wrapper carries its state.
    let id = (*instance).as_raw();
    let state = Instance {
        enabled: Arc::new(enabled),
    };
    *instance = vk::Instance::from_raw(Object::create(id, &conn, 0, state));
    r
}

/// Frees the instance's wrapper, and with it the physical devices named under it.
pub unsafe extern "system" fn vkDestroyInstance(
    instance: vk::Instance,
    allocator: *const vk::AllocationCallbacks,
) {
    let h = instance.as_raw();
    if h == 0 {
        return;
    }
    call(&C_vkDestroyInstance, &[h, allocator as u64]);
    crate::stats::dump();
    Object::<Instance>::free(h);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_sets_provide_their_versions_and_extensions() {
        let instance = Enabled {
            minor: 1,
            extensions: ["VK_KHR_surface".to_string()].into(),
        };
        let device = instance.with(["VK_KHR_swapchain".to_string()].into_iter());
        assert!(device.provides(&["VK_VERSION_1_0"]));
        assert!(device.provides(&["VK_VERSION_1_1"]));
        assert!(!device.provides(&["VK_VERSION_1_2"]));
        assert!(device.provides(&["VK_KHR_swapchain"]));
        assert!(device.provides(&["VK_KHR_surface"]));
        assert!(!instance.provides(&["VK_KHR_swapchain"]));
    }
}
