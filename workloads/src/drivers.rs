//! Choosing the driver a child process sees: native lavapipe or Airlock, each alone. Every
//! device test and benchmark runs the same program once per driver through these.

use std::path::PathBuf;
use std::process::{Command, Output};

/// target/<profile>, where the ICD, its manifest, the server and the binaries are built, seen
/// from a binary there or a test in its `deps/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of this executable");
    let dir = exe.parent().expect("a directory").to_path_buf();
    match dir.file_name() {
        Some(n) if n == "deps" => dir.parent().expect("target/<profile>").to_path_buf(),
        _ => dir,
    }
}

pub fn airlock_manifest() -> PathBuf {
    let dir = target_dir();
    let server = dir.join("airlock-server");
    assert!(
        server.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        server.display()
    );
    let m = dir.join("airlock_icd.x86_64.json");
    assert!(
        m.exists(),
        "{} is missing: the icd build script writes it",
        m.display()
    );
    m
}

/// Native lavapipe's manifest: `AIRLOCK_NATIVE_ICD`, else the system's.
pub fn native_manifest() -> PathBuf {
    if let Some(p) = std::env::var_os("AIRLOCK_NATIVE_ICD") {
        return PathBuf::from(p);
    }
    for dir in [
        "/usr/share/vulkan/icd.d",
        "/usr/local/share/vulkan/icd.d",
        "/etc/vulkan/icd.d",
    ] {
        let p = PathBuf::from(dir).join("lvp_icd.x86_64.json");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "lavapipe's ICD manifest not found: install mesa-vulkan-drivers or set AIRLOCK_NATIVE_ICD"
    );
}

/// A command with only the chosen driver visible, and no shader cache shared between runs.
pub fn with_driver(program: impl AsRef<std::ffi::OsStr>, manifest: &PathBuf) -> Command {
    let mut c = Command::new(program);
    c.env("VK_DRIVER_FILES", manifest)
        .env("VK_ICD_FILENAMES", manifest)
        .env_remove("VK_INSTANCE_LAYERS")
        .env_remove("VK_LOADER_LAYERS_ENABLE")
        .env_remove("AIRLOCK_STATS")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("MESA_SHADER_CACHE_DISABLE", "true")
        .env("AIRLOCK_LOG", "warn");
    c
}

pub fn run(mut c: Command) -> Output {
    c.output().unwrap_or_else(|e| panic!("running {c:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `airlock-server --listen` on a fresh socket, for clients that cannot start their own server
/// (a hardened client would pass its `PR_SET_MDWE` on to it). Stopped when dropped.
pub struct Launcher {
    child: std::process::Child,
    dir: PathBuf,
    pub socket: PathBuf,
}

impl Launcher {
    pub fn start() -> Launcher {
        let dir = std::env::temp_dir().join(format!(
            "airlock-launcher-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("airlock.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(target_dir().join("airlock-server"))
            .arg("--listen")
            .arg(&socket)
            .env("AIRLOCK_LOG", "warn")
            .spawn()
            .expect("starting airlock-server --listen");
        let t = std::time::Instant::now();
        while !socket.exists() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "airlock-server --listen did not create {}",
                socket.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Launcher { child, dir, socket }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Khronos validation layer for a program that does not enable it itself, as a developer
/// enables it (`VK_INSTANCE_LAYERS`), writing its errors and warnings to a file in `dir`,
/// whose path this returns.
pub fn with_validation(c: &mut Command, dir: &std::path::Path) -> PathBuf {
    let log = dir.join("validation.log");
    let settings = format!(
        "khronos_validation.report_flags = error,warn\n\
         khronos_validation.debug_action = VK_DBG_LAYER_ACTION_LOG_MSG\n\
         khronos_validation.log_filename = {}\n",
        log.display()
    );
    std::fs::write(dir.join("vk_layer_settings.txt"), settings)
        .unwrap_or_else(|e| panic!("writing the layer settings in {}: {e}", dir.display()));
    c.env("VK_INSTANCE_LAYERS", "VK_LAYER_KHRONOS_validation")
        .env("VK_LAYER_SETTINGS_PATH", dir);
    log
}

/// The ids (`VUID-…`, `UNASSIGNED-…`) of the messages in a validation log, one per message.
pub fn validation_ids(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split(['(', ' '])
                .next()
                .filter(|id| id.starts_with("VUID-") || id.starts_with("UNASSIGNED-"))
                .map(str::to_string)
        })
        .collect()
}

/// An X server of its own (Xvfb, 24-bit, with MIT-SHM) for tests that open windows; stopped
/// when dropped.
pub struct Xvfb {
    child: std::process::Child,
    /// `:N`, for `DISPLAY`.
    pub display: String,
}

impl Xvfb {
    pub fn start() -> Xvfb {
        use std::io::BufRead;
        use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        // Xvfb picks a free display and writes its number to descriptor 3.
        let (read, write) = std::io::pipe().expect("a pipe");
        let raw = write.into_raw_fd();
        let mut c = Command::new("Xvfb");
        c.args([
            "-displayfd",
            "3",
            "-screen",
            "0",
            "1024x768x24",
            "-nolisten",
            "tcp",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        // SAFETY: dup2 is async-signal-safe; `raw` stays open until the spawn returns.
        unsafe {
            c.pre_exec(move || {
                if libc::dup2(raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let spawned = c.spawn();
        // SAFETY: the write end, ours alone now that the child has its copy.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        let mut child =
            spawned.unwrap_or_else(|e| panic!("starting Xvfb (scripts/deps.sh installs it): {e}"));
        let mut number = String::new();
        let _ = std::io::BufReader::new(read).read_line(&mut number);
        let number = number.trim().to_string();
        if number.is_empty() {
            let _ = child.kill();
            panic!("Xvfb did not report its display number");
        }
        Xvfb {
            child,
            display: format!(":{number}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
