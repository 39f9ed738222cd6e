//! Physical devices. Their answers are kept by the generic path (`answers.rs`); the most asked
//! of them, an image format query with no structure chained on either side (the CTS's
//! image_format_properties cases ask some 200,000 a case), is kept here apart, keyed by its
//! five inputs: answered without encoding a request or decoding a reply.

use crate::call::{call, lasting_result};
use crate::objects::header;
use ash::vk::{self, Handle};
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use wire::generated::commands::{
    C_vkGetPhysicalDeviceImageFormatProperties, C_vkGetPhysicalDeviceImageFormatProperties2,
};

/// An image format query's inputs: format, type, tiling, usage, flags.
type FormatQuery = (vk::Format, vk::ImageType, vk::ImageTiling, u32, u32);

/// Answers to image format queries with no chain, by their inputs: the result and, on
/// success, the properties.
#[derive(Default)]
struct PlainFormats(RwLock<FxHashMap<FormatQuery, (vk::Result, vk::ImageFormatProperties)>>);

/// The answer to the plain format query `q` on `physical_device`, asked with `ask` the first
/// time.
///
/// # Safety
/// `physical_device` is a live physical device wrapper.
unsafe fn plain_format(
    physical_device: u64,
    q: FormatQuery,
    out: &mut vk::ImageFormatProperties,
    ask: impl FnOnce(&mut vk::ImageFormatProperties) -> vk::Result,
) -> vk::Result {
    let kept = header(physical_device).families.get::<PlainFormats>();
    if let Some((r, p)) = kept.0.read().get(&q) {
        *out = *p;
        return *r;
    }
    let r = ask(out);
    if lasting_result(r) {
        kept.0.write().insert(q, (r, *out));
    }
    r
}

pub unsafe extern "system" fn vkGetPhysicalDeviceImageFormatProperties(
    physical_device: vk::PhysicalDevice,
    format: vk::Format,
    ty: vk::ImageType,
    tiling: vk::ImageTiling,
    usage: vk::ImageUsageFlags,
    flags: vk::ImageCreateFlags,
    out: *mut vk::ImageFormatProperties,
) -> vk::Result {
    let pd = physical_device.as_raw();
    let ask = |o: *mut vk::ImageFormatProperties| {
        let args = [
            pd,
            format.as_raw() as u32 as u64,
            ty.as_raw() as u32 as u64,
            tiling.as_raw() as u32 as u64,
            u64::from(usage.as_raw()),
            u64::from(flags.as_raw()),
            o as u64,
        ];
        vk::Result::from_raw(call(&C_vkGetPhysicalDeviceImageFormatProperties, &args) as i32)
    };
    // A null pointer (invalid) goes the generic way, which reports it.
    let Some(o) = out.as_mut() else {
        return ask(out);
    };
    let q = (format, ty, tiling, usage.as_raw(), flags.as_raw());
    plain_format(pd, q, o, |o| ask(o))
}

pub unsafe extern "system" fn vkGetPhysicalDeviceImageFormatProperties2(
    physical_device: vk::PhysicalDevice,
    info: *const vk::PhysicalDeviceImageFormatInfo2<'_>,
    out: *mut vk::ImageFormatProperties2<'_>,
) -> vk::Result {
    let pd = physical_device.as_raw();
    let generic = move || {
        vk::Result::from_raw(call(
            &C_vkGetPhysicalDeviceImageFormatProperties2,
            &[pd, info as u64, out as u64],
        ) as i32)
    };
    // A null pointer (invalid) goes the generic way, which reports it.
    let (Some(i), Some(o)) = (info.as_ref(), out.as_ref()) else {
        return generic();
    };
    if !i.p_next.is_null() || !o.p_next.is_null() {
        return generic();
    }
    let q = (i.format, i.ty, i.tiling, i.usage.as_raw(), i.flags.as_raw());
    let mut props = vk::ImageFormatProperties::default();
    let r = plain_format(pd, q, &mut props, |p| {
        let r = generic();
        *p = (*out).image_format_properties;
        r
    });
    (*out).image_format_properties = props;
    r
}
