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
            // Without it the X server resets when its last client leaves, and refuses the
            // connections that arrive meanwhile: vulkaninfo, opening one per surface kind,
            // failed so now and then, natively and through Airlock alike.
            "-noreset",
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

/// A headless weston (pixman renderer, one `size`-square output, desktop shell) for the Wayland
/// tests, on a socket of its own in a runtime directory of its own. `--debug` offers the
/// screenshooter the tests read the output back with (`weston-screenshooter`).
pub struct Weston {
    child: std::process::Child,
    /// For `XDG_RUNTIME_DIR`.
    pub runtime_dir: PathBuf,
    /// For `WAYLAND_DISPLAY`.
    pub socket: String,
}

impl Weston {
    pub fn start(size: u32) -> Weston {
        use std::os::unix::fs::PermissionsExt;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let runtime_dir =
            std::env::temp_dir().join(format!("airlock-weston-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&runtime_dir);
        std::fs::create_dir_all(&runtime_dir).expect("a runtime directory for weston");
        std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod 700 the runtime directory");
        let socket = "wayland-airlock".to_string();
        let child = Command::new("weston")
            .args([
                "--backend=headless-backend.so",
                "--use-pixman",
                "--no-config",
                "--debug",
                "--idle-time=0",
                &format!("--socket={socket}"),
                &format!("--width={size}"),
                &format!("--height={size}"),
                &format!("--log={}", runtime_dir.join("weston.log").display()),
            ])
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting weston (scripts/deps.sh installs it): {e}"));
        let w = Weston {
            child,
            runtime_dir,
            socket,
        };
        // Ready once its socket is there and the desktop shell's client has connected (its
        // panel drawn, so that a screenshot shows what is on top of it).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let log = w.runtime_dir.join("weston.log");
        loop {
            let up = w.runtime_dir.join(&w.socket).exists()
                && std::fs::read_to_string(&log).is_ok_and(|l| l.contains("weston-desktop-shell"));
            if up {
                std::thread::sleep(std::time::Duration::from_millis(500));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "weston did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        w
    }

    /// What the compositor shows: width, height, RGBA pixels.
    pub fn screenshot(&self) -> (u32, u32, Vec<[u8; 4]>) {
        weston_screenshot(|c| {
            self.env(c);
        })
        .unwrap_or_else(|e| panic!("a screenshot of weston: {e}"))
    }

    /// Points `c` at this compositor.
    pub fn env<'a>(&self, c: &'a mut Command) -> &'a mut Command {
        c.env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("WAYLAND_DISPLAY", &self.socket)
    }
}

impl Drop for Weston {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

/// What a weston started with `--debug` shows (on the compositor `WAYLAND_DISPLAY` names, or
/// the one `configure` points the command at), taken by `weston-screenshooter`: width, height,
/// RGBA pixels.
pub fn weston_screenshot(
    configure: impl FnOnce(&mut Command),
) -> Result<(u32, u32, Vec<[u8; 4]>), String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("airlock-shot-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut c = Command::new("weston-screenshooter");
    c.current_dir(&dir);
    configure(&mut c);
    let status = c.status().map_err(|e| format!("weston-screenshooter: {e}"));
    let shot = std::fs::read_dir(&dir)
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())));
    let decoded = match (status, shot) {
        (Ok(s), Some(shot)) if s.success() => decode_png(&shot),
        (Ok(s), _) => Err(format!(
            "weston-screenshooter: {s}, no picture (is weston running with --debug?)"
        )),
        (Err(e), _) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&dir);
    decoded
}

/// A PNG's width, height and RGBA pixels.
fn decode_png(path: &std::path::Path) -> Result<(u32, u32, Vec<[u8; 4]>), String> {
    let bad = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| bad(&e))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| bad(&e))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(&e))?;
    let pixels = match info.color_type {
        png::ColorType::Rgba => buf[..info.buffer_size()]
            .chunks_exact(4)
            .map(|p| [p[0], p[1], p[2], p[3]])
            .collect(),
        png::ColorType::Rgb => buf[..info.buffer_size()]
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => return Err(bad(&format!("{other:?} pixels"))),
    };
    Ok((info.width, info.height, pixels))
}
