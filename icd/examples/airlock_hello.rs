//! A small Vulkan program: creates an instance, lists the physical devices with their driver,
//! memory, queues and a few format capabilities. Run it through Airlock with
//! `VK_DRIVER_FILES=target/release/airlock_icd.x86_64.json`.

use ash::vk;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let entry = unsafe { ash::Entry::load()? };
    let app = vk::ApplicationInfo::default()
        .application_name(c"airlock_hello")
        .application_version(1)
        .api_version(vk::API_VERSION_1_3);
    let instance = unsafe {
        entry.create_instance(
            &vk::InstanceCreateInfo::default().application_info(&app),
            None,
        )?
    };
    let devices = unsafe { instance.enumerate_physical_devices()? };
    println!("{} physical device(s)", devices.len());
    for pd in devices {
        let mut driver = vk::PhysicalDeviceDriverProperties::default();
        let mut props = vk::PhysicalDeviceProperties2::default().push_next(&mut driver);
        unsafe { instance.get_physical_device_properties2(pd, &mut props) };
        let p = props.properties;
        println!(
            "- {} (Vulkan {}.{}.{}), driver {:?}: {:?}",
            p.device_name_as_c_str()?.to_string_lossy(),
            vk::api_version_major(p.api_version),
            vk::api_version_minor(p.api_version),
            vk::api_version_patch(p.api_version),
            driver.driver_name_as_c_str()?,
            driver.driver_info_as_c_str()?,
        );
        let mem = unsafe { instance.get_physical_device_memory_properties(pd) };
        for h in &mem.memory_heaps[..mem.memory_heap_count as usize] {
            println!("  memory heap: {} MiB {:?}", h.size >> 20, h.flags);
        }
        for (i, q) in unsafe { instance.get_physical_device_queue_family_properties(pd) }
            .iter()
            .enumerate()
        {
            println!(
                "  queue family {i}: {} queue(s) {:?}",
                q.queue_count, q.queue_flags
            );
        }
        for f in [
            vk::Format::R8G8B8A8_UNORM,
            vk::Format::D32_SFLOAT,
            vk::Format::BC1_RGB_UNORM_BLOCK,
        ] {
            let fp = unsafe { instance.get_physical_device_format_properties(pd, f) };
            println!("  {f:?}: optimal tiling {:?}", fp.optimal_tiling_features);
        }
    }
    unsafe { instance.destroy_instance(None) };
    Ok(())
}
