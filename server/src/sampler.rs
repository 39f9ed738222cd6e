//! Samplers: a border colour Vulkan says is ignored is given a valid value before the host sees
//! it.
//!
//! `borderColor` matters only when an address mode is `CLAMP_TO_BORDER`; otherwise Vulkan lets
//! it hold anything, but lavapipe indexes its border colour table with it regardless (border
//! colour 0x80000000 with every mode `CLAMP_TO_EDGE` crashed it: found by the fuzzer).

use crate::dispatch::{Before, HOST};
use crate::generated::views;
use ash::vk;

/// # Safety
/// `args` are the decoded arguments of `vkCreateSampler`, in the request's arena.
pub unsafe fn before_create(args: &mut [u64]) -> Before {
    let info = &mut *(views::CreateSampler::of(args).p_create_info as *mut vk::SamplerCreateInfo);
    let border = [
        info.address_mode_u,
        info.address_mode_v,
        info.address_mode_w,
    ]
    .contains(&vk::SamplerAddressMode::CLAMP_TO_BORDER);
    if !border {
        info.border_color = vk::BorderColor::FLOAT_TRANSPARENT_BLACK;
    }
    HOST
}
