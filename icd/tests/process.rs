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
    // vkGetPhysicalDeviceImageFormatProperties may not return VK_ERROR_DEVICE_LOST (vk.xml does
    // not list it), so a lost server answers with an error it may return.
    assert_eq!(v["first_call"], "\"ERROR_OUT_OF_HOST_MEMORY\"");
    assert_eq!(v["second_call"], "\"ERROR_OUT_OF_HOST_MEMORY\"");
    assert!(v["first_call_ms"].parse::<u64>().unwrap() < 1000);
    assert!(v["second_call_ms"].parse::<u64>().unwrap() < 1000);
    assert_eq!(v["destroyed"], "yes");
    assert!(
        stderr(&o).contains("lost the server"),
        "no log line: {}",
        stderr(&o)
    );
}

/// What each call of the `after-loss` probe may return, from vk.xml's `successcodes` and
/// `errorcodes` for its command.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "image_format_properties",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_FORMAT_NOT_SUPPORTED",
        ],
    ),
    (
        "enumerate_physical_devices",
        &[
            "SUCCESS",
            "INCOMPLETE",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_INITIALIZATION_FAILED",
        ],
    ),
    (
        "fence_status",
        &["SUCCESS", "NOT_READY", "ERROR_DEVICE_LOST"],
    ),
    (
        "event_status",
        &[
            "EVENT_SET",
            "EVENT_RESET",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_DEVICE_LOST",
        ],
    ),
    (
        "query_pool_results",
        &[
            "SUCCESS",
            "NOT_READY",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_DEVICE_LOST",
        ],
    ),
    (
        "create_buffer",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS",
        ],
    ),
    (
        "allocate_memory",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_INVALID_EXTERNAL_HANDLE",
            "ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS",
        ],
    ),
    (
        "create_fence",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
        ],
    ),
    (
        "create_semaphore",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
        ],
    ),
    (
        "create_event",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
        ],
    ),
    (
        "create_sampler",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
        ],
    ),
    (
        "create_descriptor_pool",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_FRAGMENTATION",
        ],
    ),
    (
        "create_command_pool",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
        ],
    ),
    (
        "create_device",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_INITIALIZATION_FAILED",
            "ERROR_EXTENSION_NOT_PRESENT",
            "ERROR_FEATURE_NOT_PRESENT",
            "ERROR_TOO_MANY_OBJECTS",
            "ERROR_DEVICE_LOST",
        ],
    ),
    (
        "allocate_command_buffers",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
        ],
    ),
    (
        "begin_command_buffer",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
        ],
    ),
    (
        "end_command_buffer",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
        ],
    ),
    (
        "queue_submit",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_DEVICE_LOST",
        ],
    ),
    // Waits without a time limit must return in finite time on a lost device, with one of these.
    ("wait_for_fences", &["SUCCESS", "ERROR_DEVICE_LOST"]),
    ("wait_semaphores", &["SUCCESS", "ERROR_DEVICE_LOST"]),
    ("queue_wait_idle", &["SUCCESS", "ERROR_DEVICE_LOST"]),
    ("device_wait_idle", &["SUCCESS", "ERROR_DEVICE_LOST"]),
    ("reset_fences", &["SUCCESS", "ERROR_OUT_OF_DEVICE_MEMORY"]),
    (
        "set_event",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
        ],
    ),
    (
        "map_mapped",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_MEMORY_MAP_FAILED",
        ],
    ),
    (
        "map_unmapped",
        &[
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY",
            "ERROR_MEMORY_MAP_FAILED",
        ],
    ),
];

/// After the server is killed, a call of every kind returns, at once, what Vulkan allows its
/// command (`VK_ERROR_DEVICE_LOST` wherever that is allowed), queues are still objects the
/// loader can write into, and the program destroys everything and exits 0. Native lavapipe
/// cannot lose its device on demand: the same program runs there without the kill and must
/// succeed throughout, which shows the sequence of calls is valid Vulkan.
#[test]
fn every_kind_of_call_after_a_loss_returns_what_vulkan_allows() {
    let native = run(probe(&native_manifest(), &["after-loss"]));
    let airlock = run(probe(&airlock_manifest(), &["after-loss"]));
    for (who, o) in [("native", &native), ("Airlock", &airlock)] {
        assert!(o.status.success(), "{who}: {}{}", stdout(o), stderr(o));
        let v = values(o);
        assert_eq!(v["destroyed"], "yes", "{who}");
        assert_eq!(v["queue_nonnull"], "true", "{who}");
        assert_eq!(v["queue_same"], "true", "{who}");
        assert_eq!(v["new_device_queue_nonnull"], "true", "{who}");
        for (call, allowed) in ALLOWED {
            let r = v.get(*call).unwrap_or_else(|| panic!("{who}: no {call}"));
            assert!(allowed.contains(&r.as_str()), "{who}: {call} returned {r}");
            let ms: u64 = v[&format!("{call}_ms")].parse().unwrap();
            assert!(ms < 1000, "{who}: {call} took {ms} ms");
            let lost = allowed.contains(&"ERROR_DEVICE_LOST");
            match who {
                "native" => {
                    let status = ["fence_status", "event_status", "query_pool_results"];
                    if !status.contains(call) {
                        assert_eq!(r, "SUCCESS", "native: {call}");
                    }
                }
                // The loader asks for the device's extensions before it creates one, and passes
                // on that query's error (which may not be VK_ERROR_DEVICE_LOST).
                _ if lost && *call != "create_device" => {
                    assert_eq!(r, "ERROR_DEVICE_LOST", "Airlock: {call}")
                }
                _ => {}
            }
        }
    }
    assert_eq!(values(&native)["servers_killed"], "0");
    assert_eq!(values(&airlock)["servers_killed"], "1");
    assert!(
        stderr(&airlock).contains("lost the server"),
        "no log line: {}",
        stderr(&airlock)
    );
}

/// `AIRLOCK_ABORT_ON_LOSS=1` (which the CTS runner sets): a lost server ends the process, as
/// a crash of the driver does natively, and the log says why.
#[test]
fn abort_on_loss_ends_the_process() {
    let mut c = probe(&airlock_manifest(), &["after-loss"]);
    c.env("AIRLOCK_ABORT_ON_LOSS", "1");
    let o = run(c);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(libc::SIGABRT), "{}", stdout(&o));
    assert!(!stdout(&o).contains("destroyed="), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("AIRLOCK_ABORT_ON_LOSS is set"),
        "{}",
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

/// Importing, as an opaque fd, a descriptor that no driver exported is refused as lavapipe
/// refuses it, and the device goes on working; the log says why.
#[test]
fn foreign_opaque_fds_are_refused_as_natively() {
    let native = run(probe(&native_manifest(), &["foreign-fd"]));
    let airlock = run(probe(&airlock_manifest(), &["foreign-fd"]));
    for (who, o) in [("native", &native), ("Airlock", &airlock)] {
        assert!(o.status.success(), "{who}: {}{}", stdout(o), stderr(o));
        let v = values(o);
        assert_eq!(
            v["import_empty_memfd"], "ERROR_INVALID_EXTERNAL_HANDLE",
            "{who}"
        );
        assert_eq!(
            v["import_foreign_memfd"], "ERROR_INVALID_EXTERNAL_HANDLE",
            "{who}"
        );
        assert_eq!(v["allocate_after"], "SUCCESS", "{who}");
    }
    assert!(
        stderr(&airlock).contains("not an opaque fd of Airlock's memory"),
        "log: {}",
        stderr(&airlock)
    );
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

/// The values of a probe run that must have succeeded.
fn probe_ok(o: &std::process::Output) -> std::collections::HashMap<String, String> {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    values(o)
}

fn ms(v: &std::collections::HashMap<String, String>, key: &str) -> u64 {
    v.get(key)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {v:?}"))
}

#[test]
fn killed_server_ends_a_blocked_wait_with_device_lost() {
    let o = run(probe(&airlock_manifest(), &["kill-during-wait"]));
    let v = probe_ok(&o);
    assert_eq!(v["servers"], "1");
    assert_eq!(
        v["waiting_before_kill"], "true",
        "the wait ended on its own"
    );
    assert_eq!(v["wait"], "ERROR_DEVICE_LOST");
    assert!(
        ms(&v, "wait_ms") < 1000,
        "the wait took {} ms",
        v["wait_ms"]
    );
    assert_eq!(v["semaphore_wait"], "ERROR_DEVICE_LOST");
    assert!(
        ms(&v, "semaphore_wait_ms") < 1000,
        "the semaphore wait took {} ms",
        v["semaphore_wait_ms"]
    );
    for call in ["fence_status", "wait_again", "submit", "device_wait_idle"] {
        assert_eq!(v[call], "ERROR_DEVICE_LOST", "{call}");
        assert!(ms(&v, &format!("{call}_ms")) < 1000, "{call}");
    }
    assert_eq!(v["destroyed"], "yes");
    assert!(ms(&v, "destroy_ms") < 1000);
}

#[test]
fn killed_server_mid_frame_fails_the_recording_without_a_hang() {
    let o = run(probe(&airlock_manifest(), &["kill-mid-frame"]));
    let v = probe_ok(&o);
    assert_eq!(v["servers"], "1");
    // The rest of the recording costs nothing once the server is known to be gone (the first
    // batch after the kill finds out).
    assert!(
        ms(&v, "record_after_kill_ms") < 1000,
        "{}",
        v["record_after_kill_ms"]
    );
    // What Vulkan allows each command on a lost device: vkEndCommandBuffer and vkCreateFence
    // may not return VK_ERROR_DEVICE_LOST; submission and waits must.
    assert!(
        [
            "SUCCESS",
            "ERROR_OUT_OF_HOST_MEMORY",
            "ERROR_OUT_OF_DEVICE_MEMORY"
        ]
        .contains(&v["end"].as_str()),
        "vkEndCommandBuffer: {}",
        v["end"]
    );
    for call in ["end", "submit", "queue_wait_idle", "create_fence"] {
        assert!(ms(&v, &format!("{call}_ms")) < 1000, "{call}");
    }
    for call in ["submit", "queue_wait_idle"] {
        assert_eq!(v[call], "ERROR_DEVICE_LOST", "{call}");
    }
    assert_eq!(v["create_fence"], "ERROR_OUT_OF_HOST_MEMORY");
    assert_eq!(v["destroyed"], "yes");
}

/// `airlock-server --listen` whose log goes to a file the test reads.
struct LoggedLauncher {
    child: std::process::Child,
    dir: std::path::PathBuf,
    socket: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl LoggedLauncher {
    fn start(name: &str) -> LoggedLauncher {
        let dir = std::env::temp_dir().join(format!("airlock-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (socket, log) = (dir.join("airlock.sock"), dir.join("server.log"));
        let _ = std::fs::remove_file(&socket);
        let child = std::process::Command::new(target_dir().join("airlock-server"))
            .arg("--listen")
            .arg(&socket)
            .env("AIRLOCK_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting airlock-server --listen");
        let t = std::time::Instant::now();
        while !socket.exists() {
            assert!(t.elapsed().as_secs() < 10, "no socket from the launcher");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        LoggedLauncher {
            child,
            dir,
            socket,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LoggedLauncher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn compute(launcher: &LoggedLauncher, out: &str) -> std::process::Command {
    let mut c = with_driver(target_dir().join("airlock-workload"), &airlock_manifest());
    c.args(["compute", "--out"])
        .arg(launcher.dir.join(out))
        .env("AIRLOCK_SOCKET", &launcher.socket);
    c
}

#[test]
fn corrupt_stream_drops_that_client_only() {
    let launcher = LoggedLauncher::start("corrupt");
    // A well-behaved client at work while another goes rogue, and one that comes after.
    let before = compute(&launcher, "before.bin").spawn().unwrap();
    let mut rogue = probe(&airlock_manifest(), &["corrupt-stream"]);
    rogue.env("AIRLOCK_SOCKET", &launcher.socket);
    let v = probe_ok(&run(rogue));
    assert_eq!(v["hung_up"], "true", "the rogue client's server kept it");
    assert!(ms(&v, "hung_up_ms") < 1000);
    assert_eq!(v["server_gone"], "true");
    let o = before.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(compute(&launcher, "after.bin"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(launcher.dir.join("before.bin")).unwrap(),
        std::fs::read(launcher.dir.join("after.bin")).unwrap()
    );
    let log = launcher.log();
    let server = &v["server"];
    assert!(
        log.lines()
            .any(|l| l.contains("request header") && l.contains("dropping the client")),
        "no log line for the dropped client (server {server}):\n{log}"
    );
}

#[test]
fn limits_refuse_the_call_not_the_client() {
    let run_limits = |memory: Option<&str>| {
        let mut c = probe(&airlock_manifest(), &["limits"]);
        c.env("AIRLOCK_MAX_OBJECTS", "300");
        match memory {
            Some(m) => c.env("AIRLOCK_MAX_DEVICE_MEMORY", m),
            None => c.env_remove("AIRLOCK_MAX_DEVICE_MEMORY"),
        };
        let o = run(c);
        (probe_ok(&o), stderr(&o))
    };
    let (v, log) = run_limits(Some("64M"));
    assert_eq!(
        v["heap"],
        (64u64 << 20).to_string(),
        "the heap shows the limit"
    );
    assert_eq!(v["alloc_1tib"], "ERROR_OUT_OF_DEVICE_MEMORY");
    assert_eq!(v["alloc_40m"], "SUCCESS");
    assert_eq!(v["alloc_40m_more"], "ERROR_OUT_OF_DEVICE_MEMORY");
    assert_eq!(
        v["alloc_40m_after_free"], "SUCCESS",
        "freed memory counts no more"
    );
    assert!(
        log.contains("device memory limit of 67108864 bytes"),
        "log: {log}"
    );
    // Instance, physical device, device, queue and the semaphores: 300 objects.
    let sems: usize = v["semaphores"].parse().unwrap();
    assert!((290..300).contains(&sems), "{sems} semaphores");
    assert_eq!(v["refused"], "ERROR_OUT_OF_HOST_MEMORY");
    assert_eq!(v["after_destroy"], "SUCCESS");
    assert!(log.contains("limit of 300 live objects"), "log: {log}");
    // The semaphores were posted while the server had room set aside for them, and calls
    // after: the limit refused the call, not a posted creation (which would fail the device).
    // Sets that fit their pool are not posted at the limit either: the call is refused.
    assert_eq!(v["sets_at_limit"], "ERROR_OUT_OF_HOST_MEMORY");
    assert_eq!(v["wait_after_refused_sets"], "SUCCESS");
    assert!(
        log.contains("vkAllocateDescriptorSets refused: VK_ERROR_OUT_OF_HOST_MEMORY"),
        "log: {log}"
    );
    assert!(!log.contains("failed on the host"), "log: {log}");

    // The default limit (a share of the machine's memory) refuses a 1 TiB allocation too.
    let (v, _) = run_limits(None);
    assert_eq!(v["alloc_1tib"], "ERROR_OUT_OF_DEVICE_MEMORY");
    assert_eq!(v["alloc_40m_more"], "SUCCESS");
}

#[test]
fn validated_server_refuses_invalid_usage_like_the_layer_does_natively() {
    // Natively the application puts the validation layer in front of lavapipe and refuses
    // what it reports; through Airlock the server does (AIRLOCK_VALIDATE=1), sandboxed.
    let native = run(probe(&native_manifest(), &["invalid-usage", "layer"]));
    let mut c = probe(&airlock_manifest(), &["invalid-usage"]);
    c.env("AIRLOCK_VALIDATE", "1");
    let airlock = run(c);
    let (n, a) = (values(&native), values(&airlock));
    for (who, o, v) in [("native", &native, &n), ("Airlock", &airlock, &a)] {
        assert!(o.status.success(), "{who}: {}", stdout(o) + &stderr(o));
        assert_eq!(
            v["view_outside_image"], "ERROR_VALIDATION_FAILED_EXT",
            "{who}"
        );
        assert_eq!(v["view_inside_image"], "SUCCESS", "{who}");
        assert_eq!(v["submit_dispatch_without_pipeline"], "SUCCESS", "{who}");
    }
    // The layer drops the bad vkCmdDispatch natively; the server cannot hand a void command's
    // refusal back, so it fails the submission of the command buffer instead, which was posted:
    // the device's next synchronisation reports it, as a lost device.
    assert_eq!(n["wait_idle"], "SUCCESS");
    assert_eq!(a["wait_idle"], "ERROR_DEVICE_LOST");
    let log = stderr(&airlock);
    assert!(
        log.contains("VUID-VkImageViewCreateInfo-subresourceRange-01478")
            && log.contains("vkCmdDispatch: refused by the validation layer"),
        "log: {log}"
    );
    // Valid usage, but more descriptors than any pipeline layout may use: lavapipe makes it,
    // Airlock refuses it with or without validation (the validation layer would spend 6 GiB).
    assert_eq!(n["huge_layout"], "SUCCESS");
    assert_eq!(a["huge_layout"], "ERROR_OUT_OF_HOST_MEMORY");
}

/// Fences, timeline semaphores and events answer as lavapipe does through every path a
/// program takes: created signalled or not, waits that time out, wait-any and wait-all, a
/// submission, resets (seen at once), 200 reuses of one fence, 48 fences at once, host and
/// device signals, a submission that waits for the host, events set by the host and by a
/// command buffer. Through Airlock these read the feedback region (`icd/src/queue/feedback.rs`).
#[test]
fn feedback_status_matches_native_through_every_path() {
    let native = probe_ok(&run(probe(&native_manifest(), &["feedback"])));
    let airlock = probe_ok(&run(probe(&airlock_manifest(), &["feedback"])));
    for (k, n) in &native {
        if k == "driver" {
            continue;
        }
        assert_eq!(
            airlock.get(k),
            Some(n),
            "{k}: native {n}, Airlock {:?}",
            airlock.get(k)
        );
    }
    assert_eq!(native.len(), airlock.len());
    for v in [&native, &airlock] {
        assert_eq!(v["fence_created_signalled"], "SUCCESS");
        assert_eq!(v["wait_all_1ms"], "TIMEOUT");
        assert_eq!(v["status_after_reset"], "NOT_READY");
        assert_eq!(v["cycles"], "[200, 200, 200]");
        assert_eq!(v["many_signalled"], "48");
        assert_eq!(v["counter_host_signalled"], "9");
        assert_eq!(v["swait_before_gate_1ms"], "TIMEOUT");
        assert_eq!(v["counter_after_gate"], "20");
        assert_eq!(v["counter_64bit_device"], ((1u64 << 41) + 5).to_string());
        assert_eq!(v["timeline_seen_after_a_later_fence"], "20");
        assert_eq!(v["event_device_set"], "EVENT_SET");
        assert_eq!(v["event_device_reset"], "EVENT_RESET");
        assert_eq!(v["destroyed"], "yes");
    }
}

/// Polling a signalled fence, a timeline semaphore and a set event, and waiting on the
/// signalled fence, sends the server nothing: 10 polls and 5000 cost the same messages.
#[test]
fn status_polls_send_nothing_to_the_server() {
    let dir = tempfile_dir();
    let mut messages = Vec::new();
    for n in ["10", "5000"] {
        let stats = dir.join(format!("stats-{n}.json"));
        let mut c = probe(&airlock_manifest(), &["status-polls", n]);
        c.env("AIRLOCK_STATS", &stats);
        let v = probe_ok(&run(c));
        assert_eq!(v["polls"], format!("[{n}, {n}, {n}, {n}]"));
        messages.push(stat(&stats, "messages"));
    }
    assert_eq!(
        messages[0], messages[1],
        "polls cost messages: {messages:?}"
    );
    let native = probe_ok(&run(probe(&native_manifest(), &["status-polls", "5000"])));
    assert_eq!(native["polls"], "[5000, 5000, 5000, 5000]");
}

/// Fences, semaphores and events are created without a round trip each: 10 or 300 of each
/// cost the same round trips (the room asked for under the object limit covers them), and
/// every one works as natively: signalled by a submission, set from the host.
#[test]
fn sync_objects_are_created_without_round_trips() {
    let dir = tempfile_dir();
    let mut trips = Vec::new();
    for n in [10usize, 300] {
        let stats = dir.join(format!("sync-objects-{n}.json"));
        let mut c = probe(&airlock_manifest(), &["sync-objects", &n.to_string()]);
        c.env("AIRLOCK_STATS", &stats);
        let v = probe_ok(&run(c));
        let native = probe_ok(&run(probe(
            &native_manifest(),
            &["sync-objects", &n.to_string()],
        )));
        for k in ["made", "signalled"] {
            assert_eq!(v[k], native[k], "{k} with {n}");
        }
        assert_eq!(v["made"], (3 * n).to_string());
        assert_eq!(v["signalled"], n.to_string());
        trips.push(stat(&stats, "round_trips"));
    }
    // The 290 more iterations make 870 more objects. One status query each may still ask the
    // server (an object's feedback slot is confirmed by the server a moment after it is
    // made); a round trip per creation would be 870 more.
    assert!(
        trips[1] - trips[0] <= 2 * 290,
        "creations cost round trips: {trips:?}"
    );
}

/// Counter `key` of the `AIRLOCK_STATS` file `path`.
fn stat(path: &std::path::Path, key: &str) -> i64 {
    let json = std::fs::read_to_string(path).expect("AIRLOCK_STATS written");
    json.split(&format!("\"{key}\": "))
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {json}"))
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("airlock-polls-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A client that tries to write the feedback region it was given (a writable mapping of its
/// descriptor, write(2), ftruncate, mprotect of its mapping, /proc/self/mem) is refused every
/// time, and its fences, semaphores and events then answer as natively.
#[test]
fn a_client_cannot_write_its_feedback_region() {
    let airlock = probe_ok(&run(probe(&airlock_manifest(), &["feedback-hostile"])));
    assert_eq!(airlock["region_fd"], "true");
    assert_eq!(airlock["region_mapped"], "true");
    for k in [
        "map_writable",
        "write_fd",
        "truncate_fd",
        "mprotect_writable",
        "proc_mem_write",
    ] {
        assert_eq!(airlock[k], "false", "{k} succeeded");
    }
    let native = probe_ok(&run(probe(&native_manifest(), &["feedback"])));
    for (k, n) in &native {
        if k != "driver" {
            assert_eq!(airlock.get(k), Some(n), "{k}");
        }
    }
}
