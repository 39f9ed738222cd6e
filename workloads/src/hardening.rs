//! What a hardened client process looks like: it forbids itself executable memory it could
//! write (`PR_SET_MDWE`) before Vulkan is loaded, and after its work holds no JIT compiler and
//! no executable anonymous memory.

use crate::error::{Error, Result};

const PR_SET_MDWE: i32 = 65;
const PR_GET_MDWE: i32 = 66;
const PR_MDWE_REFUSE_EXEC_GAIN: u64 = 1;

/// Makes the process refuse memory that becomes executable after being writable; returns the
/// flags the kernel reports afterwards.
pub fn refuse_exec_gain() -> Result<u64> {
    // SAFETY: prctl with plain integer arguments.
    let r = unsafe { libc::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0u64, 0u64, 0u64) };
    if r != 0 {
        return Err(Error::Unsupported(format!(
            "PR_SET_MDWE: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: as above.
    let flags = unsafe { libc::prctl(PR_GET_MDWE, 0u64, 0u64, 0u64, 0u64) };
    Ok(flags as u64)
}

/// The lines of `/proc/self/maps` that a hardened client must not have: an LLVM library or a
/// Vulkan driver that carries one, or executable memory that is not backed by a file.
pub fn forbidden_mappings() -> Result<Vec<String>> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| Error::Unsupported(format!("/proc/self/maps: {e}")))?;
    Ok(maps
        .lines()
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let perms = fields.nth(1).unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let jit_library = path.contains("LLVM") || path.contains("libvulkan_lvp");
            // The kernel's own executable pages are not the process's doing.
            let anonymous = path.is_empty()
                || (path.starts_with('[') && path != "[vdso]" && path != "[vsyscall]");
            jit_library || (perms.contains('x') && anonymous)
        })
        .map(str::to_string)
        .collect())
}
