//! Query pools: a pool of more queries than any program uses is refused before the host sizes
//! it.

use crate::dispatch::{answer, Before, Hook, HOST};
use crate::generated::views;
use crate::limits::MAX_POOL_QUERIES;
use ash::vk;
use tracing::warn;

/// # Safety
/// `args` are the decoded arguments of `vkCreateQueryPool`.
pub unsafe fn before_create_pool(args: &mut [u64], h: &Hook) -> Before {
    let n = (*views::CreateQueryPool::of(args).p_create_info).query_count;
    if u64::from(n) > MAX_POOL_QUERIES {
        warn!(
            "{}: {n} queries, more than {MAX_POOL_QUERIES}; VK_ERROR_OUT_OF_HOST_MEMORY",
            h.cmd.name
        );
        return answer(vk::Result::ERROR_OUT_OF_HOST_MEMORY);
    }
    HOST
}
