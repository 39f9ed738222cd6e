//! Synchronous round trips through the whole stack (loader → ICD → ring → server → lavapipe →
//! reply), against the same call on native lavapipe in the same run. Prints p50/p99 per side
//! and the ratios; criterion measures the means.
//!
//! Needs `cargo build --workspace` first (the server binary and the manifest in target/).

use ash::vk;
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Side {
    name: &'static str,
    _entry: ash::Entry,
    instance: ash::Instance,
    pd: vk::PhysicalDevice,
    create: Duration,
}

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn open(name: &'static str, manifest: PathBuf) -> Side {
    // The loader reads the driver list at each instance creation.
    std::env::set_var("VK_DRIVER_FILES", &manifest);
    std::env::set_var("VK_ICD_FILENAMES", &manifest);
    std::env::set_var("MESA_SHADER_CACHE_DISABLE", "true");
    let entry = unsafe { ash::Entry::load() }.expect("libvulkan.so.1");
    let t = Instant::now();
    let instance = unsafe { entry.create_instance(&vk::InstanceCreateInfo::default(), None) }
        .unwrap_or_else(|e| panic!("{name}: vkCreateInstance: {e:?} ({}); run `cargo build --release --workspace` first", manifest.display()));
    let pd = unsafe { instance.enumerate_physical_devices() }.unwrap()[0];
    Side {
        name,
        _entry: entry,
        instance,
        pd,
        create: t.elapsed(),
    }
}

fn query(s: &Side) {
    let p = unsafe {
        s.instance
            .get_physical_device_format_properties(s.pd, vk::Format::R8G8B8A8_UNORM)
    };
    let _ = std::hint::black_box(p);
}

fn percentiles(s: &Side, n: usize) -> (f64, f64) {
    let mut t: Vec<u64> = (0..n)
        .map(|_| {
            let a = Instant::now();
            query(s);
            a.elapsed().as_nanos() as u64
        })
        .collect();
    t.sort_unstable();
    (t[n / 2] as f64 / 1000.0, t[n * 99 / 100] as f64 / 1000.0)
}

fn bench(c: &mut Criterion) {
    let native = open(
        "native",
        PathBuf::from("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"),
    );
    let airlock = open("airlock", target_dir().join("airlock_icd.x86_64.json"));
    for s in [&native, &airlock] {
        query(s);
        c.bench_function(
            &format!("{}: vkGetPhysicalDeviceFormatProperties", s.name),
            |b| b.iter(|| query(s)),
        );
    }
    let (np50, np99) = percentiles(&native, 100_000);
    let (ap50, ap99) = percentiles(&airlock, 100_000);
    println!("\nround trip vkGetPhysicalDeviceFormatProperties, 100000 calls each:");
    println!("  native  p50 {np50:.2} µs  p99 {np99:.2} µs");
    println!(
        "  airlock p50 {ap50:.2} µs  p99 {ap99:.2} µs  (ratio p50 {:.1}x)",
        ap50 / np50.max(0.001)
    );
    println!(
        "instance creation + enumeration: native {:.1} ms, airlock {:.1} ms (+{:.1} ms, server start included)",
        native.create.as_secs_f64() * 1e3,
        airlock.create.as_secs_f64() * 1e3,
        (airlock.create.as_secs_f64() - native.create.as_secs_f64()) * 1e3
    );
    unsafe {
        airlock.instance.destroy_instance(None);
        native.instance.destroy_instance(None);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
