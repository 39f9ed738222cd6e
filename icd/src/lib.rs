//! `libvulkan_airlock.so`: a Vulkan ICD that runs the real driver in `airlock-server`.
//!
//! Every Vulkan call the application makes is encoded ([`wire::interp`], driven by the tables
//! generated from vk.xml) and carried over shared memory to the server, which makes it on the
//! host driver. This library links no LLVM and maps no executable memory of its own.
//!
//! - [`generated::entry`]: one entry point per carried command, all taking [`call::call`];
//! - [`handwritten`]: the few written by hand, each in the module of its object family
//!   ([`instance`], [`device`], [`draw`], [`memory`], [`external`], [`command_buffer`],
//!   [`descriptor`], [`private_data`], [`queue`], [`sync`]);
//! - [`conn`]: the server connection; [`objects`]: ids and dispatchable wrappers;
//!   [`stats`]: what crossed to the server (`AIRLOCK_STATS`).

#![allow(non_snake_case, clippy::missing_safety_doc)]

pub mod call;
pub mod command_buffer;
pub mod conn;
pub mod descriptor;
pub mod device;
pub mod draw;
pub mod external;
pub mod generated;
pub mod handwritten;
pub mod instance;
mod log;
pub mod memory;
pub mod objects;
pub mod private_data;
pub mod queue;
pub mod stats;
pub mod sync;

use ash::vk;
use std::ffi::c_char;
use wire::desc::Level;

/// The loader interface version Airlock implements.
const LOADER_INTERFACE_VERSION: u32 = 5;

#[no_mangle]
pub unsafe extern "system" fn vk_icdNegotiateLoaderICDInterfaceVersion(
    version: *mut u32,
) -> vk::Result {
    if version.is_null() {
        return vk::Result::ERROR_INCOMPATIBLE_DRIVER;
    }
    if *version < LOADER_INTERFACE_VERSION {
        // Older loaders do not wrap dispatchable objects the way this ICD expects.
        return vk::Result::ERROR_INCOMPATIBLE_DRIVER;
    }
    *version = LOADER_INTERFACE_VERSION;
    vk::Result::SUCCESS
}

#[no_mangle]
pub unsafe extern "system" fn vk_icdGetInstanceProcAddr(
    instance: vk::Instance,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    instance::vkGetInstanceProcAddr(instance, name)
}

#[no_mangle]
pub unsafe extern "system" fn vk_icdGetPhysicalDeviceProcAddr(
    _instance: vk::Instance,
    name: *const c_char,
) -> vk::PFN_vkVoidFunction {
    instance::lookup(name, &[Level::PhysicalDevice])
}
