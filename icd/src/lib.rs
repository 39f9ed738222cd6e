//! `libvulkan_airlock.so`: a Vulkan ICD that runs the real driver in `airlock-server`.
//!
//! Every Vulkan call the application makes is encoded ([`wire::interp`], driven by the tables
//! generated from vk.xml) and carried over shared memory to the server, which makes it on the
//! host driver. This library links no LLVM and maps no executable memory of its own.
//!
//! - [`loader`]: the loader interface; [`generated::entry`]: one entry point per carried
//!   command; [`handwritten`]: the list of those written by hand.
//! - One module per object family, each with its special handling and the state it keeps for
//!   its objects: [`instance`], [`device`], [`queue`] (and synchronization), [`memory`]
//!   ([`memfd`]: the memfds it shares with the server), [`external`] (opaque fds),
//!   [`command_buffer`], [`descriptor`], [`private_data`]; [`surface`] and [`swapchain`]
//!   (window-system integration, the ICD's alone: the server never sees a window).
//! - [`call`]: the generic path; [`objects`]: ids and dispatchable wrappers, which hold their
//!   objects' state; [`conn`]: the server connection, transport only.
//! - [`stats`]: what crossed to the server (`AIRLOCK_STATS`); [`util`]: the application's
//!   arrays and strings.
//!
//! The modules depend on each other in layers, without cycles: entry points and [`loader`] on
//! the families, the families on [`call`] and [`objects`], those on [`conn`].

#![allow(non_snake_case, clippy::missing_safety_doc)]

pub mod allocation;
pub mod answers;
pub mod call;
pub mod command_buffer;
pub mod conn;
pub mod descriptor;
pub mod device;
pub mod external;
pub mod generated;
pub mod handwritten;
pub mod instance;
pub mod limits;
pub mod loader;
mod log;
pub mod memfd;
pub mod memory;
pub mod objects;
pub mod physical_device;
pub mod pipeline;
pub mod private_data;
pub mod queue;
pub mod stats;
pub mod surface;
pub mod swapchain;
pub mod util;
