//! Scenarios the integration tests run in a process of their own, because a Vulkan driver's
//! state (Airlock's server connection) is per process. Prints `key=value` lines.
//!
//! - `enumerate`: instance, physical devices, their names and driver.
//! - `mdwe-enumerate`: the same after `prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)`.
//! - `kill-server`: enumerate, SIGKILL the server, then time the calls that follow.
//! - `null-input`: a required input pointer left NULL, then a valid call.
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
        .application_name(c"airlock_probe")
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
