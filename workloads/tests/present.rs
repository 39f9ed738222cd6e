//! Window-system integration: frames presented through Airlock and natively, to a headless
//! surface, to X11 windows (xcb and Xlib) on an Xvfb of the test's own and to a Wayland window
//! on a headless weston of the test's own, each run checking the last frame (its image and, for
//! a window, what the display shows) against the CPU, and the two drivers' results compared
//! byte for byte; a resize under a swapchain; vkcube, vkcubepp and vkcube-wayland.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, MapState};

/// One X server at a time: the window tests share the machine's display numbers and cores, and
/// a frame drawn late under load would make a screenshot show nothing yet.
static X: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_x_server() -> std::sync::MutexGuard<'static, ()> {
    X.lock().unwrap_or_else(|e| e.into_inner())
}

fn present() -> PathBuf {
    let p = target_dir().join("airlock-present");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace`",
        p.display()
    );
    p
}

/// Runs airlock-present with `args` on the driver of `manifest` (on `display`, if any); its
/// result bytes and its stderr.
fn run_present(
    manifest: &PathBuf,
    display: Option<&str>,
    args: &[&str],
    out: &Path,
    label: &str,
) -> (Vec<u8>, String) {
    run_present_in(
        manifest,
        |c| match display {
            Some(d) => c.env("DISPLAY", d),
            None => c.env_remove("DISPLAY"),
        },
        args,
        out,
        label,
    )
}

/// As `run_present`, with the display `env` sets up.
fn run_present_in(
    manifest: &PathBuf,
    env: impl FnOnce(&mut Command) -> &mut Command,
    args: &[&str],
    out: &Path,
    label: &str,
) -> (Vec<u8>, String) {
    let mut c = with_driver(present(), manifest);
    c.args(args).arg("--out").arg(out);
    env(&mut c);
    let o = run(c);
    assert!(
        o.status.success(),
        "airlock-present {args:?} failed {label} ({}):\n{}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    let bytes = std::fs::read(out).unwrap_or_else(|e| panic!("reading {}: {e}", out.display()));
    (bytes, stderr(&o))
}

/// 100 frames to a headless surface through Airlock equal the same frames drawn offscreen by
/// native lavapipe, which (22.3) has no headless surfaces.
#[test]
fn headless_frames_equal_native_offscreen() {
    let dir = tempfile::tempdir().unwrap();
    let frames = ["--frames", "100", "--size", "256"];
    let (native, _) = run_present(
        &native_manifest(),
        None,
        &[&["--surface", "offscreen"][..], &frames].concat(),
        &dir.path().join("native.bin"),
        "natively (offscreen)",
    );
    let (airlock, _) = run_present(
        &airlock_manifest(),
        None,
        &[&["--surface", "headless"][..], &frames].concat(),
        &dir.path().join("airlock.bin"),
        "through Airlock (headless)",
    );
    assert!(
        airlock == native,
        "the last headless frame differs from native's offscreen one"
    );
}

/// 100 frames to an X11 window, through xcb or Xlib: each driver's run checks the window's
/// pixels against the CPU, and the two results are the same.
fn x11(surface: &str) {
    let _one = one_x_server();
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--surface", surface, "--frames", "100", "--size", "256"];
    let (native, _) = run_present(
        &native_manifest(),
        Some(&x.display),
        &args,
        &dir.path().join("native.bin"),
        "natively",
    );
    let (airlock, _) = run_present(
        &airlock_manifest(),
        Some(&x.display),
        &args,
        &dir.path().join("airlock.bin"),
        "through Airlock",
    );
    assert!(
        airlock == native,
        "{surface}: the last frame differs from native's"
    );
}

#[test]
fn xcb_window() {
    x11("xcb");
}

#[test]
fn xlib_window() {
    x11("xlib");
}

/// 100 frames to a fullscreen Wayland window (an xdg-shell toplevel) on a headless weston:
/// each driver's run checks what weston shows (its screenshot) against the CPU, and the two
/// results are the same.
#[test]
fn wayland_window() {
    let _one = one_x_server();
    let w = Weston::start(256);
    let dir = tempfile::tempdir().unwrap();
    let args = ["--surface", "wayland", "--frames", "100", "--size", "256"];
    let (native, _) = run_present_in(
        &native_manifest(),
        |c| w.env(c),
        &args,
        &dir.path().join("native.bin"),
        "natively",
    );
    let (airlock, _) = run_present_in(
        &airlock_manifest(),
        |c| w.env(c),
        &args,
        &dir.path().join("airlock.bin"),
        "through Airlock",
    );
    assert!(
        airlock == native,
        "wayland: the last frame differs from native's"
    );
}

/// The window shrinks while frames are in flight: Airlock reports it (SUBOPTIMAL or
/// OUT_OF_DATE), the program makes a new swapchain, and the last frame, checked in the window,
/// has the new size. Through Airlock only: native lavapipe 22.3's software X11 path never
/// reports a size change (its swapchain keeps the old size and GetImage of it fails).
#[test]
fn resize_under_a_swapchain() {
    let _one = one_x_server();
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--surface",
        "xcb",
        "--frames",
        "60",
        "--size",
        "256",
        "--resize-at",
        "20",
        "--resize-to",
        "200",
    ];
    let (_, err) = run_present(
        &airlock_manifest(),
        Some(&x.display),
        &args,
        &dir.path().join("airlock.bin"),
        "through Airlock",
    );
    assert!(
        err.contains("SUBOPTIMAL_KHR at frame") || err.contains("OUT_OF_DATE_KHR at frame"),
        "no resize reported: {err}"
    );
}

/// The window is destroyed while frames are in flight: each driver answers with an error
/// (OUT_OF_DATE or SURFACE_LOST), and the program tears down without a crash or a hang.
#[test]
fn window_destroyed_under_a_swapchain() {
    let _one = one_x_server();
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--surface", "xcb", "--frames", "60", "--close-at", "20"];
    for (label, manifest) in [
        ("natively", native_manifest()),
        ("through Airlock", airlock_manifest()),
    ] {
        let (_, err) = run_present(
            &manifest,
            Some(&x.display),
            &args,
            &dir.path().join("out.bin"),
            label,
        );
        assert!(
            err.contains("window destroyed before frame 20: ERROR_"),
            "{label}: no error after the window went: {err}"
        );
    }
}

/// What vkcube's window shows mid-run: the share of its pixels that are not the clear colour,
/// and their mean colour.
struct Shot {
    covered: f64,
    mean: [f64; 3],
}

/// Runs `program --c 300` on `manifest`'s driver under a fresh Xvfb, takes a screenshot of its
/// window mid-run, and checks that it exits 0.
fn cube(program: &str, manifest: &PathBuf, label: &str) -> Shot {
    let _one = one_x_server();
    let x = Xvfb::start();
    let (conn, screen) = x11rb::connect(Some(&x.display)).expect("connecting to Xvfb");
    let root = conn.setup().roots[screen].root;
    let mut c = with_driver(program, manifest);
    c.args(["--c", "300"]).env("DISPLAY", &x.display);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = c
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    // Its window: the first mapped child of the root (no window manager here).
    let t = Instant::now();
    let window = loop {
        let tree = conn.query_tree(root).unwrap().reply().unwrap();
        let mapped = tree.children.iter().copied().find(|w| {
            conn.get_window_attributes(*w)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|a| a.map_state == MapState::VIEWABLE)
        });
        if let Some(w) = mapped {
            break w;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{program} {label}: no window"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // The first screenshot with something drawn (a window shows its background until the
    // first frame arrives), a few frames in.
    let g = conn.get_geometry(window).unwrap().reply().unwrap();
    // A screenshot, or `None` once the program has closed its window (300 frames can be over
    // before the last screenshot on a fast run).
    let shoot = || {
        let image = conn
            .get_image(ImageFormat::Z_PIXMAP, window, 0, 0, g.width, g.height, !0)
            .ok()?
            .reply()
            .ok()?;
        Some(shot(&image.data))
    };
    let mut s = shoot().unwrap_or_else(|| panic!("{program} {label}: no screenshot"));
    while s.covered < 0.05 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
        match shoot() {
            Some(next) => s = next,
            None => break,
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    let s = if s.covered < 0.05 {
        s
    } else {
        shoot().unwrap_or(s)
    };
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{program} --c 300 {label}: {}\n{}",
        o.status,
        stderr(&o)
    );
    s
}

/// The share of a 32-bit BGRX screenshot that is not the clear colour (the corner's), and the
/// mean colour of that share.
fn shot(data: &[u8]) -> Shot {
    let px: Vec<[u8; 3]> = data.chunks(4).map(|p| [p[2], p[1], p[0]]).collect();
    let clear = px[0];
    let cube: Vec<&[u8; 3]> = px.iter().filter(|p| **p != clear).collect();
    let n = cube.len().max(1) as f64;
    let mean = [0, 1, 2].map(|i| cube.iter().map(|p| f64::from(p[i])).sum::<f64>() / n);
    Shot {
        covered: cube.len() as f64 / px.len() as f64,
        mean,
    }
}

/// vkcube and vkcubepp run 300 frames through Airlock and natively; mid-run screenshots show
/// the cube alike: the same share of the window covered and the same mean colour, within what
/// the cube's turning between two moments changes.
fn cube_matches_native(program: &str) {
    let native = cube(program, &native_manifest(), "natively");
    let airlock = cube(program, &airlock_manifest(), "through Airlock");
    assert!(
        native.covered > 0.05 && airlock.covered > 0.05,
        "{program}: no cube on screen (native {:.3}, Airlock {:.3} of the window covered)",
        native.covered,
        airlock.covered
    );
    assert!(
        (native.covered - airlock.covered).abs() < 0.08,
        "{program}: the cube covers {:.3} of the window natively, {:.3} through Airlock",
        native.covered,
        airlock.covered
    );
    for i in 0..3 {
        assert!(
            (native.mean[i] - airlock.mean[i]).abs() < 16.0,
            "{program}: the cube's mean colour is {:?} natively, {:?} through Airlock",
            native.mean,
            airlock.mean
        );
    }
}

/// vkcube-wayland's 300 frames on a headless weston (desktop shell): a mid-run screenshot
/// against one of the empty desktop, natively and through Airlock: the same share of the
/// screen changed, the same mean colour where it did.
fn wayland_cube(manifest: &PathBuf, label: &str) -> Shot {
    let _one = one_x_server();
    let w = Weston::start(512);
    // The empty desktop, once the shell has drawn it: two screenshots alike, not all black.
    let t = Instant::now();
    let mut empty = w.screenshot().2;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let again = w.screenshot().2;
        let drawn = again.iter().any(|p| p[..3] != [0, 0, 0]);
        if (drawn && again == empty) || t.elapsed() > Duration::from_secs(20) {
            break;
        }
        empty = again;
    }
    let mut c = with_driver("vkcube-wayland", manifest);
    c.args(["--c", "300", "--width", "256", "--height", "256"]);
    w.env(&mut c)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = c
        .spawn()
        .unwrap_or_else(|e| panic!("starting vkcube-wayland: {e}"));
    let t = Instant::now();
    let shoot = || {
        let (_, _, now) = w.screenshot();
        // The panel's clock may tick between the two: only below the panel counts.
        let changed: Vec<[u8; 3]> = now
            .iter()
            .zip(&empty)
            .skip(512 * 40)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| [a[0], a[1], a[2]])
            .collect();
        let n = changed.len().max(1) as f64;
        Shot {
            covered: changed.len() as f64 / (512.0 * 472.0),
            mean: [0, 1, 2].map(|i| changed.iter().map(|p| f64::from(p[i])).sum::<f64>() / n),
        }
    };
    let mut s = shoot();
    while s.covered < 0.05 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
        s = shoot();
    }
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "vkcube-wayland --c 300 {label}: {}\n{}",
        o.status,
        stderr(&o)
    );
    s
}

#[test]
fn vkcube_wayland() {
    let native = wayland_cube(&native_manifest(), "natively");
    let airlock = wayland_cube(&airlock_manifest(), "through Airlock");
    eprintln!(
        "vkcube-wayland: {:.3} of the screen changed natively (mean {:?}), {:.3} through Airlock (mean {:?})",
        native.covered, native.mean, airlock.covered, airlock.mean
    );
    assert!(
        native.covered > 0.05 && airlock.covered > 0.05,
        "vkcube-wayland: nothing on screen (native {:.3}, Airlock {:.3} of it changed)",
        native.covered,
        airlock.covered
    );
    assert!(
        (native.covered - airlock.covered).abs() < 0.08,
        "vkcube-wayland: {:.3} of the screen changed natively, {:.3} through Airlock",
        native.covered,
        airlock.covered
    );
    for i in 0..3 {
        assert!(
            (native.mean[i] - airlock.mean[i]).abs() < 16.0,
            "vkcube-wayland: the mean colour is {:?} natively, {:?} through Airlock",
            native.mean,
            airlock.mean
        );
    }
}

#[test]
fn vkcube() {
    cube_matches_native("vkcube");
}

#[test]
fn vkcubepp() {
    cube_matches_native("vkcubepp");
}

/// `vulkaninfo` under X11 lists through Airlock what it lists natively, surface sections
/// included, but for the driver's identity, the headless surface Airlock adds, and host-pointer
/// import (`VK_EXT_external_memory_host`), which cannot reach another process.
#[test]
fn vulkaninfo_matches_native() {
    let _one = one_x_server();
    let x = Xvfb::start();
    let info = |manifest: &PathBuf| {
        let mut c = with_driver("vulkaninfo", manifest);
        c.env("DISPLAY", &x.display);
        let o = run(c);
        assert!(o.status.success(), "vulkaninfo: {}", stderr(&o));
        stdout(&o)
    };
    let native = info(&native_manifest());
    let airlock = info(&airlock_manifest());
    assert!(
        native.contains("Presentable Surfaces"),
        "no surfaces natively"
    );
    // What may differ, and how.
    let keep = |l: &&str| {
        !(l.contains("driverName")
            || l.contains("driverInfo")
            || l.contains("VK_EXT_headless_surface")
            || l.contains("VK_EXT_external_memory_host")
            || l.contains("Extensions: count ="))
    };
    // VkPhysicalDeviceExternalMemoryHostPropertiesEXT goes with its extension: 4 lines.
    let strip_host_pointer = |s: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut skip = 0;
        for l in s.lines() {
            if l.starts_with("VkPhysicalDeviceExternalMemoryHostPropertiesEXT") {
                skip = 4;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            out.push(l.to_string());
        }
        out
    };
    let n: Vec<String> = strip_host_pointer(&native);
    let a: Vec<String> = strip_host_pointer(&airlock);
    let n: Vec<&str> = n.iter().map(String::as_str).filter(keep).collect();
    let a: Vec<&str> = a.iter().map(String::as_str).filter(keep).collect();
    if let Some(i) = (0..n.len().max(a.len())).find(|&i| n.get(i) != a.get(i)) {
        panic!(
            "vulkaninfo differs at line {i}: natively {:?}, through Airlock {:?}",
            n.get(i),
            a.get(i)
        );
    }
}
