//! `airlock-probe <scenario>`: the ICD's process-level test helper (`icd/tests/process.rs`).
//! Each scenario runs in a process of its own, because a Vulkan driver's state (Airlock's server
//! connection) is per process. Prints `key=value` lines.
//!
//! - `enumerate`: instance, physical devices, their names and driver.
//! - `mdwe-enumerate`: the same after `prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)`.
//! - `kill-server`: enumerate, SIGKILL the server, then time the calls that follow.
//! - `null-input`: a required input pointer left NULL, then a valid call.
//! - `kill-during-wait`: a thread waits on a fence when the server is SIGKILLed; the wait and
//!   every later call must return, destroys too.
//! - `after-loss`: objects of every kind, then the server SIGKILLed (natively: nothing), then a
//!   call of every kind — queries, creations, queue retrieval, command buffers, submission,
//!   waits, every destroy — each printed as `<call>=<result>`; exits 0 when nothing crashed.
//! - `kill-mid-frame`: the server is SIGKILLed while a command buffer of a million commands is
//!   being recorded and shipped in batches.
//! - `corrupt-stream`: connects to `AIRLOCK_SOCKET` with the wire crate, shakes hands, then
//!   writes garbage into its command ring, and waits for its server to hang up.
//! - `limits`: allocations and creations beyond `AIRLOCK_MAX_DEVICE_MEMORY` and
//!   `AIRLOCK_MAX_OBJECTS` (which the test sets) fail alone.
//! - `foreign-fd`: opaque-fd imports of descriptors no driver exported (an empty memfd, a
//!   sealed memfd of the right size), then an allocation that must still work.
//! - `feedback`: fence, timeline-semaphore and event status through every path a program uses
//!   (signalled, unsignalled, reset, wait-any and wait-all, host and device signals, a wait
//!   before the signal), each printed as `<step>=<result>`.
//! - `feedback-hostile`: tries to write the feedback region it was given (a writable mapping,
//!   `mprotect`, `write(2)`, `/proc/self/mem`), then runs `feedback` and must get its answers.
//! - `status-polls <n>`: a signalled fence, a timeline semaphore and an event set from the host,
//!   each asked for its status `n` times (for `AIRLOCK_STATS`: the polls cost no message).
//! - `direct-create <libvulkan_airlock.so>`: `vkCreateInstance` through the ICD's own
//!   `vk_icdGetInstanceProcAddr`, without the loader.

use ash::vk;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scenario = args.get(1).map(String::as_str).unwrap_or("");
    let r = match scenario {
        "enumerate" => enumerate().map(|_| ()),
        "mdwe-enumerate" => mdwe().and_then(|_| enumerate().map(|_| ())),
        "kill-server" => kill_server(),
        "null-input" => null_input(),
        "make-and-hang" => make_and_hang(),
        "kill-during-wait" => kill_during_wait(),
        "kill-mid-frame" => kill_mid_frame(),
        "after-loss" => after_loss(),
        "corrupt-stream" => corrupt_stream(),
        "limits" => limits(),
        "invalid-usage" => invalid_usage(args.get(2).is_some_and(|a| a == "layer")),
        "foreign-fd" => foreign_fd(),
        "feedback" => feedback(),
        "feedback-hostile" => feedback_hostile().and_then(|()| feedback()),
        "status-polls" => status_polls(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0)),
        "sync-objects" => sync_objects(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0)),
        "direct-create" => direct_create(args.get(2).map(String::as_str).unwrap_or("")),
        _ => Err(format!("unknown scenario {scenario:?}")),
    };
    if let Err(e) = r {
        println!("error={e}");
        std::process::exit(1);
    }
}

fn mdwe() -> Result<(), String> {
    const PR_SET_MDWE: i32 = 65;
    const PR_MDWE_REFUSE_EXEC_GAIN: u64 = 1;
    // SAFETY: a prctl with plain integer arguments.
    let r = unsafe { libc::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0u64, 0u64, 0u64) };
    if r != 0 {
        return Err(format!("PR_SET_MDWE: {}", std::io::Error::last_os_error()));
    }
    const PR_GET_MDWE: i32 = 66;
    // SAFETY: as above.
    let flags = unsafe { libc::prctl(PR_GET_MDWE, 0u64, 0u64, 0u64, 0u64) };
    println!("mdwe={flags}");
    Ok(())
}

fn enumerate() -> Result<(ash::Entry, ash::Instance, Vec<vk::PhysicalDevice>), String> {
    let entry = unsafe { ash::Entry::load() }.map_err(|e| e.to_string())?;
    let app = vk::ApplicationInfo::default()
        .application_name(c"airlock-probe")
        .api_version(vk::API_VERSION_1_3);
    let instance = unsafe {
        entry.create_instance(
            &vk::InstanceCreateInfo::default().application_info(&app),
            None,
        )
    }
    .map_err(|e| format!("vkCreateInstance: {e:?}"))?;
    let devices = unsafe { instance.enumerate_physical_devices() }
        .map_err(|e| format!("vkEnumeratePhysicalDevices: {e:?}"))?;
    println!("devices={}", devices.len());
    for pd in &devices {
        let mut driver = vk::PhysicalDeviceDriverProperties::default();
        let mut props = vk::PhysicalDeviceProperties2::default().push_next(&mut driver);
        unsafe { instance.get_physical_device_properties2(*pd, &mut props) };
        println!(
            "device={}",
            props
                .properties
                .device_name_as_c_str()
                .unwrap_or_default()
                .to_string_lossy()
        );
        println!(
            "driver={}",
            driver
                .driver_name_as_c_str()
                .unwrap_or_default()
                .to_string_lossy()
        );
    }
    Ok((entry, instance, devices))
}

/// Children of this process named airlock-server.
fn server_pids() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).unwrap_or("");
        if ppid == me && head.ends_with("airlock-server") {
            if let Ok(pid) = e.file_name().to_string_lossy().parse() {
                pids.push(pid);
            }
        }
    }
    pids
}

fn kill_server() -> Result<(), String> {
    let (_entry, instance, devices) = enumerate()?;
    let pids = server_pids();
    println!("servers={}", pids.len());
    for pid in &pids {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    let pd = *devices.first().ok_or("no device")?;
    for (label, tiling) in [
        ("first", vk::ImageTiling::OPTIMAL),
        ("second", vk::ImageTiling::LINEAR),
    ] {
        let t = Instant::now();
        let r = unsafe {
            instance.get_physical_device_image_format_properties(
                pd,
                vk::Format::R8G8B8A8_UNORM,
                vk::ImageType::TYPE_2D,
                tiling,
                vk::ImageUsageFlags::SAMPLED,
                vk::ImageCreateFlags::empty(),
            )
        };
        let r = r
            .err()
            .map(|e| format!("{e:?}"))
            .unwrap_or("SUCCESS".into());
        println!("{label}_call={r:?}");
        println!("{label}_call_ms={}", t.elapsed().as_millis());
    }
    // A void call and the destruction must return too, without a crash.
    let _ = unsafe { instance.get_physical_device_properties(pd) };
    unsafe { instance.destroy_instance(None) };
    println!("destroyed=yes");
    Ok(())
}

/// Creates a device and objects of several kinds, says where its server is, and waits to be
/// killed: the server must then free everything and exit.
fn make_and_hang() -> Result<(), String> {
    let (_entry, instance, devices) = enumerate()?;
    let pd = *devices.first().ok_or("no device")?;
    let prio = [1.0];
    let queue = vk::DeviceQueueCreateInfo::default()
        .queue_family_index(0)
        .queue_priorities(&prio);
    let info = vk::DeviceCreateInfo::default().queue_create_infos(std::slice::from_ref(&queue));
    let e = |what: &'static str| move |r: vk::Result| format!("{what}: {r:?}");
    unsafe {
        let device = instance
            .create_device(pd, &info, None)
            .map_err(e("vkCreateDevice"))?;
        let buffer = device
            .create_buffer(
                &vk::BufferCreateInfo::default()
                    .size(1 << 20)
                    .usage(vk::BufferUsageFlags::STORAGE_BUFFER),
                None,
            )
            .map_err(e("vkCreateBuffer"))?;
        let memory = device
            .allocate_memory(
                &vk::MemoryAllocateInfo::default()
                    .allocation_size(1 << 20)
                    .memory_type_index(0),
                None,
            )
            .map_err(e("vkAllocateMemory"))?;
        device
            .bind_buffer_memory(buffer, memory, 0)
            .map_err(e("vkBindBufferMemory"))?;
        device
            .map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
            .map_err(e("vkMapMemory"))?;
        let pool = device
            .create_command_pool(&vk::CommandPoolCreateInfo::default(), None)
            .map_err(e("vkCreateCommandPool"))?;
        device
            .allocate_command_buffers(
                &vk::CommandBufferAllocateInfo::default()
                    .command_pool(pool)
                    .command_buffer_count(2),
            )
            .map_err(e("vkAllocateCommandBuffers"))?;
        device
            .create_fence(&vk::FenceCreateInfo::default(), None)
            .map_err(e("vkCreateFence"))?;
        device
            .create_semaphore(&vk::SemaphoreCreateInfo::default(), None)
            .map_err(e("vkCreateSemaphore"))?;
    }
    println!("server={}", server_pids().first().copied().unwrap_or(0));
    println!("ready=yes");
    use std::io::Write;
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

fn null_input() -> Result<(), String> {
    let (_entry, instance, devices) = enumerate()?;
    let pd = *devices.first().ok_or("no device")?;
    let f = instance
        .fp_v1_1()
        .get_physical_device_image_format_properties2;
    let mut props = vk::ImageFormatProperties2::default();
    // SAFETY: deliberately invalid (NULL pImageFormatInfo); the driver must refuse, not crash.
    let r = unsafe { f(pd, std::ptr::null(), &mut props) };
    println!("null_call={r:?}");
    let info = vk::PhysicalDeviceImageFormatInfo2::default()
        .format(vk::Format::R8G8B8A8_UNORM)
        .ty(vk::ImageType::TYPE_2D)
        .tiling(vk::ImageTiling::OPTIMAL)
        .usage(vk::ImageUsageFlags::SAMPLED);
    let r = unsafe { f(pd, &info, &mut props) };
    println!("valid_call={r:?}");
    println!(
        "max_extent_width={}",
        props.image_format_properties.max_extent.width
    );
    let alive = server_pids()
        .iter()
        .filter(|p| unsafe { libc::kill(**p, 0) } == 0)
        .count();
    println!("servers_alive={alive}");
    unsafe { instance.destroy_instance(None) };
    Ok(())
}

fn direct_create(lib: &str) -> Result<(), String> {
    let lib = unsafe { libloading::Library::new(lib) }.map_err(|e| e.to_string())?;
    let gipa: libloading::Symbol<vk::PFN_vkGetInstanceProcAddr> =
        unsafe { lib.get(b"vk_icdGetInstanceProcAddr\0") }.map_err(|e| e.to_string())?;
    let f = unsafe { gipa(vk::Instance::null(), c"vkCreateInstance".as_ptr()) }
        .ok_or("no vkCreateInstance")?;
    let create: vk::PFN_vkCreateInstance = unsafe { std::mem::transmute(f) };
    let info = vk::InstanceCreateInfo::default();
    let mut instance = vk::Instance::null();
    let t = Instant::now();
    let r = unsafe { create(&info, std::ptr::null(), &mut instance) };
    println!("create={r:?}");
    println!("create_ms={}", t.elapsed().as_millis());
    Ok(())
}

fn make_device(
    instance: &ash::Instance,
    pd: vk::PhysicalDevice,
) -> Result<(ash::Device, vk::Queue), String> {
    let prio = [1.0];
    let queue = vk::DeviceQueueCreateInfo::default()
        .queue_family_index(0)
        .queue_priorities(&prio);
    let mut v12 = vk::PhysicalDeviceVulkan12Features::default().timeline_semaphore(true);
    let info = vk::DeviceCreateInfo::default()
        .queue_create_infos(std::slice::from_ref(&queue))
        .push_next(&mut v12);
    let device = unsafe { instance.create_device(pd, &info, None) }
        .map_err(|r| format!("vkCreateDevice: {r:?}"))?;
    let queue = unsafe { device.get_device_queue(0, 0) };
    Ok((device, queue))
}

fn kill_servers() {
    for pid in server_pids() {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn result<T>(r: Result<T, vk::Result>) -> String {
    match r {
        Ok(_) => "SUCCESS".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// Prints `<label>=<result>` and `<label>_ms=<milliseconds>` for one call.
fn timed<T>(label: &str, f: impl FnOnce() -> Result<T, vk::Result>) {
    let t = Instant::now();
    let r = result(f());
    println!("{label}={r}");
    println!("{label}_ms={}", t.elapsed().as_millis());
}

fn kill_during_wait() -> Result<(), String> {
    let (_entry, instance, devices) = enumerate()?;
    let pd = *devices.first().ok_or("no device")?;
    let (device, queue) = make_device(&instance, pd)?;
    let fence = unsafe { device.create_fence(&vk::FenceCreateInfo::default(), None) }
        .map_err(|r| format!("vkCreateFence: {r:?}"))?;
    // Never submitted: only the server's death can end this wait before its 30 s.
    let killed = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
    let waiter = {
        let (device, killed) = (device.clone(), killed.clone());
        std::thread::spawn(move || {
            let r = unsafe { device.wait_for_fences(&[fence], true, 30_000_000_000) };
            let after_kill = killed.get().map(|t| t.elapsed().as_millis());
            (result(r), after_kill)
        })
    };
    // A timeline semaphore never signalled, waited for by another thread.
    let mut t = vk::SemaphoreTypeCreateInfo::default().semaphore_type(vk::SemaphoreType::TIMELINE);
    let sem = unsafe {
        device.create_semaphore(&vk::SemaphoreCreateInfo::default().push_next(&mut t), None)
    }
    .map_err(|r| format!("vkCreateSemaphore: {r:?}"))?;
    let sem_waiter = {
        let (device, killed) = (device.clone(), killed.clone());
        std::thread::spawn(move || {
            let sems = [sem];
            let info = vk::SemaphoreWaitInfo::default()
                .semaphores(&sems)
                .values(&[1]);
            let r = unsafe { device.wait_semaphores(&info, 30_000_000_000) };
            let after_kill = killed.get().map(|t| t.elapsed().as_millis());
            (result(r), after_kill)
        })
    };
    // Long enough for the waits to start (on the feedback region, or in a server thread).
    std::thread::sleep(std::time::Duration::from_millis(300));
    println!(
        "waiting_before_kill={}",
        !waiter.is_finished() && !sem_waiter.is_finished()
    );
    println!("servers={}", server_pids().len());
    kill_servers();
    let _ = killed.set(Instant::now());
    let (r, ms) = waiter.join().map_err(|_| "the waiting thread panicked")?;
    println!("wait={r}");
    println!("wait_ms={}", ms.map_or(-1, |m| m as i64));
    let (r, ms) = sem_waiter
        .join()
        .map_err(|_| "the waiting thread panicked")?;
    println!("semaphore_wait={r}");
    println!("semaphore_wait_ms={}", ms.map_or(-1, |m| m as i64));
    timed("fence_status", || unsafe { device.get_fence_status(fence) });
    timed("wait_again", || unsafe {
        device.wait_for_fences(&[fence], true, 30_000_000_000)
    });
    timed("submit", || unsafe {
        device.queue_submit(queue, &[vk::SubmitInfo::default()], vk::Fence::null())
    });
    timed("device_wait_idle", || unsafe { device.device_wait_idle() });
    let t = Instant::now();
    unsafe {
        device.destroy_fence(fence, None);
        device.destroy_semaphore(sem, None);
        device.destroy_device(None);
        instance.destroy_instance(None);
    }
    println!("destroyed=yes");
    println!("destroy_ms={}", t.elapsed().as_millis());
    Ok(())
}

fn kill_mid_frame() -> Result<(), String> {
    let (_entry, instance, devices) = enumerate()?;
    let pd = *devices.first().ok_or("no device")?;
    let (device, queue) = make_device(&instance, pd)?;
    let e = |what: &'static str| move |r: vk::Result| format!("{what}: {r:?}");
    let cb = unsafe {
        let pool = device
            .create_command_pool(&vk::CommandPoolCreateInfo::default(), None)
            .map_err(e("vkCreateCommandPool"))?;
        let cb = device
            .allocate_command_buffers(
                &vk::CommandBufferAllocateInfo::default()
                    .command_pool(pool)
                    .command_buffer_count(1),
            )
            .map_err(e("vkAllocateCommandBuffers"))?[0];
        device
            .begin_command_buffer(cb, &vk::CommandBufferBeginInfo::default())
            .map_err(e("vkBeginCommandBuffer"))?;
        cb
    };
    let viewport = [vk::Viewport {
        width: 64.0,
        height: 64.0,
        max_depth: 1.0,
        ..Default::default()
    }];
    let scissor = [vk::Rect2D {
        extent: vk::Extent2D {
            width: 64,
            height: 64,
        },
        ..Default::default()
    }];
    // State setters only: valid outside a render pass, so the server replays every batch
    // until it dies. Batches ship every 256 KiB (about 4,000 commands), so dozens are in
    // flight or queued when it does.
    const COMMANDS: usize = 250_000;
    const KILL_AT: usize = 100_000;
    let t = Instant::now();
    let mut after_kill = None;
    for i in 0..COMMANDS {
        if i == KILL_AT {
            println!("servers={}", server_pids().len());
            kill_servers();
            after_kill = Some(Instant::now());
        }
        unsafe {
            device.cmd_set_viewport(cb, 0, &viewport);
            device.cmd_set_scissor(cb, 0, &scissor);
        }
    }
    println!("recorded={}", 2 * COMMANDS);
    println!("record_ms={}", t.elapsed().as_millis());
    println!(
        "record_after_kill_ms={}",
        after_kill.map_or(0, |t| t.elapsed().as_millis())
    );
    timed("end", || unsafe { device.end_command_buffer(cb) });
    let cbs = [cb];
    timed("submit", || unsafe {
        device.queue_submit(
            queue,
            &[vk::SubmitInfo::default().command_buffers(&cbs)],
            vk::Fence::null(),
        )
    });
    timed("queue_wait_idle", || unsafe {
        device.queue_wait_idle(queue)
    });
    timed("create_fence", || unsafe {
        device.create_fence(&vk::FenceCreateInfo::default(), None)
    });
    unsafe {
        device.destroy_device(None);
        instance.destroy_instance(None);
    }
    println!("destroyed=yes");
    Ok(())
}

/// Plays a client that goes rogue after a valid handshake: garbage where a request header
/// belongs. Its server must drop it (and only it).
fn corrupt_stream() -> Result<(), String> {
    use wire::channel::{Channel, ChannelLayout};
    use wire::control::{self, Hello};
    let path = std::env::var_os("AIRLOCK_SOCKET").ok_or("AIRLOCK_SOCKET is not set")?;
    let sock = control::connect(std::path::Path::new(&path)).map_err(|e| e.to_string())?;
    let layout = ChannelLayout::default();
    let channel = Channel::create(layout).map_err(|e| e.to_string())?;
    let hello = Hello::new(layout);
    use std::os::fd::AsFd;
    let welcome = control::client_handshake(
        sock.as_fd(),
        hello,
        channel.fd(),
        Some(std::time::Duration::from_secs(10)),
    )
    .map_err(|e| format!("handshake: {e}"))?;
    println!("server={}", welcome.server_pid);
    // A header announcing a message larger than any may be, then noise.
    let mut garbage = vec![0xFFu8; 16];
    garbage.extend((0..240u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let live = control::SocketLiveness(sock.as_fd());
    channel
        .commands
        .write(&[&garbage], &live)
        .map_err(|e| format!("writing the garbage: {e}"))?;
    let t = Instant::now();
    // The server hangs up: the socket reads end-of-file (or fails) instead of timing out.
    let r = control::recv(sock.as_fd(), Some(std::time::Duration::from_secs(10)));
    println!("hung_up={}", r.is_err());
    println!("hung_up_ms={}", t.elapsed().as_millis());
    // Its process is gone too.
    let gone = (0..500).any(|_| {
        // SAFETY: a probe signal; the pid names the launcher's child serving us.
        let alive = unsafe { libc::kill(welcome.server_pid as i32, 0) } == 0
            && !std::fs::read_to_string(format!("/proc/{}/status", welcome.server_pid))
                .is_ok_and(|s| s.contains("zombie"));
        if alive {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        !alive
    });
    println!("server_gone={gone}");
    Ok(())
}

fn limits() -> Result<(), String> {
    let (_entry, instance, devices) = enumerate()?;
    let pd = *devices.first().ok_or("no device")?;
    // Devices that come and go, each making a fence (Airlock posts it, with room the server
    // sets aside under its object limit for the device): what they did not spend must not
    // stay set aside once they are gone.
    for _ in 0..4 {
        let (d, _) = make_device(&instance, pd)?;
        let fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(|r| format!("vkCreateFence: {r:?}"))?;
        unsafe {
            d.destroy_fence(fence, None);
            d.destroy_device(None);
        }
    }
    let (device, _queue) = make_device(&instance, pd)?;
    let alloc = |size: u64| unsafe {
        device.allocate_memory(
            &vk::MemoryAllocateInfo::default()
                .allocation_size(size)
                .memory_type_index(0),
            None,
        )
    };
    let heap = unsafe { instance.get_physical_device_memory_properties(pd) }.memory_heaps[0].size;
    println!("heap={heap}");
    timed("alloc_1tib", || alloc(1 << 40));
    let a = alloc(40 << 20).map_err(|r| format!("40 MiB: {r:?}"))?;
    println!("alloc_40m={}", result(Ok::<_, vk::Result>(())));
    println!("alloc_40m_more={}", result(alloc(40 << 20)));
    unsafe { device.free_memory(a, None) };
    let b = alloc(40 << 20);
    println!("alloc_40m_after_free={}", result(b));
    if let Ok(b) = b {
        unsafe { device.free_memory(b, None) };
    }
    // A descriptor pool whose sets the ICD posts (they fit it), made before the object limit is
    // reached.
    let binding = vk::DescriptorSetLayoutBinding::default()
        .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
        .descriptor_count(1)
        .stage_flags(vk::ShaderStageFlags::COMPUTE);
    let layout = unsafe {
        device.create_descriptor_set_layout(
            &vk::DescriptorSetLayoutCreateInfo::default().bindings(std::slice::from_ref(&binding)),
            None,
        )
    }
    .map_err(|r| format!("set layout: {r:?}"))?;
    let size = vk::DescriptorPoolSize {
        ty: vk::DescriptorType::STORAGE_BUFFER,
        descriptor_count: 8,
    };
    let pool = unsafe {
        device.create_descriptor_pool(
            &vk::DescriptorPoolCreateInfo::default()
                .max_sets(8)
                .pool_sizes(std::slice::from_ref(&size)),
            None,
        )
    }
    .map_err(|r| format!("descriptor pool: {r:?}"))?;
    // Objects until refused.
    let mut sems = Vec::new();
    let refused = loop {
        match unsafe { device.create_semaphore(&vk::SemaphoreCreateInfo::default(), None) } {
            Ok(s) => sems.push(s),
            Err(r) => break format!("{r:?}"),
        }
        if sems.len() > 100_000 {
            break "never".into();
        }
    };
    println!("semaphores={}", sems.len());
    println!("refused={refused}");
    unsafe { device.destroy_semaphore(sems.pop().unwrap(), None) };
    println!(
        "after_destroy={}",
        result(unsafe { device.create_semaphore(&vk::SemaphoreCreateInfo::default(), None) })
    );
    // At the limit again: sets that fit their pool, which the ICD posts while the server has
    // room set aside for them, are refused by the call itself now that there is none.
    let layouts = [layout; 4];
    let sets = unsafe {
        device.allocate_descriptor_sets(
            &vk::DescriptorSetAllocateInfo::default()
                .descriptor_pool(pool)
                .set_layouts(&layouts),
        )
    };
    println!("sets_at_limit={}", result(sets));
    println!(
        "wait_after_refused_sets={}",
        result(unsafe { device.device_wait_idle() })
    );
    unsafe {
        device.destroy_device(None);
        instance.destroy_instance(None);
    }
    Ok(())
}

unsafe extern "system" fn refuse_errors(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    _types: vk::DebugUtilsMessageTypeFlagsEXT,
    _data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
    _user: *mut std::ffi::c_void,
) -> vk::Bool32 {
    severity.contains(vk::DebugUtilsMessageSeverityFlagsEXT::ERROR) as vk::Bool32
}

/// Calls that break Vulkan's valid usage, which lavapipe would crash on. `layer`: the
/// application enables the validation layer itself and refuses what it reports (the native
/// run); otherwise no layer (the Airlock run, whose server has it under AIRLOCK_VALIDATE=1).
fn invalid_usage(layer: bool) -> Result<(), String> {
    let entry = unsafe { ash::Entry::load() }.map_err(|e| e.to_string())?;
    let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_3);
    let layers = [c"VK_LAYER_KHRONOS_validation".as_ptr()];
    let exts = [ash::ext::debug_utils::NAME.as_ptr()];
    let mut messenger = vk::DebugUtilsMessengerCreateInfoEXT::default()
        .message_severity(vk::DebugUtilsMessageSeverityFlagsEXT::ERROR)
        .message_type(vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION)
        .pfn_user_callback(Some(refuse_errors));
    let mut info = vk::InstanceCreateInfo::default().application_info(&app);
    if layer {
        info = info
            .enabled_layer_names(&layers)
            .enabled_extension_names(&exts)
            .push_next(&mut messenger);
    }
    let instance = unsafe { entry.create_instance(&info, None) }
        .map_err(|e| format!("vkCreateInstance: {e:?}"))?;
    let utils = ash::ext::debug_utils::Instance::new(&entry, &instance);
    let gate = if layer {
        let m = unsafe { utils.create_debug_utils_messenger(&messenger, None) }
            .map_err(|e| format!("messenger: {e:?}"))?;
        Some(m)
    } else {
        None
    };
    let pd = unsafe { instance.enumerate_physical_devices() }.map_err(|e| format!("{e:?}"))?[0];
    let (device, queue) = make_device(&instance, pd)?;
    let image = unsafe {
        device.create_image(
            &vk::ImageCreateInfo::default()
                .image_type(vk::ImageType::TYPE_2D)
                .format(vk::Format::R8G8B8A8_UNORM)
                .extent(vk::Extent3D {
                    width: 16,
                    height: 16,
                    depth: 1,
                })
                .mip_levels(1)
                .array_layers(1)
                .samples(vk::SampleCountFlags::TYPE_1)
                .usage(vk::ImageUsageFlags::SAMPLED),
            None,
        )
    }
    .map_err(|e| format!("vkCreateImage: {e:?}"))?;
    let req = unsafe { device.get_image_memory_requirements(image) };
    let memory = unsafe {
        device.allocate_memory(
            &vk::MemoryAllocateInfo::default()
                .allocation_size(req.size)
                .memory_type_index(req.memory_type_bits.trailing_zeros()),
            None,
        )
    }
    .map_err(|e| format!("vkAllocateMemory: {e:?}"))?;
    unsafe { device.bind_image_memory(image, memory, 0) }.map_err(|e| format!("bind: {e:?}"))?;
    let view = |base_mip: u32| unsafe {
        device.create_image_view(
            &vk::ImageViewCreateInfo::default()
                .image(image)
                .view_type(vk::ImageViewType::TYPE_2D)
                .format(vk::Format::R8G8B8A8_UNORM)
                .subresource_range(vk::ImageSubresourceRange {
                    aspect_mask: vk::ImageAspectFlags::COLOR,
                    base_mip_level: base_mip,
                    level_count: 1,
                    base_array_layer: 0,
                    layer_count: 1,
                }),
            None,
        )
    };
    // Mip 5 of a one-level image: lavapipe writes past its view object.
    println!("view_outside_image={}", result(view(5)));
    let good = view(0);
    println!("view_inside_image={}", result(good));
    // A dispatch with no pipeline bound, recorded and submitted.
    let pool = unsafe { device.create_command_pool(&vk::CommandPoolCreateInfo::default(), None) }
        .map_err(|e| format!("pool: {e:?}"))?;
    let cmd = unsafe {
        device.allocate_command_buffers(
            &vk::CommandBufferAllocateInfo::default()
                .command_pool(pool)
                .command_buffer_count(1),
        )
    }
    .map_err(|e| format!("command buffer: {e:?}"))?[0];
    unsafe {
        device
            .begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default())
            .map_err(|e| format!("begin: {e:?}"))?;
        device.cmd_dispatch(cmd, 1, 1, 1);
        device
            .end_command_buffer(cmd)
            .map_err(|e| format!("end: {e:?}"))?;
    }
    let submit = unsafe {
        device.queue_submit(
            queue,
            &[vk::SubmitInfo::default().command_buffers(std::slice::from_ref(&cmd))],
            vk::Fence::null(),
        )
    };
    println!("submit_dispatch_without_pipeline={}", result(submit));
    println!(
        "wait_idle={}",
        result(unsafe { device.queue_wait_idle(queue) })
    );
    // Valid, but far more descriptors than any pipeline layout may use.
    let binding = vk::DescriptorSetLayoutBinding::default()
        .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
        .descriptor_count(150_000_000)
        .stage_flags(vk::ShaderStageFlags::COMPUTE);
    let huge = unsafe {
        device.create_descriptor_set_layout(
            &vk::DescriptorSetLayoutCreateInfo::default().bindings(std::slice::from_ref(&binding)),
            None,
        )
    };
    println!("huge_layout={}", result(huge));
    unsafe {
        if let Ok(l) = huge {
            device.destroy_descriptor_set_layout(l, None);
        }
        device.destroy_command_pool(pool, None);
        if let Ok(v) = good {
            device.destroy_image_view(v, None);
        }
        device.destroy_image(image, None);
        device.free_memory(memory, None);
        device.destroy_device(None);
        if let Some(m) = gate {
            utils.destroy_debug_utils_messenger(m, None);
        }
        instance.destroy_instance(None);
    }
    Ok(())
}

fn foreign_fd() -> Result<(), String> {
    use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
    use std::os::fd::IntoRawFd;
    let (_entry, instance, pds) = enumerate()?;
    let prio = [1.0];
    let queue = vk::DeviceQueueCreateInfo::default()
        .queue_family_index(0)
        .queue_priorities(&prio);
    let exts = [ash::khr::external_memory_fd::NAME.as_ptr()];
    let info = vk::DeviceCreateInfo::default()
        .queue_create_infos(std::slice::from_ref(&queue))
        .enabled_extension_names(&exts);
    let device = unsafe { instance.create_device(pds[0], &info, None) }
        .map_err(|r| format!("vkCreateDevice: {r:?}"))?;
    const SIZE: u64 = 64 << 10;
    let allocate = |fd: Option<i32>| {
        let mut import = vk::ImportMemoryFdInfoKHR::default()
            .handle_type(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD)
            .fd(fd.unwrap_or(-1));
        let mut info = vk::MemoryAllocateInfo::default()
            .allocation_size(SIZE)
            .memory_type_index(0);
        if fd.is_some() {
            info = info.push_next(&mut import);
        }
        let r = unsafe { device.allocate_memory(&info, None) };
        if let Ok(m) = r {
            unsafe { device.free_memory(m, None) };
        }
        result(r)
    };
    let memfd = |len: u64| -> Result<std::os::fd::OwnedFd, String> {
        let fd = memfd_create("probe", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(|e| e.to_string())?;
        ftruncate(&fd, len).map_err(|e| e.to_string())?;
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).map_err(|e| e.to_string())?;
        Ok(fd)
    };
    // Whether a failed import closes the descriptor differs between drivers (lavapipe closes
    // some): the probe leaves them open, never closes them itself, and exits soon.
    let empty = memfd(0)?.into_raw_fd();
    println!("import_empty_memfd={}", allocate(Some(empty)));
    let sized = memfd(SIZE)?.into_raw_fd();
    println!("import_foreign_memfd={}", allocate(Some(sized)));
    println!("allocate_after={}", allocate(None));
    unsafe { device.destroy_device(None) };
    unsafe { instance.destroy_instance(None) };
    Ok(())
}

/// `after-loss`: see the top of this file. Every call after the kill prints its result and how
/// long it took; the test compares them with what Vulkan allows each command after a loss.
fn after_loss() -> Result<(), String> {
    let (_entry, instance, devices) = enumerate()?;
    let pd = *devices.first().ok_or("no device")?;
    let (device, queue) = make_device(&instance, pd)?;
    let e = |what: &'static str| move |r: vk::Result| format!("{what}: {r:?}");
    let host_visible = unsafe { instance.get_physical_device_memory_properties(pd) }
        .memory_types_as_slice()
        .iter()
        .position(|t| {
            t.property_flags
                .contains(vk::MemoryPropertyFlags::HOST_VISIBLE)
        })
        .ok_or("no host-visible memory")? as u32;
    let buffer_info = vk::BufferCreateInfo::default()
        .size(4096)
        .usage(vk::BufferUsageFlags::TRANSFER_DST);
    let memory_info = vk::MemoryAllocateInfo::default()
        .allocation_size(4096)
        .memory_type_index(host_visible);
    let mut timeline_type = vk::SemaphoreTypeCreateInfo::default()
        .semaphore_type(vk::SemaphoreType::TIMELINE)
        .initial_value(1);
    let pool_sizes = [vk::DescriptorPoolSize::default()
        .ty(vk::DescriptorType::STORAGE_BUFFER)
        .descriptor_count(1)];
    let descriptor_pool_info = vk::DescriptorPoolCreateInfo::default()
        .max_sets(1)
        .pool_sizes(&pool_sizes);
    let (buffer, memory, unmapped, fence, timeline, event, query_pool, pool, cb) = unsafe {
        let buffer = device
            .create_buffer(&buffer_info, None)
            .map_err(e("vkCreateBuffer"))?;
        let memory = device
            .allocate_memory(&memory_info, None)
            .map_err(e("vkAllocateMemory"))?;
        device
            .bind_buffer_memory(buffer, memory, 0)
            .map_err(e("vkBindBufferMemory"))?;
        device
            .map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
            .map_err(e("vkMapMemory"))?;
        let unmapped = device
            .allocate_memory(&memory_info, None)
            .map_err(e("vkAllocateMemory"))?;
        let fence = device
            .create_fence(&vk::FenceCreateInfo::default(), None)
            .map_err(e("vkCreateFence"))?;
        let timeline = device
            .create_semaphore(
                &vk::SemaphoreCreateInfo::default().push_next(&mut timeline_type),
                None,
            )
            .map_err(e("vkCreateSemaphore"))?;
        let event = device
            .create_event(&vk::EventCreateInfo::default(), None)
            .map_err(e("vkCreateEvent"))?;
        let query_pool = device
            .create_query_pool(
                &vk::QueryPoolCreateInfo::default()
                    .query_type(vk::QueryType::OCCLUSION)
                    .query_count(1),
                None,
            )
            .map_err(e("vkCreateQueryPool"))?;
        let pool = device
            .create_command_pool(
                &vk::CommandPoolCreateInfo::default()
                    .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER),
                None,
            )
            .map_err(e("vkCreateCommandPool"))?;
        let cb = device
            .allocate_command_buffers(
                &vk::CommandBufferAllocateInfo::default()
                    .command_pool(pool)
                    .command_buffer_count(1),
            )
            .map_err(e("vkAllocateCommandBuffers"))?[0];
        (
            buffer, memory, unmapped, fence, timeline, event, query_pool, pool, cb,
        )
    };
    let killed = server_pids();
    println!("servers_killed={}", killed.len());
    kill_servers();
    // Natively there is nothing to kill; through Airlock the first call below finds it gone.
    let show = |label: &str, t: Instant, r: String| {
        println!("{label}={r}");
        println!("{label}_ms={}", t.elapsed().as_millis());
    };
    macro_rules! call {
        ($label:literal, $e:expr) => {{
            let t = Instant::now();
            let r = unsafe { $e };
            show($label, t, result(r.as_ref().map(|_| ()).map_err(|e| *e)));
            r.ok()
        }};
    }
    unsafe {
        // Queries.
        let _ = instance.get_physical_device_properties(pd);
        let _ = instance.get_physical_device_format_properties(pd, vk::Format::R8G8B8A8_UNORM);
        let _ = device.get_buffer_memory_requirements(buffer);
    }
    call!(
        "image_format_properties",
        instance.get_physical_device_image_format_properties(
            pd,
            vk::Format::R8G8B8A8_UNORM,
            vk::ImageType::TYPE_2D,
            vk::ImageTiling::OPTIMAL,
            vk::ImageUsageFlags::SAMPLED,
            vk::ImageCreateFlags::empty(),
        )
    );
    call!(
        "enumerate_physical_devices",
        instance.enumerate_physical_devices()
    );
    let t = Instant::now();
    let r = unsafe { (device.fp_v1_0().get_fence_status)(device.handle(), fence) };
    show("fence_status", t, format!("{r:?}"));
    let t = Instant::now();
    let r = unsafe { (device.fp_v1_0().get_event_status)(device.handle(), event) };
    show("event_status", t, format!("{r:?}"));
    let mut samples = [0u32; 1];
    call!(
        "query_pool_results",
        device.get_query_pool_results(query_pool, 0, &mut samples, vk::QueryResultFlags::empty())
    );

    // Creation: non-dispatchable objects, then a device.
    let new_buffer = call!("create_buffer", device.create_buffer(&buffer_info, None));
    let new_memory = call!(
        "allocate_memory",
        device.allocate_memory(&memory_info, None)
    );
    let new_fence = call!(
        "create_fence",
        device.create_fence(&vk::FenceCreateInfo::default(), None)
    );
    let new_semaphore = call!(
        "create_semaphore",
        device.create_semaphore(&vk::SemaphoreCreateInfo::default(), None)
    );
    let new_event = call!(
        "create_event",
        device.create_event(&vk::EventCreateInfo::default(), None)
    );
    let new_sampler = call!(
        "create_sampler",
        device.create_sampler(&vk::SamplerCreateInfo::default(), None)
    );
    let new_descriptor_pool = call!(
        "create_descriptor_pool",
        device.create_descriptor_pool(&descriptor_pool_info, None)
    );
    let new_pool = call!(
        "create_command_pool",
        device.create_command_pool(&vk::CommandPoolCreateInfo::default(), None)
    );
    let prio = [1.0];
    let queue_info = [vk::DeviceQueueCreateInfo::default()
        .queue_family_index(0)
        .queue_priorities(&prio)];
    let new_device = call!(
        "create_device",
        instance.create_device(
            pd,
            &vk::DeviceCreateInfo::default().queue_create_infos(&queue_info),
            None
        )
    );

    // Queues: the loader writes its dispatch pointer into what these return.
    let again = unsafe { device.get_device_queue(0, 0) };
    let info2 = vk::DeviceQueueInfo2::default()
        .queue_family_index(0)
        .queue_index(0);
    let again2 = unsafe { device.get_device_queue2(&info2) };
    println!("queue_nonnull={}", again != vk::Queue::null());
    println!("queue_same={}", again == queue && again2 == queue);
    let new_device_queue = new_device
        .as_ref()
        .map(|d| unsafe { d.get_device_queue(0, 0) });
    println!(
        "new_device_queue_nonnull={}",
        new_device_queue.is_none_or(|q| q != vk::Queue::null())
    );

    // Command buffers: a new one, and recording into the old one.
    let new_cbs = call!(
        "allocate_command_buffers",
        device.allocate_command_buffers(
            &vk::CommandBufferAllocateInfo::default()
                .command_pool(pool)
                .command_buffer_count(2)
        )
    );
    call!(
        "begin_command_buffer",
        device.begin_command_buffer(cb, &vk::CommandBufferBeginInfo::default())
    );
    unsafe {
        device.cmd_fill_buffer(cb, buffer, 0, 4096, 0x5EED_5EED);
        device.cmd_set_event(cb, event, vk::PipelineStageFlags::TRANSFER);
    }
    call!("end_command_buffer", device.end_command_buffer(cb));

    // Submission and waits. Natively the fence signals; through Airlock every wait must
    // return at once, even one without a time limit.
    let cbs = [cb];
    let submit = vk::SubmitInfo::default().command_buffers(&cbs);
    call!("queue_submit", device.queue_submit(queue, &[submit], fence));
    call!(
        "wait_for_fences",
        device.wait_for_fences(&[fence], true, u64::MAX)
    );
    let values = [1u64];
    let semaphores = [timeline];
    call!(
        "wait_semaphores",
        device.wait_semaphores(
            &vk::SemaphoreWaitInfo::default()
                .semaphores(&semaphores)
                .values(&values),
            u64::MAX
        )
    );
    call!("queue_wait_idle", device.queue_wait_idle(queue));
    call!("device_wait_idle", device.device_wait_idle());
    call!("reset_fences", device.reset_fences(&[fence]));
    call!("set_event", device.set_event(event));
    call!(
        "map_mapped",
        device.map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
    );
    call!(
        "map_unmapped",
        device.map_memory(unmapped, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
    );

    // Every destroy and free, the instance last.
    let t = Instant::now();
    unsafe {
        if let Some(cbs) = new_cbs {
            device.free_command_buffers(pool, &cbs);
        }
        device.free_command_buffers(pool, &[cb]);
        device.destroy_command_pool(pool, None);
        device.destroy_command_pool(new_pool.unwrap_or_default(), None);
        device.destroy_descriptor_pool(new_descriptor_pool.unwrap_or_default(), None);
        device.destroy_sampler(new_sampler.unwrap_or_default(), None);
        device.destroy_event(new_event.unwrap_or_default(), None);
        device.destroy_semaphore(new_semaphore.unwrap_or_default(), None);
        device.destroy_fence(new_fence.unwrap_or_default(), None);
        device.free_memory(new_memory.unwrap_or_default(), None);
        device.destroy_buffer(new_buffer.unwrap_or_default(), None);
        device.destroy_query_pool(query_pool, None);
        device.destroy_event(event, None);
        device.destroy_semaphore(timeline, None);
        device.destroy_fence(fence, None);
        device.unmap_memory(memory);
        device.destroy_buffer(buffer, None);
        device.free_memory(memory, None);
        device.free_memory(unmapped, None);
        if let Some(d) = new_device {
            d.destroy_device(None);
        }
        device.destroy_device(None);
        instance.destroy_instance(None);
    }
    println!("destroyed=yes");
    println!("destroy_ms={}", t.elapsed().as_millis());
    Ok(())
}

/// A command buffer of `record`'s commands, submitted with `fence`, `waits` (timeline
/// semaphore, value) and `signals` (timeline semaphore, value).
fn submit_with(
    device: &ash::Device,
    queue: vk::Queue,
    pool: vk::CommandPool,
    record: impl FnOnce(vk::CommandBuffer),
    waits: &[(vk::Semaphore, u64)],
    signals: &[(vk::Semaphore, u64)],
    fence: vk::Fence,
) -> Result<(), String> {
    let cmd = unsafe {
        device.allocate_command_buffers(
            &vk::CommandBufferAllocateInfo::default()
                .command_pool(pool)
                .command_buffer_count(1),
        )
    }
    .map_err(|e| format!("command buffer: {e:?}"))?[0];
    unsafe {
        device
            .begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default())
            .map_err(|e| format!("begin: {e:?}"))?;
        record(cmd);
        device
            .end_command_buffer(cmd)
            .map_err(|e| format!("end: {e:?}"))?;
    }
    let wait_sems: Vec<_> = waits.iter().map(|w| w.0).collect();
    let wait_values: Vec<_> = waits.iter().map(|w| w.1).collect();
    let stages = vec![vk::PipelineStageFlags::ALL_COMMANDS; waits.len()];
    let signal_sems: Vec<_> = signals.iter().map(|w| w.0).collect();
    let signal_values: Vec<_> = signals.iter().map(|w| w.1).collect();
    let mut timeline = vk::TimelineSemaphoreSubmitInfo::default()
        .wait_semaphore_values(&wait_values)
        .signal_semaphore_values(&signal_values);
    let cmds = [cmd];
    let submit = vk::SubmitInfo::default()
        .command_buffers(&cmds)
        .wait_semaphores(&wait_sems)
        .wait_dst_stage_mask(&stages)
        .signal_semaphores(&signal_sems)
        .push_next(&mut timeline);
    unsafe { device.queue_submit(queue, &[submit], fence) }
        .map_err(|e| format!("vkQueueSubmit: {e:?}"))
}

fn status(r: vk::Result) -> String {
    format!("{r:?}")
}

fn feedback() -> Result<(), String> {
    let (_entry, instance, devices) = enumerate()?;
    let pd = *devices.first().ok_or("no device")?;
    let prio = [1.0];
    let queue_info = vk::DeviceQueueCreateInfo::default()
        .queue_family_index(0)
        .queue_priorities(&prio);
    let mut v12 = vk::PhysicalDeviceVulkan12Features::default().timeline_semaphore(true);
    let info = vk::DeviceCreateInfo::default()
        .queue_create_infos(std::slice::from_ref(&queue_info))
        .push_next(&mut v12);
    let device = unsafe { instance.create_device(pd, &info, None) }
        .map_err(|r| format!("vkCreateDevice: {r:?}"))?;
    let queue = unsafe { device.get_device_queue(0, 0) };
    let d = &device;
    let pool = unsafe {
        d.create_command_pool(
            &vk::CommandPoolCreateInfo::default()
                .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER),
            None,
        )
    }
    .map_err(|e| format!("pool: {e:?}"))?;
    let fence = |signalled: bool| {
        let flags = if signalled {
            vk::FenceCreateFlags::SIGNALED
        } else {
            vk::FenceCreateFlags::empty()
        };
        unsafe { d.create_fence(&vk::FenceCreateInfo::default().flags(flags), None) }
            .map_err(|e| format!("vkCreateFence: {e:?}"))
    };
    let fstatus = |f: vk::Fence| status(unsafe { (d.fp_v1_0().get_fence_status)(d.handle(), f) });
    let wait = |fs: &[vk::Fence], all: bool, timeout: u64| {
        result(unsafe { d.wait_for_fences(fs, all, timeout) })
    };

    // Waited on with no time at all right after creation (Airlock posts the creation and the
    // binding of its feedback slot: the wait cannot go by the slot yet).
    let fresh = fence(true)?;
    println!("wait_0_just_created_signalled={}", wait(&[fresh], true, 0));
    unsafe { d.destroy_fence(fresh, None) };

    // Fences: created signalled or not, then a submission, a reset, a reuse.
    let on = fence(true)?;
    let off = fence(false)?;
    println!("fence_created_signalled={}", fstatus(on));
    println!("fence_created_unsignalled={}", fstatus(off));
    println!("wait_unsignalled_0={}", wait(&[off], true, 0));
    println!("wait_unsignalled_1ms={}", wait(&[off], true, 1_000_000));
    println!("wait_any={}", wait(&[off, on], false, u64::MAX));
    println!("wait_all_1ms={}", wait(&[off, on], true, 1_000_000));
    submit_with(d, queue, pool, |_| {}, &[], &[], off)?;
    println!("wait_submitted={}", wait(&[off], true, u64::MAX));
    println!("status_submitted={}", fstatus(off));
    println!("wait_all={}", wait(&[off, on], true, u64::MAX));
    unsafe { d.reset_fences(&[off, on]) }.map_err(|e| format!("reset: {e:?}"))?;
    println!("status_after_reset={}", fstatus(off));
    println!("status_after_reset_2={}", fstatus(on));
    println!("wait_after_reset_0={}", wait(&[off, on], false, 0));
    // The same fence reset and submitted again and again, its status read at each step.
    let mut cycles = [0usize; 3];
    for _ in 0..200 {
        submit_with(d, queue, pool, |_| {}, &[], &[], off)?;
        if wait(&[off], true, u64::MAX) == "SUCCESS" {
            cycles[0] += 1;
        }
        if fstatus(off) == "SUCCESS" {
            cycles[1] += 1;
        }
        unsafe { d.reset_fences(&[off]) }.map_err(|e| format!("reset: {e:?}"))?;
        if fstatus(off) == "NOT_READY" {
            cycles[2] += 1;
        }
    }
    println!("cycles={cycles:?}");
    // Many fences in flight at once, waited for all together and one by one.
    let many: Vec<vk::Fence> = (0..48).map(|_| fence(false)).collect::<Result<_, _>>()?;
    for f in &many {
        submit_with(d, queue, pool, |_| {}, &[], &[], *f)?;
    }
    println!("wait_many={}", wait(&many, true, u64::MAX));
    let signalled = many.iter().filter(|f| fstatus(**f) == "SUCCESS").count();
    println!("many_signalled={signalled}");
    for f in many {
        unsafe { d.destroy_fence(f, None) };
    }

    // Timeline semaphores: host signals, device signals, a wait before the signal.
    let timeline = |initial: u64| {
        let mut t = vk::SemaphoreTypeCreateInfo::default()
            .semaphore_type(vk::SemaphoreType::TIMELINE)
            .initial_value(initial);
        unsafe { d.create_semaphore(&vk::SemaphoreCreateInfo::default().push_next(&mut t), None) }
            .map_err(|e| format!("vkCreateSemaphore: {e:?}"))
    };
    let counter = |s: vk::Semaphore| match unsafe { d.get_semaphore_counter_value(s) } {
        Ok(v) => v.to_string(),
        Err(e) => format!("{e:?}"),
    };
    let swait = |sems: &[vk::Semaphore], values: &[u64], any: bool, timeout: u64| {
        let flags = if any {
            vk::SemaphoreWaitFlags::ANY
        } else {
            vk::SemaphoreWaitFlags::empty()
        };
        let info = vk::SemaphoreWaitInfo::default()
            .flags(flags)
            .semaphores(sems)
            .values(values);
        result(unsafe { d.wait_semaphores(&info, timeout) })
    };
    let fresh = timeline(7)?;
    println!("swait_0_just_created={}", swait(&[fresh], &[7], false, 0));
    unsafe { d.destroy_semaphore(fresh, None) };
    let s = timeline(5)?;
    let gate = timeline(0)?;
    println!("counter_initial={}", counter(s));
    let signal = vk::SemaphoreSignalInfo::default().semaphore(s).value(9);
    unsafe { d.signal_semaphore(&signal) }.map_err(|e| format!("signal: {e:?}"))?;
    println!("counter_host_signalled={}", counter(s));
    println!("swait_reached={}", swait(&[s], &[9], false, 0));
    println!(
        "swait_not_reached_1ms={}",
        swait(&[s], &[10], false, 1_000_000)
    );
    submit_with(d, queue, pool, |_| {}, &[], &[(s, 12)], vk::Fence::null())?;
    println!("swait_device={}", swait(&[s], &[12], false, u64::MAX));
    println!("counter_device_signalled={}", counter(s));
    println!(
        "swait_any={}",
        swait(&[s, gate], &[12, 100], true, u64::MAX)
    );
    println!(
        "swait_all_1ms={}",
        swait(&[s, gate], &[12, 100], false, 1_000_000)
    );
    // A submission that waits for the host: it signals 20 once the gate reaches 1.
    let last = fence(false)?;
    submit_with(d, queue, pool, |_| {}, &[(gate, 1)], &[(s, 20)], last)?;
    println!(
        "swait_before_gate_1ms={}",
        swait(&[s], &[20], false, 1_000_000)
    );
    println!("fence_before_gate={}", fstatus(last));
    let open = vk::SemaphoreSignalInfo::default().semaphore(gate).value(1);
    unsafe { d.signal_semaphore(&open) }.map_err(|e| format!("signal: {e:?}"))?;
    println!("swait_after_gate={}", swait(&[s], &[20], false, u64::MAX));
    println!("wait_after_gate={}", wait(&[last], true, u64::MAX));
    println!("counter_after_gate={}", counter(s));
    println!("counter_gate={}", counter(gate));
    // A submission that signals, then an empty one with a fence: once the fence is seen
    // signalled, so is the value (the fence's scope takes in what was submitted before it).
    let many: Vec<vk::Semaphore> = (0..5).map(|_| timeline(0)).collect::<Result<_, _>>()?;
    let flag = fence(false)?;
    let mut seen_after_fence = 0;
    for round in 0..20u64 {
        let (i, v) = ((round % 5) as usize, 100 + round);
        submit_with(
            d,
            queue,
            pool,
            |_| {},
            &[],
            &[(many[i], v)],
            vk::Fence::null(),
        )?;
        submit_with(d, queue, pool, |_| {}, &[], &[], flag)?;
        wait(&[flag], true, u64::MAX);
        unsafe { d.reset_fences(&[flag]) }.map_err(|e| format!("reset: {e:?}"))?;
        let values: Vec<u64> = many
            .iter()
            .enumerate()
            .map(|(j, _)| if j == i { v } else { 1 << 40 })
            .collect();
        if swait(&many, &values, true, 0) == "SUCCESS" {
            seen_after_fence += 1;
        }
    }
    println!("timeline_seen_after_a_later_fence={seen_after_fence}");
    unsafe {
        for s in many {
            d.destroy_semaphore(s, None);
        }
        d.destroy_fence(flag, None);
    }
    // Values past 32 bits, from the host and from the device.
    let big = vk::SemaphoreSignalInfo::default()
        .semaphore(s)
        .value((1 << 40) + 3);
    unsafe { d.signal_semaphore(&big) }.map_err(|e| format!("signal: {e:?}"))?;
    println!("counter_64bit_host={}", counter(s));
    submit_with(
        d,
        queue,
        pool,
        |_| {},
        &[],
        &[(s, (1 << 41) + 5)],
        vk::Fence::null(),
    )?;
    println!(
        "swait_64bit={}",
        swait(&[s], &[(1 << 41) + 5], false, u64::MAX)
    );
    println!("counter_64bit_device={}", counter(s));

    // Events: set and reset from the host, then from a command buffer.
    let event = unsafe { d.create_event(&vk::EventCreateInfo::default(), None) }
        .map_err(|e| format!("vkCreateEvent: {e:?}"))?;
    let estatus = |e: vk::Event| status(unsafe { (d.fp_v1_0().get_event_status)(d.handle(), e) });
    println!("event_created={}", estatus(event));
    unsafe { d.set_event(event) }.map_err(|e| format!("set: {e:?}"))?;
    println!("event_host_set={}", estatus(event));
    unsafe { d.reset_event(event) }.map_err(|e| format!("reset: {e:?}"))?;
    println!("event_host_reset={}", estatus(event));
    let done = fence(false)?;
    let stage = vk::PipelineStageFlags::ALL_COMMANDS;
    submit_with(
        d,
        queue,
        pool,
        |c| unsafe { d.cmd_set_event(c, event, stage) },
        &[],
        &[],
        done,
    )?;
    wait(&[done], true, u64::MAX);
    println!("event_device_set={}", estatus(event));
    unsafe { d.reset_fences(&[done]) }.map_err(|e| format!("reset: {e:?}"))?;
    submit_with(
        d,
        queue,
        pool,
        |c| unsafe { d.cmd_reset_event(c, event, stage) },
        &[],
        &[],
        done,
    )?;
    wait(&[done], true, u64::MAX);
    println!("event_device_reset={}", estatus(event));
    unsafe { d.set_event(event) }.map_err(|e| format!("set: {e:?}"))?;
    println!("event_host_set_again={}", estatus(event));
    println!(
        "device_wait_idle={}",
        result(unsafe { d.device_wait_idle() })
    );
    unsafe {
        for f in [on, off, last, done] {
            d.destroy_fence(f, None);
        }
        d.destroy_semaphore(s, None);
        d.destroy_semaphore(gate, None);
        d.destroy_event(event, None);
        d.destroy_command_pool(pool, None);
        device.destroy_device(None);
        instance.destroy_instance(None);
    }
    println!("destroyed=yes");
    Ok(())
}

/// Tries every way to write the feedback region this process was given; prints what each did.
fn feedback_hostile() -> Result<(), String> {
    use std::io::{Seek, SeekFrom, Write};
    let (_entry, instance, devices) = enumerate()?;
    let pd = *devices.first().ok_or("no device")?;
    let (device, _queue) = make_device(&instance, pd)?;
    // The first fence asks the server for the region.
    let fence = unsafe { device.create_fence(&vk::FenceCreateInfo::default(), None) }
        .map_err(|r| format!("vkCreateFence: {r:?}"))?;
    // Its descriptor, and where this process has it mapped.
    let mut fd = None;
    for e in std::fs::read_dir("/proc/self/fd")
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        if target.to_string_lossy().contains("airlock-feedback") {
            fd = e.file_name().to_string_lossy().parse::<i32>().ok();
        }
    }
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    let mapping = maps
        .lines()
        .find(|l| l.contains("airlock-feedback"))
        .map(|l| l.to_string());
    println!("region_fd={}", fd.is_some());
    println!("region_mapped={}", mapping.is_some());
    if let Some(fd) = fd {
        // SAFETY: a mapping attempt on our own descriptor; unmapped if it worked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        println!("map_writable={}", p != libc::MAP_FAILED);
        if p != libc::MAP_FAILED {
            // SAFETY: the mapping just made.
            unsafe {
                std::ptr::write_bytes(p as *mut u8, 0xff, 4096);
                libc::munmap(p, 4096);
            }
        }
        // SAFETY: a write of our own bytes to our own descriptor.
        let n = unsafe { libc::pwrite(fd, [0xffu8; 64].as_ptr().cast(), 64, 128) };
        println!("write_fd={}", n >= 0);
        // SAFETY: as above.
        println!("truncate_fd={}", unsafe { libc::ftruncate(fd, 0) } == 0);
    }
    if let Some(m) = mapping {
        let start = usize::from_str_radix(m.split('-').next().unwrap_or("0"), 16).unwrap_or(0);
        // SAFETY: a protection change of a mapping the ICD made; refused for a sealed region.
        let r = unsafe {
            libc::mprotect(
                start as *mut libc::c_void,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        println!("mprotect_writable={}", r == 0);
        let wrote = std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/mem")
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(start as u64 + 128))?;
                f.write_all(&[0xff; 64])
            });
        println!("proc_mem_write={}", wrote.is_ok());
    }
    unsafe {
        device.destroy_fence(fence, None);
        device.destroy_device(None);
        instance.destroy_instance(None);
    }
    Ok(())
}

/// `n` fences, semaphores (binary and timeline) and events made, each used once (a submission
/// that signals the fences and semaphores, a host set of the events) and destroyed; for
/// `AIRLOCK_STATS`: Airlock posts their creation, so `n` costs no round trip each.
fn sync_objects(n: usize) -> Result<(), String> {
    let (_entry, instance, devices) = enumerate()?;
    let pd = *devices.first().ok_or("no device")?;
    let (device, queue) = make_device(&instance, pd)?;
    let d = &device;
    let (mut fences, mut sems, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let f = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(|r| format!("vkCreateFence {i}: {r:?}"))?;
        let kind = if i % 2 == 0 {
            vk::SemaphoreType::BINARY
        } else {
            vk::SemaphoreType::TIMELINE
        };
        let mut t = vk::SemaphoreTypeCreateInfo::default()
            .semaphore_type(kind)
            .initial_value(0);
        let s = unsafe {
            d.create_semaphore(&vk::SemaphoreCreateInfo::default().push_next(&mut t), None)
        }
        .map_err(|r| format!("vkCreateSemaphore {i}: {r:?}"))?;
        let e = unsafe { d.create_event(&vk::EventCreateInfo::default(), None) }
            .map_err(|r| format!("vkCreateEvent {i}: {r:?}"))?;
        fences.push(f);
        sems.push((s, kind));
        events.push(e);
    }
    let mut signalled = 0;
    for (i, f) in fences.iter().enumerate() {
        let (s, kind) = sems[i];
        let values = [i as u64 + 1];
        let mut timeline =
            vk::TimelineSemaphoreSubmitInfo::default().signal_semaphore_values(&values);
        let signal = [s];
        let mut info = vk::SubmitInfo::default().signal_semaphores(&signal);
        if kind == vk::SemaphoreType::TIMELINE {
            info = info.push_next(&mut timeline);
        }
        unsafe { d.queue_submit(queue, &[info], *f) }.map_err(|r| format!("submit {i}: {r:?}"))?;
        unsafe { d.set_event(events[i]) }.map_err(|r| format!("vkSetEvent {i}: {r:?}"))?;
        unsafe { d.wait_for_fences(&[*f], true, u64::MAX) }
            .map_err(|r| format!("wait {i}: {r:?}"))?;
        // (lavapipe may signal the fence before the timeline value shows: wait for it.)
        let wait = vk::SemaphoreWaitInfo::default()
            .semaphores(&signal)
            .values(&values);
        let value_ok = kind == vk::SemaphoreType::BINARY
            || (unsafe { d.wait_semaphores(&wait, 1_000_000_000) }.is_ok()
                && unsafe { d.get_semaphore_counter_value(s) } == Ok(i as u64 + 1));
        if value_ok && unsafe { d.get_event_status(events[i]) } == Ok(true) {
            signalled += 1;
        }
    }
    // Binary semaphores signalled and never waited on may be destroyed once idle.
    unsafe { d.device_wait_idle() }.map_err(|r| format!("idle: {r:?}"))?;
    println!("made={}", fences.len() + sems.len() + events.len());
    println!("signalled={signalled}");
    unsafe {
        for ((f, (s, _)), e) in fences.into_iter().zip(sems).zip(events) {
            d.destroy_fence(f, None);
            d.destroy_semaphore(s, None);
            d.destroy_event(e, None);
        }
        device.destroy_device(None);
        instance.destroy_instance(None);
    }
    Ok(())
}

fn status_polls(n: usize) -> Result<(), String> {
    let (_entry, instance, devices) = enumerate()?;
    let pd = *devices.first().ok_or("no device")?;
    let (device, queue) = make_device(&instance, pd)?;
    let d = &device;
    let fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
        .map_err(|r| format!("vkCreateFence: {r:?}"))?;
    let mut t = vk::SemaphoreTypeCreateInfo::default()
        .semaphore_type(vk::SemaphoreType::TIMELINE)
        .initial_value(3);
    let sem =
        unsafe { d.create_semaphore(&vk::SemaphoreCreateInfo::default().push_next(&mut t), None) }
            .map_err(|e| format!("vkCreateSemaphore: {e:?}"))?;
    let event = unsafe { d.create_event(&vk::EventCreateInfo::default(), None) }
        .map_err(|e| format!("vkCreateEvent: {e:?}"))?;
    unsafe { d.set_event(event) }.map_err(|e| format!("set: {e:?}"))?;
    unsafe { d.queue_submit(queue, &[], fence) }.map_err(|e| format!("submit: {e:?}"))?;
    unsafe { d.wait_for_fences(&[fence], true, u64::MAX) }.map_err(|e| format!("wait: {e:?}"))?;
    let mut seen = [0usize; 4];
    for _ in 0..n {
        if unsafe { d.get_fence_status(fence) } == Ok(true) {
            seen[0] += 1;
        }
        if unsafe { d.get_semaphore_counter_value(sem) } == Ok(3) {
            seen[1] += 1;
        }
        if unsafe { d.get_event_status(event) } == Ok(true) {
            seen[2] += 1;
        }
        if unsafe { d.wait_for_fences(&[fence], true, u64::MAX) }.is_ok() {
            seen[3] += 1;
        }
    }
    println!("polls={seen:?}");
    unsafe {
        d.destroy_fence(fence, None);
        d.destroy_semaphore(sem, None);
        d.destroy_event(event, None);
        device.destroy_device(None);
        instance.destroy_instance(None);
    }
    Ok(())
}
