//! Every workload scenario run with native lavapipe and through Airlock, each plain and under
//! the Khronos validation layer: all must pass their own checks against the CPU, the layer must
//! report nothing, and the four results must be byte-identical.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// Runs `scenario` on the driver of `manifest`, with `env` added (and the Khronos validation
/// layer when `validate`); its result bytes. A validated run fails on any message of the layer.
fn run_scenario(
    scenario: &str,
    manifest: &PathBuf,
    dir: &Path,
    label: &str,
    env: &[(&str, &Path)],
    validate: bool,
) -> Vec<u8> {
    let out = dir.join(format!("{scenario}-{label}.bin"));
    let mut c = with_driver(workload(), manifest);
    c.arg(scenario).arg("--out").arg(&out);
    if validate {
        c.arg("--validate");
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let o = run(c);
    assert!(
        o.status.success(),
        "{scenario} failed {label} ({}):\n{}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    std::fs::read(&out).unwrap_or_else(|e| panic!("reading {}: {e}", out.display()))
}

/// Runs `scenario` natively and through Airlock (with `airlock_env`), each plain and under the
/// validation layer, and compares the four results: the layer reports nothing on either
/// driver, and what a program gets through Airlock does not change under it.
fn compare(scenario: &str, airlock_env: &[(&str, &Path)]) {
    let dir = tempfile::tempdir().unwrap();
    let native = run_scenario(
        scenario,
        &native_manifest(),
        dir.path(),
        "natively",
        &[],
        false,
    );
    assert!(!native.is_empty(), "{scenario} reported nothing");
    for (label, manifest, env, validate) in [
        ("through Airlock", airlock_manifest(), airlock_env, false),
        ("natively, validated", native_manifest(), &[][..], true),
        (
            "through Airlock, validated",
            airlock_manifest(),
            airlock_env,
            true,
        ),
    ] {
        let got = run_scenario(scenario, &manifest, dir.path(), label, env, validate);
        // Not assert_eq!: the results run to 64 MiB.
        if let Some(i) = (0..native.len().max(got.len())).find(|&i| native.get(i) != got.get(i)) {
            panic!(
                "{scenario}: results {label} differ from native from byte {i} on ({} bytes \
                 natively, {})",
                native.len(),
                got.len()
            );
        }
    }
}

#[test]
fn compute() {
    compare("compute", &[]);
}

#[test]
fn render() {
    compare("render", &[]);
}

#[test]
fn dynamic_rendering() {
    compare("dynamic_rendering", &[]);
}

#[test]
fn timeline() {
    compare("timeline", &[]);
}

#[test]
fn queries() {
    compare("queries", &[]);
}

/// Descriptor sets the ICD allocates without waiting and those it leaves to the host, used
/// after frees and resets (icd/src/descriptor.rs's pool accounting).
#[test]
fn descriptor_pools() {
    compare("descriptor_pools", &[]);
}

/// Objects created with the application's allocation callbacks: a refusing allocator gets
/// VK_ERROR_OUT_OF_HOST_MEMORY, a counting one is called and freed (icd/src/allocation.rs).
#[test]
fn allocator() {
    compare("allocator", &[]);
}

/// Pipelines the ICD creates without waiting and one it leaves to the host (creation
/// feedback), each run and its output checked (icd/src/pipeline.rs).
#[test]
fn pipeline_creation() {
    compare("pipeline_creation", &[]);
}

#[test]
fn templates() {
    compare("templates", &[]);
}

#[test]
fn secondary() {
    compare("secondary", &[]);
}

#[test]
fn push_constants() {
    compare("push_constants", &[]);
}

#[test]
fn pipeline_cache() {
    compare("pipeline_cache", &[]);
}

#[test]
fn threads() {
    compare("threads", &[]);
}

#[test]
fn ordering() {
    compare("ordering", &[]);
}

#[test]
fn layout_lifetime() {
    compare("layout_lifetime", &[]);
}

/// Also: the 32 MiB the application wrote reached the server through shared memory, not the
/// command ring.
#[test]
fn external_memory() {
    compare("external_memory", &[]);
}

/// With the sandbox on (the default): the server offers the host driver's JIT the C functions
/// it calls by name.
#[test]
fn math() {
    compare("math", &[]);
}

/// Garbage in every member Vulkan says is ignored: the calls succeed and the results hold, as
/// natively.
#[test]
fn ignored() {
    compare("ignored", &[]);
}

#[test]
fn private_data() {
    compare("private_data", &[]);
}

/// Mapped input rewritten by a thread while the driver reads it (issue 18's time of check and
/// time of use, on the application's memory): outputs from either value, no crash, and the
/// same exact result once the rewriting stops, natively and through Airlock.
#[test]
fn rewritten() {
    compare("rewritten", &[]);
}

#[test]
fn zero_copy() {
    const BUFFER_BYTES: u64 = 32 << 20;
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    compare("zero_copy", &[("AIRLOCK_STATS", &stats_path)]);
    let text = std::fs::read_to_string(&stats_path).unwrap_or_else(|e| {
        panic!(
            "Airlock wrote no statistics to {}: {e}",
            stats_path.display()
        )
    });
    let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
    let field = |key: &str| {
        stats[key]
            .as_u64()
            .unwrap_or_else(|| panic!("statistics lack {key}: {text}"))
    };
    assert!(
        field("ring_bytes") < BUFFER_BYTES / 16,
        "{} bytes went through the command ring for a {BUFFER_BYTES}-byte mapped buffer: {text}",
        field("ring_bytes")
    );
    assert!(field("memory_maps") >= 1, "no vkMapMemory counted: {text}");
}

/// A failing Vulkan call is reported with its name and VkResult, as a failure.
#[test]
fn reports_vulkan_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-driver.json");
    let mut c = with_driver(workload(), &missing);
    c.arg("compute")
        .arg("--out")
        .arg(dir.path().join("out.bin"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("vkCreateInstance failed: ERROR_INCOMPATIBLE_DRIVER"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("out.bin").exists());
}

#[test]
fn rejects_unknown_scenarios() {
    let mut c = with_driver(workload(), &native_manifest());
    c.args(["no-such-scenario", "--out", "/dev/null"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("scenarios: compute render"),
        "{}",
        stderr(&o)
    );
}

/// A program run twice with the shader cache on (Mesa's own natively; through Airlock, the
/// directory the server keeps for that program) gets the same results each time, as natively;
/// Airlock's compiled shaders land in a directory of that program's alone, and another program
/// gets another one.
#[test]
fn second_runs_use_a_shader_cache_of_their_own_application() {
    let dir = tempfile::tempdir().unwrap();
    let native_cache = dir.path().join("native");
    let airlock_cache = dir.path().join("airlock");
    let run_with = |scenario: &str, manifest: &PathBuf, var: &str, cache: &Path, n: u32| {
        let out = dir.path().join(format!("{scenario}-{var}-{n}.bin"));
        let mut c = with_driver(workload(), manifest);
        c.arg(scenario)
            .arg("--out")
            .arg(&out)
            .env_remove("MESA_SHADER_CACHE_DISABLE")
            .env(var, cache);
        let o = run(c);
        assert!(
            o.status.success(),
            "{scenario}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        std::fs::read(&out).unwrap()
    };
    for scenario in ["compute", "math"] {
        let native: Vec<_> = (0..2)
            .map(|n| {
                run_with(
                    scenario,
                    &native_manifest(),
                    "MESA_SHADER_CACHE_DIR",
                    &native_cache,
                    n,
                )
            })
            .collect();
        let airlock: Vec<_> = (0..2)
            .map(|n| {
                run_with(
                    scenario,
                    &airlock_manifest(),
                    "AIRLOCK_SHADER_CACHE_DIR",
                    &airlock_cache,
                    n,
                )
            })
            .collect();
        assert_eq!(native[0], native[1], "{scenario}: native runs differ");
        for (n, a) in airlock.iter().enumerate() {
            assert!(
                *a == native[0],
                "{scenario}: Airlock run {n} differs from native"
            );
        }
    }
    let apps = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    let only = apps(&airlock_cache);
    assert_eq!(only.len(), 1, "one program, one directory: {only:?}");
    let named = std::fs::read_to_string(only[0].join("application")).unwrap();
    assert!(named.trim_end().ends_with("airlock-workload"), "{named}");
    let entries = walk(&only[0].join("mesa_shader_cache"));
    assert!(entries > 1, "{entries} files in the cache");
    // Another program: the probe.
    let mut c = with_driver(target_dir().join("airlock-probe"), &airlock_manifest());
    c.arg("enumerate")
        .env_remove("MESA_SHADER_CACHE_DISABLE")
        .env("AIRLOCK_SHADER_CACHE_DIR", &airlock_cache);
    let o = run(c);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let both = apps(&airlock_cache);
    assert_eq!(both.len(), 2, "{both:?}");
}

/// Files under `d`, recursively.
fn walk(d: &Path) -> usize {
    std::fs::read_dir(d)
        .map(|r| {
            r.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
