//! Reading decoded arrays, and the "count, then fill" idiom on both sides of the host.

use ash::vk;

/// A decoded array as a slice (empty when null).
///
/// # Safety
/// A non-null `p` points at `n` decoded elements.
pub unsafe fn slice<'a, T>(p: *const T, n: u64) -> &'a [T] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(p, n as usize)
    }
}

/// The "count, then fill" idiom with an answer already known.
///
/// # Safety
/// `count` is valid; a non-null `out` holds `*count` elements.
pub unsafe fn fill<T: Copy>(list: &[T], count: *mut u32, out: *mut T) -> u64 {
    if out.is_null() {
        *count = list.len() as u32;
        return 0;
    }
    let n = (*count as usize).min(list.len());
    std::ptr::copy_nonoverlapping(list.as_ptr(), out, n);
    *count = n as u32;
    if n < list.len() {
        vk::Result::INCOMPLETE.as_raw() as i64 as u64
    } else {
        0
    }
}

/// A host query of the "count, then fill" idiom, whole.
///
/// # Safety
/// `f` is such a query of the host driver's.
pub unsafe fn enumerate<T: Default + Clone>(f: impl Fn(*mut u32, *mut T) -> vk::Result) -> Vec<T> {
    loop {
        let mut n = 0u32;
        if f(&mut n, std::ptr::null_mut()) != vk::Result::SUCCESS {
            return Vec::new();
        }
        let mut v = vec![T::default(); n as usize];
        match f(&mut n, v.as_mut_ptr()) {
            vk::Result::SUCCESS => {
                v.truncate(n as usize);
                return v;
            }
            vk::Result::INCOMPLETE => continue,
            _ => return Vec::new(),
        }
    }
}
