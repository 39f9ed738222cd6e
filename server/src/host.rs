//! Finding and loading the host Vulkan driver the server runs on behalf of its client.
//!
//! The host ICD is loaded directly (not through the Vulkan loader): the server is the only user
//! of it, and talking to it through `vk_icdGetInstanceProcAddr` keeps layers and other drivers
//! out of the sandboxed process.

use ash::vk;
use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HostError {
    #[error(
        "no host Vulkan driver found (looked for a lavapipe manifest in {0}); set AIRLOCK_HOST_ICD"
    )]
    NotFound(String),
    #[error("host driver manifest {path}: {why}")]
    BadManifest { path: PathBuf, why: String },
    #[error("loading host driver {path}: {why}")]
    Load { path: PathBuf, why: String },
}

pub struct HostDriver {
    _lib: libloading::Library,
    pub library: PathBuf,
    pub get_instance_proc_addr: vk::PFN_vkGetInstanceProcAddr,
}

impl HostDriver {
    /// `AIRLOCK_HOST_ICD` (a manifest or a library), else lavapipe found like the loader finds
    /// drivers.
    pub fn load_default() -> Result<HostDriver, HostError> {
        let path = match std::env::var_os("AIRLOCK_HOST_ICD") {
            Some(p) => PathBuf::from(p),
            None => find_lavapipe()?,
        };
        let library = if path.extension().is_some_and(|e| e == "json") {
            library_from_manifest(&path)?
        } else {
            path
        };
        Self::load(&library)
    }

    pub fn load(library: &Path) -> Result<HostDriver, HostError> {
        let err = |why: String| HostError::Load {
            path: library.to_path_buf(),
            why,
        };
        // SAFETY: loading a Vulkan ICD runs its initialisers; that is what this process is for.
        let lib = unsafe { libloading::Library::new(library) }.map_err(|e| err(e.to_string()))?;
        unsafe {
            if let Ok(negotiate) = lib.get::<unsafe extern "system" fn(*mut u32) -> vk::Result>(
                b"vk_icdNegotiateLoaderICDInterfaceVersion\0",
            ) {
                let mut version = 5u32;
                let r = negotiate(&mut version);
                if r != vk::Result::SUCCESS {
                    return Err(err(format!("interface negotiation failed: {r:?}")));
                }
            }
            let gipa = lib
                .get::<vk::PFN_vkGetInstanceProcAddr>(b"vk_icdGetInstanceProcAddr\0")
                .or_else(|_| lib.get::<vk::PFN_vkGetInstanceProcAddr>(b"vkGetInstanceProcAddr\0"))
                .map_err(|e| err(format!("no vk_icdGetInstanceProcAddr: {e}")))?;
            let get_instance_proc_addr = *gipa;
            Ok(HostDriver {
                _lib: lib,
                library: library.to_path_buf(),
                get_instance_proc_addr,
            })
        }
    }

    /// The host's function `name` for `instance` (NULL instance: global commands).
    pub fn instance_proc(&self, instance: vk::Instance, name: &CStr) -> vk::PFN_vkVoidFunction {
        // SAFETY: a valid name; `instance` is null or one the host created.
        unsafe { (self.get_instance_proc_addr)(instance, name.as_ptr() as *const c_char) }
    }
}

fn manifest_dirs() -> Vec<PathBuf> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let home = env("HOME").unwrap_or_default();
    let mut dirs = vec![PathBuf::from(
        env("XDG_CONFIG_HOME").unwrap_or(format!("{home}/.config")),
    )];
    dirs.extend(
        env("XDG_CONFIG_DIRS")
            .unwrap_or("/etc/xdg".into())
            .split(':')
            .map(PathBuf::from),
    );
    dirs.push("/etc".into());
    dirs.push(PathBuf::from(
        env("XDG_DATA_HOME").unwrap_or(format!("{home}/.local/share")),
    ));
    dirs.extend(
        env("XDG_DATA_DIRS")
            .unwrap_or("/usr/local/share:/usr/share".into())
            .split(':')
            .map(PathBuf::from),
    );
    dirs.into_iter().map(|d| d.join("vulkan/icd.d")).collect()
}

fn find_lavapipe() -> Result<PathBuf, HostError> {
    let dirs = manifest_dirs();
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for path in names {
            let is_lvp = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("lvp_icd") && n.ends_with(".json"));
            if is_lvp {
                return Ok(path);
            }
        }
    }
    Err(HostError::NotFound(
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    ))
}

/// The `ICD.library_path` of a loader manifest, resolved like the loader does.
pub fn library_from_manifest(path: &Path) -> Result<PathBuf, HostError> {
    let bad = |why: String| HostError::BadManifest {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let lib = json["ICD"]["library_path"]
        .as_str()
        .ok_or_else(|| bad("no ICD.library_path".into()))?;
    let lib = Path::new(lib);
    Ok(
        if lib.is_absolute() || !lib.to_string_lossy().contains('/') {
            lib.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new(".")).join(lib)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_resolve_like_the_loader() {
        let dir = std::env::temp_dir().join(format!("airlock-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let m = dir.join("x.json");
        std::fs::write(&m, r#"{"file_format_version":"1.0.0","ICD":{"library_path":"./libx.so","api_version":"1.3.0"}}"#).unwrap();
        assert_eq!(library_from_manifest(&m).unwrap(), dir.join("./libx.so"));
        std::fs::write(&m, r#"{"ICD":{"library_path":"libx.so"}}"#).unwrap();
        assert_eq!(library_from_manifest(&m).unwrap(), PathBuf::from("libx.so"));
        std::fs::write(&m, "{").unwrap();
        assert!(matches!(
            library_from_manifest(&m),
            Err(HostError::BadManifest { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_library_is_a_clear_error() {
        let e = HostDriver::load(Path::new("/nonexistent/libvulkan_nothing.so"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/libvulkan_nothing.so"));
    }
}
