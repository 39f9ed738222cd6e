//! Finding things: the repository, programs on PATH, deqp-vk, the time and the commit.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The Airlock checkout: the binary normally lives in its `target/`, else the user is inside it.
pub fn repo_root() -> Option<PathBuf> {
    let from_exe = std::env::current_exe().ok();
    let from_cwd = std::env::current_dir().ok();
    [from_exe, from_cwd]
        .into_iter()
        .flatten()
        .find_map(|start| {
            start
                .ancestors()
                .find(|dir| dir.join("Cargo.toml").is_file() && dir.join("cts/caselists").is_dir())
                .map(Path::to_path_buf)
        })
}

pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub const DEQP_RUNNER_MISSING: &str = "deqp-runner is not installed (no `deqp-runner` on PATH). \
     Install it with `cargo install deqp-runner`, and make sure ~/.cargo/bin is on PATH.";

/// The deqp-vk binary that `DEQP_VK` names.
pub fn deqp_vk() -> Result<PathBuf> {
    let Some(value) = std::env::var_os("DEQP_VK").filter(|v| !v.is_empty()) else {
        bail!(
            "DEQP_VK is not set: set it to the path of a deqp-vk binary built from the Khronos \
             VK-GL-CTS (see cts/README.md), e.g. \
             DEQP_VK=$HOME/VK-GL-CTS/build/external/vulkancts/modules/vulkan/deqp-vk"
        );
    };
    let path = PathBuf::from(value);
    if !path.is_file() {
        bail!(
            "DEQP_VK={} does not exist or is not a file: it must name the deqp-vk binary itself",
            path.display()
        );
    }
    if !is_executable(&path) {
        bail!("DEQP_VK={} is not executable", path.display());
    }
    // deqp-runner starts deqp-vk in the binary's directory, where the `vulkan/` data lives.
    Ok(std::path::absolute(&path)?)
}

/// UTC now as (`YYYY-MM-DD`, `YYYYMMDD-HHMMSS`).
pub fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_stamp(secs)
}

pub fn utc_stamp(unix_seconds: u64) -> (String, String) {
    let (y, m, d) = civil_from_days((unix_seconds / 86_400) as i64);
    let t = unix_seconds % 86_400;
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!(
            "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
            t / 3600,
            t / 60 % 60,
            t % 60
        ),
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `git rev-parse HEAD` of the checkout, marked when the work tree has uncommitted changes.
pub fn git_commit(root: Option<&Path>) -> String {
    let Some(root) = root else {
        return "unknown (not run from an Airlock checkout)".to_string();
    };
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{head} (with uncommitted changes)"),
            _ => head,
        },
        None => "unknown (git rev-parse HEAD failed)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_stamp(0).0, "1970-01-01");
        assert_eq!(
            utc_stamp(951_782_400 + 3723),
            ("2000-02-29".into(), "20000229-010203".into())
        );
        assert_eq!(utc_stamp(1_714_521_600).0, "2024-05-01");
        assert_eq!(utc_stamp(4_102_444_799).1, "20991231-235959");
    }

    #[test]
    fn finds_programs_on_path() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("surely-not-a-program-airlock").is_none());
    }
}
