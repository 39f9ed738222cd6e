//! The generic path every generated entry point takes.

use crate::conn::{self, failure};
use crate::objects::Dispatchable;
use ash::vk;
use wire::desc::{CommandDesc, Level};

/// Carries `cmd` with the application's arguments (each widened to 64 bits) to the server
/// of the object it is called on, and returns the C result widened likewise.
pub fn call(cmd: &'static CommandDesc, args: &[u64]) -> u64 {
    if cmd.recorded {
        // SAFETY: a `vkCmd*` call; its first argument is the application's command buffer.
        unsafe { crate::command_buffer::record(cmd, args) };
        return 0;
    }
    let conn = if cmd.level == Level::Global || args.first().is_none_or(|a| *a == 0) {
        match conn::current() {
            Ok(c) => c,
            Err(r) => return failure(cmd, r),
        }
    } else {
        // SAFETY: the first argument of a non-global command is a live dispatchable handle.
        unsafe { Dispatchable::conn(args[0]) }
    };
    let r = conn.call(cmd, args);
    if let Some(i) = cmd.destroys {
        // SAFETY: the application's arguments to a destroying command, as Vulkan requires them.
        unsafe {
            crate::private_data::destroyed(cmd, i, args);
            crate::descriptor::destroyed(cmd, i, args);
        }
    }
    if cmd.ret == wire::desc::Ret::Result
        && (r as i64 as i32) == vk::Result::ERROR_DEVICE_LOST.as_raw()
    {
        crate::log::log!(debug, "airlock: {} returned VK_ERROR_DEVICE_LOST", cmd.name);
    }
    r
}

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
