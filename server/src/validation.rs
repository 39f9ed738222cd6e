//! `AIRLOCK_VALIDATE=1`: the Khronos validation layer between the client and the host driver,
//! as a gate rather than a report.
//!
//! The server's decoder checks every length, handle and enum, but not Vulkan's valid usage
//! (an image view's mip range inside its image, a vertex binding below the device's limit, ...),
//! which lavapipe trusts and crashes on (found by the `server_stream` fuzzer). With validation,
//! every instance the client creates gets the layer and a messenger whose callback answers
//! `VK_TRUE` to every error: the layer then does not call down, and returns
//! `VK_ERROR_VALIDATION_FAILED_EXT` where the command returns a `VkResult`. A refused `vkCmd*`
//! marks its command buffer broken (its submission fails), like a batch that did not decode.

use crate::host::{HostDriver, VALIDATION_LAYER};
use ash::vk;
use bumpalo::Bump;
use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr};

const DEBUG_UTILS: &CStr = c"VK_EXT_debug_utils";

thread_local! {
    /// Set by the callback when the layer refused the call this thread is making.
    static REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// Forgets an earlier refusal; call before each call to the host.
pub fn arm() {
    REFUSED.with(|r| r.set(false));
}

/// Whether the layer refused the call this thread made since [`arm`].
pub fn refused() -> bool {
    REFUSED.with(|r| r.get())
}

unsafe extern "system" fn refuse_errors(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    types: vk::DebugUtilsMessageTypeFlagsEXT,
    data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
    _user: *mut c_void,
) -> vk::Bool32 {
    if !severity.contains(vk::DebugUtilsMessageSeverityFlagsEXT::ERROR) {
        return vk::FALSE;
    }
    // SAFETY: the layer passes its callback data, valid for this call.
    let message = unsafe { data.as_ref() }
        .and_then(|d| unsafe { d.message_as_c_str() })
        .map(|m| m.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !types.contains(vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION) {
        // The loader's own complaints (it cannot read /proc/self/exe in the sandbox).
        tracing::debug!("loader: {message}");
        return vk::FALSE;
    }
    tracing::warn!("validation: refused: {message}");
    REFUSED.with(|r| r.set(true));
    vk::TRUE
}

fn messenger_info() -> vk::DebugUtilsMessengerCreateInfoEXT<'static> {
    vk::DebugUtilsMessengerCreateInfoEXT::default()
        .message_severity(vk::DebugUtilsMessageSeverityFlagsEXT::ERROR)
        .message_type(
            vk::DebugUtilsMessageTypeFlagsEXT::GENERAL
                | vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION
                | vk::DebugUtilsMessageTypeFlagsEXT::PERFORMANCE,
        )
        .pfn_user_callback(Some(refuse_errors))
}

/// Rewrites the client's `VkInstanceCreateInfo` for the host: the validation layer and no
/// other (a layer name from the client must not load code into the server), `VK_EXT_debug_utils`
/// enabled, and a messenger for `vkCreateInstance` itself. `false`: refused, because the
/// layer is not in place yet to check what the loader then reads: an `apiVersion` below 1.0
/// (`VUID-VkApplicationInfo-apiVersion-04010`; the loader crashed now and then on 0.320.0,
/// found by the fuzzer).
///
/// # Safety
/// `info` is a decoded create info whose pointers live in `arena`.
pub unsafe fn prepare_instance(info: &mut vk::InstanceCreateInfo<'_>, arena: &Bump) -> bool {
    if let Some(app) = info.p_application_info.as_ref() {
        let v = app.api_version;
        if v != 0 && (vk::api_version_variant(v) != 0 || v < vk::API_VERSION_1_0) {
            tracing::warn!("validation: refused: vkCreateInstance: apiVersion {v:#x} is below 1.0");
            return false;
        }
    }
    let layers = arena.alloc([VALIDATION_LAYER.as_ptr()]);
    info.pp_enabled_layer_names = layers.as_ptr();
    info.enabled_layer_count = 1;
    let names: &[*const c_char] = if info.pp_enabled_extension_names.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(
            info.pp_enabled_extension_names,
            info.enabled_extension_count as usize,
        )
    };
    if !names.iter().any(|n| CStr::from_ptr(*n) == DEBUG_UTILS) {
        let more = arena.alloc_slice_fill_copy(names.len() + 1, std::ptr::null());
        more[..names.len()].copy_from_slice(names);
        more[names.len()] = DEBUG_UTILS.as_ptr();
        info.pp_enabled_extension_names = more.as_ptr();
        info.enabled_extension_count = more.len() as u32;
    }
    let messenger = arena.alloc(messenger_info());
    messenger.p_next = info.p_next;
    info.p_next = messenger as *const _ as *const c_void;
    true
}

/// The messenger that gates every later call on `instance`; `None` when the host lacks it.
pub fn create_messenger(host: &HostDriver, instance: vk::Instance) -> Option<u64> {
    let f = host.instance_proc(instance, c"vkCreateDebugUtilsMessengerEXT")?;
    // SAFETY: the host's vkCreateDebugUtilsMessengerEXT.
    let f: vk::PFN_vkCreateDebugUtilsMessengerEXT = unsafe { std::mem::transmute(f) };
    let mut m = vk::DebugUtilsMessengerEXT::null();
    // SAFETY: a valid create info, the messenger written into `m`.
    let r = unsafe { f(instance, &messenger_info(), std::ptr::null(), &mut m) };
    if r != vk::Result::SUCCESS {
        tracing::error!("validation: vkCreateDebugUtilsMessengerEXT: {r:?}");
        return None;
    }
    Some(ash::vk::Handle::as_raw(m))
}

/// Destroys what [`create_messenger`] made, before its instance goes.
pub fn destroy_messenger(host: &HostDriver, instance: vk::Instance, messenger: u64) {
    let Some(f) = host.instance_proc(instance, c"vkDestroyDebugUtilsMessengerEXT") else {
        return;
    };
    // SAFETY: the host's vkDestroyDebugUtilsMessengerEXT.
    let f: vk::PFN_vkDestroyDebugUtilsMessengerEXT = unsafe { std::mem::transmute(f) };
    let m = <vk::DebugUtilsMessengerEXT as ash::vk::Handle>::from_raw(messenger);
    // SAFETY: a messenger of `instance`, destroyed once.
    unsafe { f(instance, m, std::ptr::null()) };
}
