//! `vulkaninfo` through Airlock equals `vulkaninfo` on native lavapipe, but for the lines that
//! must differ: the driver identity, the headless surface Airlock adds (lavapipe 22.3 lacks it),
//! and the extension that hands the driver a pointer of the application's own address space,
//! which a driver in another process cannot read. The window-system extensions are compared like
//! any other (surfaces without a display here; `workloads/tests/present.rs` compares vulkaninfo
//! under Xvfb, surface sections included).

mod common;
use common::*;
use std::collections::BTreeSet;

/// Extensions lavapipe advertises that Airlock does not carry, and the property structs only
/// they bring; and the one Airlock adds.
const NOT_CARRIED: &[&str] = &[
    "VK_EXT_external_memory_host",
    "VkPhysicalDeviceExternalMemoryHostPropertiesEXT",
    "VK_EXT_headless_surface",
];

fn vulkaninfo(manifest: &std::path::PathBuf, args: &[&str]) -> String {
    let mut c = with_driver("vulkaninfo", manifest);
    c.args(args);
    let o = run(c);
    assert!(
        o.status.success(),
        "vulkaninfo {args:?} with {} failed:\n{}",
        manifest.display(),
        stderr(&o)
    );
    stdout(&o)
}

fn is_not_carried_item(line: &str) -> bool {
    let name = line.trim_start().split([' ', ':']).next().unwrap_or("");
    NOT_CARRIED.contains(&name)
}

/// Rewrites vulkaninfo's text so that the two drivers' outputs can be compared line for line;
/// returns it with the identity values it found.
fn normalize(text: &str) -> (Vec<String>, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut identity = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        if t.ends_with(':') && is_not_carried_item(t) {
            // A property block of an extension not carried: the header, its rule, its members
            // and the blank line after them.
            i += 1;
            while i < lines.len() && !lines[i].trim().is_empty() {
                i += 1;
            }
            i += 1;
            continue;
        }
        if let Some((head, count)) = t.rsplit_once("Extensions: count = ") {
            // Recount the list without what is not carried.
            let mut items = Vec::new();
            let mut j = i + 1;
            if j < lines.len()
                && lines[j].trim().chars().all(|c| c == '=' || c == '-')
                && !lines[j].trim().is_empty()
            {
                j += 1;
            }
            while j < lines.len()
                && !lines[j].trim().is_empty()
                && lines[j].trim_start().starts_with("VK_")
            {
                if !is_not_carried_item(lines[j]) {
                    items.push(lines[j].to_string());
                }
                j += 1;
            }
            let listed: usize = count.trim().parse().unwrap_or(usize::MAX);
            assert!(listed >= items.len(), "count line {t:?} is below its items");
            out.push(format!("{indent}{head}Extensions: count = {}", items.len()));
            out.extend(items);
            i = j;
            continue;
        }
        if t.starts_with("driverName") || t.starts_with("driverInfo") {
            let (k, v) = t.split_once('=').unwrap();
            identity.push(format!("{}={}", k.trim(), v.trim()));
            out.push(format!("{indent}{} = <identity>", k.trim()));
        } else if t.starts_with("\"driverName\"") || t.starts_with("\"driverInfo\"") {
            identity.push(t.to_string());
            out.push(format!("{indent}<identity>"));
        } else if !is_not_carried_item(line) {
            out.push(line.to_string());
        }
        i += 1;
    }
    (out, identity)
}

fn assert_same(native: &[String], airlock: &[String]) {
    if native == airlock {
        return;
    }
    let n: BTreeSet<_> = native.iter().collect();
    let a: BTreeSet<_> = airlock.iter().collect();
    let only_native: Vec<_> = n.difference(&a).take(20).collect();
    let only_airlock: Vec<_> = a.difference(&n).take(20).collect();
    panic!("outputs differ\nonly native: {only_native:#?}\nonly Airlock: {only_airlock:#?}");
}

fn check_identity(native: &[String], airlock: &[String]) {
    assert!(
        !native.is_empty(),
        "native output has no driver identity lines"
    );
    assert_eq!(native.len(), airlock.len());
    for (n, a) in native.iter().zip(airlock) {
        if n.starts_with("driverName") {
            assert_eq!(a, "driverName=Airlock");
        } else if n.starts_with("driverInfo") {
            let host = n.trim_start_matches("driverInfo=");
            assert!(
                a.starts_with("driverInfo=Airlock") && a.contains(host),
                "{a} should name the host driver {host}"
            );
        }
    }
}

#[test]
fn vulkaninfo_text_equals_native() {
    let native = vulkaninfo(&native_manifest(), &[]);
    let airlock = vulkaninfo(&airlock_manifest(), &[]);
    assert!(
        airlock.contains("llvmpipe"),
        "the lavapipe device is not shown through Airlock"
    );
    let (n, ni) = normalize(&native);
    let (a, ai) = normalize(&airlock);
    check_identity(&ni, &ai);
    assert_same(&n, &a);
}

#[test]
fn vulkaninfo_summary_equals_native() {
    let (n, ni) = normalize(&vulkaninfo(&native_manifest(), &["--summary"]));
    let (a, ai) = normalize(&vulkaninfo(&airlock_manifest(), &["--summary"]));
    check_identity(&ni, &ai);
    assert_same(&n, &a);
}

fn strip_json(v: &mut serde_json::Value, identity: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !NOT_CARRIED.contains(&k.as_str()));
            for (k, x) in m.iter_mut() {
                if k == "driverName" || k == "driverInfo" {
                    identity.push(format!("{k}={}", x.as_str().unwrap_or("")));
                    *x = serde_json::Value::Null;
                } else {
                    strip_json(x, identity);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| strip_json(x, identity)),
        _ => {}
    }
}

#[test]
fn vulkaninfo_json_profile_equals_native() {
    let dir = std::env::temp_dir().join(format!("airlock-vi-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = |manifest: &std::path::PathBuf, name: &str| -> serde_json::Value {
        let path = dir.join(name);
        let mut c = with_driver("vulkaninfo", manifest);
        c.arg("--json").arg("-o").arg(&path);
        let o = run(c);
        assert!(
            o.status.success(),
            "vulkaninfo --json failed: {}",
            stderr(&o)
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    let (mut n, mut a) = (
        profile(&native_manifest(), "native.json"),
        profile(&airlock_manifest(), "airlock.json"),
    );
    let (mut ni, mut ai) = (Vec::new(), Vec::new());
    strip_json(&mut n, &mut ni);
    strip_json(&mut a, &mut ai);
    check_identity(&ni, &ai);
    assert!(
        n.to_string().contains("VkPhysicalDeviceProperties"),
        "the profile holds no device properties"
    );
    assert!(
        n == a,
        "profiles differ:\nnative: {}\nAirlock: {}",
        &n.to_string()[..2000.min(n.to_string().len())],
        &a.to_string()[..2000.min(a.to_string().len())]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validation_layer_reports_nothing() {
    let mut c = with_driver("vulkaninfo", &airlock_manifest());
    c.env("VK_INSTANCE_LAYERS", "VK_LAYER_KHRONOS_validation");
    let o = run(c);
    assert!(
        o.status.success(),
        "vulkaninfo under validation failed: {}",
        stderr(&o)
    );
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("llvmpipe"));
    for marker in [
        "Validation Error",
        "Validation Warning",
        "VUID-",
        "UNASSIGNED-",
    ] {
        assert!(
            !all.contains(marker),
            "validation reported {marker}:\n{all}"
        );
    }
    // The layer was really active: vulkaninfo lists it as enabled in the layer section.
    assert!(stdout(&o).contains("VK_LAYER_KHRONOS_validation"));
}
