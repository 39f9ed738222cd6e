//! Finding and loading the host Vulkan driver the server runs on behalf of its client.
//!
//! The host ICD is loaded directly (not through the Vulkan loader): the server is the only user
//! of it, and talking to it through `vk_icdGetInstanceProcAddr` keeps layers and other drivers
//! out of the sandboxed process.
//!
//! `AIRLOCK_VALIDATE=1` is the exception: the host driver is then reached through the Vulkan
//! loader with the Khronos validation layer in between, so that a call breaking Vulkan's valid
//! usage is refused before it reaches a driver that trusts it (lavapipe crashes on many; see
//! `SECURITY.md`).

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
    /// Behind the loader and the validation layer (`AIRLOCK_VALIDATE=1`): what the sandbox
    /// must leave readable for the loader to find them again at every `vkCreateInstance`.
    pub validated: Option<Validated>,
}

/// What [`HostDriver::load_validated`] set up.
#[derive(Debug)]
pub struct Validated {
    /// The host driver's manifest, the only one the loader reads.
    pub manifest: PathBuf,
    /// The directory of the validation layer's manifest, the only one the loader scans.
    pub layer_dir: PathBuf,
    /// Loaded for good (`RTLD_NODELETE`): the loader opens them again by name at every
    /// instance, which then needs no file access.
    _pinned: Vec<libloading::os::unix::Library>,
}

/// The layer `AIRLOCK_VALIDATE=1` puts in front of the host driver.
pub const VALIDATION_LAYER: &CStr = c"VK_LAYER_KHRONOS_validation";

/// Whether `AIRLOCK_VALIDATE` asks for the validation layer.
pub fn validate_requested() -> bool {
    std::env::var("AIRLOCK_VALIDATE").is_ok_and(|v| !v.is_empty() && v != "0")
}

impl HostDriver {
    /// `AIRLOCK_HOST_ICD` (a manifest or a library), else lavapipe found like the loader finds
    /// drivers.
    pub fn load_default() -> Result<HostDriver, HostError> {
        let path = default_path()?;
        if validate_requested() {
            return Self::load_validated(&path);
        }
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
        offer_c_runtime().map_err(err)?;
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
                validated: None,
            })
        }
    }

    /// The driver of `manifest` behind the system's Vulkan loader, which is told to see that
    /// driver alone and no implicit layer; the server enables the validation layer on every
    /// instance (`dispatch.rs`).
    ///
    /// Sets the loader's environment variables: call it before the process starts threads
    /// that read the environment (the server does, per connection, before serving).
    pub fn load_validated(manifest: &Path) -> Result<HostDriver, HostError> {
        let err = |why: String| HostError::Load {
            path: manifest.to_path_buf(),
            why,
        };
        if manifest.extension().is_none_or(|e| e != "json") {
            return Err(err(
                "AIRLOCK_VALIDATE needs the host driver as a manifest (.json), for the loader"
                    .into(),
            ));
        }
        let library = library_from_manifest(manifest)?;
        let layer_manifest = find_layer_manifest().ok_or_else(|| {
            err("AIRLOCK_VALIDATE: no VkLayer_khronos_validation.json found (install the Khronos validation layer, Debian: vulkan-validationlayers)".into())
        })?;
        let layer_library = manifest_library(&layer_manifest, "layer")?;
        let layer_dir = layer_manifest
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf();
        for (k, v) in [
            ("VK_DRIVER_FILES", manifest.as_os_str()),
            ("VK_ICD_FILENAMES", manifest.as_os_str()),
            ("VK_LAYER_PATH", layer_dir.as_os_str()),
            // Not even the implicit layers of the machine run in the server.
            ("VK_LOADER_LAYERS_DISABLE", "~implicit~".as_ref()),
            // Every report must reach the server's callback: a capped message would let
            // its call through.
            ("VK_LAYER_DUPLICATE_MESSAGE_LIMIT", "2147483647".as_ref()),
            // Its on-disk cache of validated shaders would be a file written from the server.
            (
                "VK_LAYER_DISABLES",
                "VK_VALIDATION_FEATURE_DISABLE_SHADER_VALIDATION_CACHE_EXT".as_ref(),
            ),
        ] {
            // Written only when different: a process that loads the driver again (the fuzz
            // target, once per input) changes nothing while the host's threads may read it.
            if std::env::var_os(k).as_deref() != Some(v) {
                std::env::set_var(k, v);
            }
        }
        for k in [
            "VK_ADD_DRIVER_FILES",
            "VK_ADD_LAYER_PATH",
            "VK_INSTANCE_LAYERS",
            "VK_LOADER_LAYERS_ENABLE",
            "VK_LOADER_DRIVERS_SELECT",
            "VK_LOADER_DRIVERS_DISABLE",
        ] {
            if std::env::var_os(k).is_some() {
                std::env::remove_var(k);
            }
        }
        let pin = |name: &Path| {
            // SAFETY: loading the Vulkan libraries the loader would load itself.
            unsafe {
                libloading::os::unix::Library::open(
                    Some(name),
                    libc::RTLD_NOW | libc::RTLD_NODELETE,
                )
            }
            .map_err(|e| err(format!("{}: {e}", name.display())))
        };
        let pinned = vec![pin(&library)?, pin(&layer_library)?];
        let mut host = Self::load(Path::new("libvulkan.so.1"))?;
        host.library = library;
        host.validated = Some(Validated {
            manifest: manifest.to_path_buf(),
            layer_dir,
            _pinned: pinned,
        });
        Ok(host)
    }

    /// The host's function `name` for `instance` (NULL instance: global commands).
    pub fn instance_proc(&self, instance: vk::Instance, name: &CStr) -> vk::PFN_vkVoidFunction {
        // SAFETY: a valid name; `instance` is null or one the host created.
        unsafe { (self.get_instance_proc_addr)(instance, name.as_ptr() as *const c_char) }
    }
}

/// The C runtime libraries that every C or C++ Vulkan program has in its global symbol scope.
///
/// lavapipe's JIT (LLVM, in gallivm) compiles some shader operations into calls of C functions
/// — libm's `expf`, `exp2f`, `powf`, `frexp` …, and for other types or CPUs libgcc's helpers
/// (`__extendhfsf2`, `__powisf2` …) or libc's `memcpy` — and finds them by name in the process's
/// global scope (`dlsym` on the process), not among the driver's own dependencies, which
/// `dlopen` keeps local to the driver. An application has them there because it links them
/// itself; this Rust binary links libc and libgcc_s but not libm, and a name the JIT cannot
/// resolve becomes a call to address 0, which killed the server on the first shader that
/// used one (issue 13). So they are loaded global, for good, before the driver, while the
/// sandbox still lets files be opened; the driver then sees the scope a C program gives it.
const C_RUNTIME: [&str; 3] = ["libc.so.6", "libm.so.6", "libgcc_s.so.1"];

/// Puts [`C_RUNTIME`] in the global symbol scope (once; later calls find them there).
fn offer_c_runtime() -> Result<(), String> {
    for name in C_RUNTIME {
        // SAFETY: the C runtime's own libraries, already loaded or loaded by every C program;
        // RTLD_NODELETE keeps them once the handle is dropped.
        unsafe {
            libloading::os::unix::Library::open(
                Some(name),
                libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NODELETE,
            )
        }
        .map_err(|e| format!("making {name} global for the host driver's JIT: {e}"))?;
    }
    Ok(())
}

/// `AIRLOCK_HOST_ICD` (a manifest or a library), else lavapipe's manifest.
pub fn default_path() -> Result<PathBuf, HostError> {
    match std::env::var_os("AIRLOCK_HOST_ICD") {
        Some(p) => Ok(PathBuf::from(p)),
        None => find_lavapipe(),
    }
}

/// The validation layer's manifest, where the loader looks for explicit layers.
fn find_layer_manifest() -> Option<PathBuf> {
    manifest_dirs()
        .iter()
        .map(|d| {
            d.with_file_name("explicit_layer.d")
                .join("VkLayer_khronos_validation.json")
        })
        .find(|p| p.is_file())
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
    manifest_library(path, "ICD")
}

/// `<section>.library_path` of a driver (`ICD`) or layer (`layer`) manifest.
fn manifest_library(path: &Path, section: &str) -> Result<PathBuf, HostError> {
    let bad = |why: String| HostError::BadManifest {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let lib = json[section]["library_path"]
        .as_str()
        .ok_or_else(|| bad(format!("no {section}.library_path")))?;
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

    /// What lavapipe's JIT asked for by name (`dlsym`) in a survey of 1,015 CTS cases of math
    /// built-ins in 16, 32 and 64 bits through Airlock (`exp2f`, `log2f`, `sinf`, `cosf`,
    /// `sincosf`: none missing once libm is global), the rest of libm's that LLVM lowers
    /// intrinsics to, and libgcc's helpers for half floats, `powi` and 128-bit integers, all
    /// resolve in the global scope once a driver is loaded.
    #[test]
    fn the_jit_finds_the_c_runtime_in_the_global_scope() {
        offer_c_runtime().unwrap();
        for name in [
            c"expf",
            c"exp2f",
            c"logf",
            c"log2f",
            c"powf",
            c"sinhf",
            c"coshf",
            c"frexp",
            c"frexpf",
            c"ldexp",
            c"modf",
            c"fmodf",
            c"fmod",
            c"exp",
            c"exp2",
            c"log",
            c"log2",
            c"pow",
            c"sinf",
            c"sincosf",
            c"cosf",
            c"sin",
            c"cos",
            c"fma",
            c"fmaf",
            c"__extendhfsf2",
            c"__truncsfhf2",
            c"__truncdfhf2",
            c"__powisf2",
            c"__powidf2",
            c"__divti3",
            c"__udivti3",
            c"__modti3",
            c"__umodti3",
            c"memcpy",
            c"memset",
            c"memmove",
        ] {
            // SAFETY: a lookup by name in the process's global scope.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            assert!(!p.is_null(), "{name:?} is not in the global scope");
        }
    }

    #[test]
    fn missing_library_is_a_clear_error() {
        let e = HostDriver::load(Path::new("/nonexistent/libvulkan_nothing.so"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/libvulkan_nothing.so"));
    }
}
