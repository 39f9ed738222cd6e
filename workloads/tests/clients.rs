//! Real clients, unchanged: wgpu for Python (wgpu-native, the Rust wgpu under it) computing and
//! rendering offscreen, Kompute computing, and FFmpeg's Vulkan filters, natively and through
//! Airlock, each plain and under the Khronos validation layer (as a developer runs them). Each
//! script checks its own result and prints a digest of it; every run must print the same, and
//! the layer may report nothing through Airlock that it does not report natively.
//!
//! `scripts/clients.sh` installs the clients into target/clients-venv (the test command runs
//! it); `AIRLOCK_CLIENTS_PYTHON` names another interpreter that has them.

use std::path::{Path, PathBuf};
use std::process::Command;
use workloads::drivers::{
    airlock_manifest, native_manifest, run, stderr, stdout, target_dir, validation_ids,
    with_driver, with_validation,
};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("AIRLOCK_CLIENTS_PYTHON") {
        return PathBuf::from(p);
    }
    let p = target_dir().join("../clients-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/clients.sh (or set AIRLOCK_CLIENTS_PYTHON)",
        p.display()
    );
    p
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(name)
}

/// Runs `c` on the driver of `manifest` (under the validation layer when `validate`); its
/// stdout (bytes) and the ids of the layer's messages, after checking from the ICD's log line that it
/// ran through Airlock exactly when `through_airlock`.
fn run_client(
    what: &str,
    mut c: Command,
    manifest: &Path,
    through_airlock: bool,
    validate: bool,
) -> (Vec<u8>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log = validate.then(|| with_validation(&mut c, dir.path()));
    c.env("AIRLOCK_LOG", "info");
    let o = run(c);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        o.status.success(),
        "{what} on {} (validated: {validate}): {}\n--- stdout\n{out}--- stderr\n{err}",
        manifest.display(),
        o.status
    );
    assert_eq!(
        err.contains("airlock: connected"),
        through_airlock,
        "{what} on {}: through Airlock or not?\n{err}",
        manifest.display()
    );
    if let Some(log) = &log {
        assert!(log.exists(), "{what}: the validation layer did not run");
    }
    (
        o.stdout,
        log.map(|l| validation_ids(&l)).unwrap_or_default(),
    )
}

/// Runs the client `make` builds for a driver's manifest on both drivers, plain and validated:
/// the same output four times, and no validation message through Airlock beyond native's.
/// Returns the output.
fn compare_runs(what: &str, make: impl Fn(&PathBuf) -> Command) -> Vec<u8> {
    let (native, airlock) = (native_manifest(), airlock_manifest());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (out, _) = run_client(what, make(&native), &native, false, false);
    assert!(!out.is_empty(), "{what} printed nothing");
    let (a, _) = run_client(what, make(&airlock), &airlock, true, false);
    let (nv, native_ids) = run_client(what, make(&native), &native, false, true);
    let (av, airlock_ids) = run_client(what, make(&airlock), &airlock, true, true);
    for (label, got) in [
        ("through Airlock", a),
        ("natively under the validation layer", nv),
        ("through Airlock under the validation layer", av),
    ] {
        assert!(
            out == got,
            "{what}: native printed\n{}\n{label}\n{}",
            text(&out),
            text(&got)
        );
    }
    let extra: Vec<_> = airlock_ids
        .iter()
        .filter(|id| !native_ids.contains(id))
        .collect();
    assert!(
        extra.is_empty(),
        "{what}: the validation layer reports through Airlock what it does not natively: \
         {extra:?} (natively: {native_ids:?})"
    );
    out
}

fn compare(name: &str) {
    compare_runs(name, |m| {
        let mut c = with_driver(python(), m);
        c.arg(script(name));
        c
    });
}

#[test]
fn wgpu_python_compute() {
    compare("wgpu_compute.py");
}

#[test]
fn wgpu_python_offscreen_render() {
    compare("wgpu_render.py");
}

#[test]
fn kompute_compute() {
    compare("kompute_compute.py");
}

/// FFmpeg 5.1 (Debian) flips a frame with its `hflip_vulkan` filter: the command a new user
/// ran under the validation layer, which Airlock once refused (a descriptor-set template whose
/// ignored pipeline layout the layer left wrapped). The frame must match FFmpeg's own CPU
/// flip: the Vulkan filter samples with linear filtering, so each sample must lie within the
/// range of the CPU result's samples around it.
#[test]
fn ffmpeg_hflip_vulkan() {
    const SIZE: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let input = [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x64:rate=1",
        "-frames:v",
        "1",
    ];
    let ffmpeg = |manifest: Option<&PathBuf>, filters: &str, out: &Path| {
        let mut c = match manifest {
            Some(m) => with_driver("ffmpeg", m),
            None => Command::new("ffmpeg"),
        };
        c.args(["-v", "error", "-nostdin"]);
        if manifest.is_some() {
            c.args(["-init_hw_device", "vulkan=vk:0", "-filter_hw_device", "vk"]);
        }
        c.args(input)
            .args(["-vf", filters, "-f", "rawvideo", "-y"])
            .arg(out);
        c
    };
    let frame = |c: &mut Command, out: &Path| {
        let o = run(std::mem::replace(c, Command::new("true")));
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(out).unwrap()
    };
    let cpu_out = dir.path().join("cpu.raw");
    let cpu = frame(
        &mut ffmpeg(None, "format=yuv420p,hflip", &cpu_out),
        &cpu_out,
    );
    let unflipped_out = dir.path().join("in.raw");
    let unflipped = frame(
        &mut ffmpeg(None, "format=yuv420p", &unflipped_out),
        &unflipped_out,
    );

    let vulkan = "format=yuv420p,hwupload,hflip_vulkan,hwdownload,format=yuv420p";
    let frame = compare_runs("ffmpeg hflip_vulkan", |m| {
        ffmpeg(Some(m), vulkan, Path::new("pipe:1"))
    });
    assert_eq!(frame.len(), SIZE * SIZE * 3 / 2, "a 64x64 yuv420p frame");
    // Samples outside the 3x3 neighbourhood range (±1) of a reference, per plane.
    let outside = |reference: &[u8]| {
        let planes = [
            (0, SIZE),
            (SIZE * SIZE, SIZE / 2),
            (SIZE * SIZE * 5 / 4, SIZE / 2),
        ];
        let mut bad = 0;
        for (off, w) in planes {
            for r in 0..w {
                for c in 0..w {
                    let near = (r.saturating_sub(1)..(r + 2).min(w))
                        .flat_map(|rr| {
                            (c.saturating_sub(1)..(c + 2).min(w)).map(move |cc| (rr, cc))
                        })
                        .map(|(rr, cc)| reference[off + rr * w + cc]);
                    let (lo, hi) = near.fold((255u8, 0u8), |(lo, hi), v| (lo.min(v), hi.max(v)));
                    let v = frame[off + r * w + c];
                    if v + 1 < lo || v > hi.saturating_add(1) {
                        bad += 1;
                    }
                }
            }
        }
        bad
    };
    assert_eq!(
        outside(&cpu),
        0,
        "the Vulkan flip differs from FFmpeg's CPU flip"
    );
    assert!(
        outside(&unflipped) > SIZE * SIZE / 2,
        "the frame looks like the unflipped input"
    );
}
