//! Reading the application's arrays and strings, and answering "count, then fill" queries.

use ash::vk;
use std::ffi::{c_char, CStr};

/// An application's array of `n` elements at `p` (empty when NULL or empty).
///
/// # Safety
/// A non-NULL `p` points at `n` valid elements that outlive the borrow.
pub unsafe fn app_slice<'a, T>(p: *const T, n: u32) -> &'a [T] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(p, n as usize)
    }
}

/// The strings of an application's array of `n` C strings (NULL entries skipped).
///
/// # Safety
/// A non-NULL `list` points at `n` pointers, each NULL or a valid C string.
pub unsafe fn names(list: *const *const c_char, n: u32) -> impl Iterator<Item = String> {
    app_slice(list, n)
        .iter()
        .filter(|p| !p.is_null())
        .map(|p| CStr::from_ptr(*p).to_string_lossy().into_owned())
}

/// Answers a "count, then fill" query with `list`: the count when `out` is NULL, else as many
/// elements as `*count` says fit (`VK_INCOMPLETE` when not all do).
///
/// # Safety
/// `count` is NULL or valid; a non-NULL `out` has room for `*count` elements.
pub unsafe fn fill<T: Copy>(list: &[T], count: *mut u32, out: *mut T) -> vk::Result {
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
