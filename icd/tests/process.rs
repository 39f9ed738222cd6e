//! Process-level behaviour: the W^X harness, a missing server, a server that dies.

mod common;
use common::*;

#[test]
fn mdwe_process_enumerates_through_airlock_and_natively() {
    // A hardened process's server comes from a launcher: one it started would inherit MDWE.
    let launcher = Launcher::start();
    for (manifest, driver) in [
        (airlock_manifest(), "Airlock"),
        (native_manifest(), "llvmpipe"),
    ] {
        let mut c = probe(&manifest, &["mdwe-enumerate"]);
        c.env("AIRLOCK_SOCKET", &launcher.socket);
        let o = run(c);
        let v = values(&o);
        assert!(
            o.status.success(),
            "{}: {}",
            manifest.display(),
            stdout(&o) + &stderr(&o)
        );
        assert_eq!(
            v.get("mdwe").map(String::as_str),
            Some("1"),
            "MDWE not in force"
        );
        assert_eq!(v.get("devices").map(String::as_str), Some("1"));
        assert_eq!(v.get("driver").map(String::as_str), Some(driver));
    }
}

#[test]
fn missing_server_fails_instance_creation_with_a_clear_log_line() {
    let lib = target_dir().join("libvulkan_airlock.so");
    let mut c = probe(
        &airlock_manifest(),
        &["direct-create", lib.to_str().unwrap()],
    );
    c.env("AIRLOCK_SERVER", "/nonexistent/airlock-server");
    let o = run(c);
    let v = values(&o);
    assert_eq!(
        v.get("create").map(String::as_str),
        Some("ERROR_INITIALIZATION_FAILED"),
        "{}",
        stdout(&o)
    );
    assert!(v["create_ms"].parse::<u64>().unwrap() < 1000);
    let log = stderr(&o);
    assert!(
        log.contains("cannot start the server") && log.contains("/nonexistent/airlock-server"),
        "log: {log}"
    );

    // Through the loader too.
    let mut c = probe(&airlock_manifest(), &["enumerate"]);
    c.env("AIRLOCK_SERVER", "/nonexistent/airlock-server");
    let o = run(c);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("vkCreateInstance: ERROR_"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn killed_server_means_device_lost_within_a_second() {
    let o = run(probe(&airlock_manifest(), &["kill-server"]));
    let v = values(&o);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(v["servers"], "1", "exactly one server per client process");
    assert_eq!(v["first_call"], "\"ERROR_DEVICE_LOST\"");
    assert_eq!(v["second_call"], "\"ERROR_DEVICE_LOST\"");
    assert!(v["first_call_ms"].parse::<u64>().unwrap() < 1000);
    assert!(v["second_call_ms"].parse::<u64>().unwrap() < 1000);
    assert_eq!(v["destroyed"], "yes");
    assert!(
        stderr(&o).contains("lost the server"),
        "no log line: {}",
        stderr(&o)
    );
}

#[test]
fn probe_sees_the_same_device_through_airlock_and_natively() {
    let a = values(&run(probe(&airlock_manifest(), &["enumerate"])));
    let n = values(&run(probe(&native_manifest(), &["enumerate"])));
    assert_eq!(a["devices"], n["devices"]);
    assert_eq!(a["device"], n["device"]);
    assert_eq!(a["driver"], "Airlock");
    assert_eq!(n["driver"], "llvmpipe");
}

#[test]
fn null_required_input_is_an_error_and_the_server_survives() {
    let o = run(probe(&airlock_manifest(), &["null-input"]));
    let v = values(&o);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(v["null_call"], "ERROR_UNKNOWN");
    assert!(
        stderr(&o).contains("pImageFormatInfo"),
        "the log names the parameter: {}",
        stderr(&o)
    );
    assert_eq!(v["valid_call"], "SUCCESS");
    assert_eq!(v["servers_alive"], "1");
    // Same answer as native lavapipe for the valid call.
    let n = values(&run(probe(&native_manifest(), &["enumerate"])));
    assert_eq!(n["devices"], "1");
    assert!(v["max_extent_width"].parse::<u32>().unwrap() >= 4096);
}

#[test]
fn killed_client_means_its_server_frees_everything_and_exits() {
    use std::io::{BufRead, Read};
    let mut c = probe(&airlock_manifest(), &["make-and-hang"]);
    c.env("AIRLOCK_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut server = 0;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("server=") {
            server = p.parse().unwrap();
        }
        assert!(!line.starts_with("error="), "{line}");
        if line == "ready=yes" {
            break;
        }
    }
    assert!(server > 0, "the probe did not find its server");
    child.kill().unwrap();
    child.wait().unwrap();
    // The server holds the other end of stderr: reading to the end waits for it to exit.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    let log = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the server did not exit within 10 s of its client's death");
    // Its descriptors close a moment before the process is gone (or a zombie nobody reaps).
    let gone = || {
        std::fs::read_to_string(format!("/proc/{server}/status"))
            .map(|s| s.contains("zombie"))
            .unwrap_or(true)
    };
    let t = std::time::Instant::now();
    while !gone() && t.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(gone(), "server {server} still runs");
    let line = log
        .lines()
        .find(|l| l.contains("cleaned up after the client"))
        .unwrap_or_else(|| panic!("no cleanup log line in:\n{log}"));
    // Instance, device, buffer, memory, pool (its two command buffers go with it), fence,
    // semaphore.
    let objects: usize = line
        .rsplit("objects=")
        .next()
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no object count in {line:?}"));
    assert!(objects >= 7, "only {objects} objects freed: {line}");
}
