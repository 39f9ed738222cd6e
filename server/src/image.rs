//! Images: one the client destroys while views of it live stays on the host until the last of
//! them goes.
//!
//! Vulkan lets an application destroy an image before its views, as long as it does not use
//! the views again. A client that does use one (a framebuffer of it) would have the host
//! driver, and the validation layer, follow the view to freed memory (the layer crashed so:
//! found by the fuzzer). Keeping the image until its views are gone turns that into a call on
//! a live object, whatever the client does; the client's id of the image stays bound until
//! then, as a pipeline layout's does (`pipeline.rs`).

use crate::dispatch::{Before, Hook, Pending, Server, HOST};
use crate::generated::{calls, views};
use crate::objects::HostHandle;
use ash::vk::{self, Handle};
use parking_lot::Mutex;
use std::collections::HashMap;
use wire::generated::commands::{id, C_vkDestroyImage};

/// What the image family keeps, by host handle.
#[derive(Default)]
pub struct Images {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each live view's image.
    views: HashMap<u64, u64>,
    /// How many live views each image has.
    viewed: HashMap<u64, u32>,
    /// Images the client destroyed while viewed, with their device.
    waiting: HashMap<u64, HostHandle>,
}

/// A new image has no views (its handle may be an older image's, whose views went with their
/// device).
///
/// # Safety
/// `args` are the arguments of a `vkCreateImage` that succeeded.
pub unsafe fn after_create(server: &Server, args: &[u64]) {
    let image = (*views::CreateImage::of(args).p_image).as_raw();
    let mut s = server.images.state.lock();
    s.viewed.remove(&image);
    s.waiting.remove(&image);
}

/// # Safety
/// `args` are the arguments of a `vkCreateImageView` that succeeded.
pub unsafe fn after_create_view(server: &Server, args: &[u64]) {
    let v = views::CreateImageView::of(args);
    let (view, image) = ((*v.p_view).as_raw(), (*v.p_create_info).image.as_raw());
    let mut s = server.images.state.lock();
    s.views.insert(view, image);
    *s.viewed.entry(image).or_default() += 1;
}

/// Destroying a viewed image waits for its views.
///
/// # Safety
/// `args` are the decoded arguments of `vkDestroyImage`.
pub unsafe fn before_destroy(server: &Server, args: &mut [u64]) -> Before {
    let v = views::DestroyImage::of(args);
    let image = v.image.as_raw();
    let mut s = server.images.state.lock();
    if s.viewed.get(&image).is_some_and(|&n| n > 0) {
        s.waiting.insert(image, HostHandle(v.device.as_raw()));
        return (Some(0), Pending::Deferred);
    }
    HOST
}

/// The last view of an image the client destroyed takes the image with it.
///
/// # Safety
/// `args` are the arguments of a `vkDestroyImageView` that returned.
pub unsafe fn after_destroy_view(server: &Server, args: &[u64], h: &Hook) {
    let view = views::DestroyImageView::of(args).image_view.as_raw();
    let gone = {
        let mut s = server.images.state.lock();
        let Some(image) = s.views.remove(&view) else {
            return;
        };
        let left = s.viewed.get_mut(&image).map(|n| {
            *n -= 1;
            *n
        });
        if left == Some(0) {
            s.viewed.remove(&image);
            s.waiting.remove(&image).map(|device| (image, device))
        } else {
            None
        }
    };
    let Some((image, device)) = gone else { return };
    if let Some(fp) = server.resolve(&C_vkDestroyImage, h.table) {
        // SAFETY: an image the client destroyed, whose last view is gone.
        calls::call(id::vkDestroyImage, fp, &[device.0, image, 0]);
    }
    server.unbind_host(vk::ObjectType::IMAGE, HostHandle(image));
}
