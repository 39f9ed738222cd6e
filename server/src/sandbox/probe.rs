//! A tiny compute job run directly on the host driver, outside any client's objects.
//!
//! Before lock-down, its first part (an instance and its physical devices, [`Stage::Screen`])
//! warms the driver up while the file system is still readable: lavapipe reads the CPU topology
//! (`/sys/devices/system/cpu/possible`) and initialises LLVM's native target when it makes its
//! first screen, at `vkEnumeratePhysicalDevices`. It stops there because tracing showed that
//! the rest reads no file the sandbox closes: device creation opens only the shader cache's
//! index (in the directory landlock grants), and compiling and running a pipeline only calls
//! `sysinfo` and `fstat` on stderr (which the policy allows). A device made and destroyed
//! there cost every client about 5 ms more (its threads, the cache's thread joined); a compile
//! would cost ~25 ms. Run whole ([`Stage::Dispatch`]) by
//! `--sandbox-selftest` after lock-down, it shows that instance and device creation, the
//! process's first pipeline compile (LLVM's JIT: threads, executable mappings) and a dispatch
//! work there.

use super::SandboxError;
use crate::host::HostDriver;
use ash::vk;
use std::time::{Duration, Instant};

/// The probe shader: `data[i] = data[i] * 3 + i` (shaders/probe.comp).
const SPIRV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe.comp.spv"));
/// Invocations, and so 32-bit words in the buffer.
const WORDS: u32 = 256;
const LOCAL_SIZE: u32 = 64;
const FENCE_TIMEOUT: Duration = Duration::from_secs(10);

fn input(i: u32) -> u32 {
    i.wrapping_mul(0x9E37_79B9) ^ 0xA5A5_5A5A
}

fn expected(i: u32) -> u32 {
    input(i).wrapping_mul(3).wrapping_add(i)
}

/// How far [`run`] goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// An instance, and its physical devices enumerated (lavapipe's screen made).
    Screen,
    /// Then a device on the first physical device, the probe shader compiled into a compute
    /// pipeline, run, and every word it wrote checked.
    Dispatch,
}

/// Runs the job on `host` up to `stage`. Everything it created is destroyed before it returns,
/// whatever the outcome (so no driver thread outlives it). Returns the time it took.
pub fn run(host: &HostDriver, stage: Stage) -> Result<Duration, SandboxError> {
    let start = Instant::now();
    let static_fn = ash::StaticFn {
        get_instance_proc_addr: host.get_instance_proc_addr,
    };
    // SAFETY: the host driver's vkGetInstanceProcAddr, valid while `host` is loaded.
    let entry = unsafe { ash::Entry::from_static_fn(static_fn) };
    let app = vk::ApplicationInfo::default()
        .application_name(c"airlock-server probe")
        .api_version(vk::API_VERSION_1_0);
    // SAFETY: a valid create info; the instance is destroyed by `Objects::drop`.
    let instance = unsafe {
        entry.create_instance(
            &vk::InstanceCreateInfo::default().application_info(&app),
            None,
        )
    }
    .map_err(SandboxError::call("vkCreateInstance"))?;
    let mut o = Objects::new(instance);
    o.job(stage)?;
    drop(o);
    Ok(start.elapsed())
}

/// Every object of the job; `Drop` destroys those that were created, children first.
struct Objects {
    instance: ash::Instance,
    device: Option<ash::Device>,
    buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    module: vk::ShaderModule,
    set_layout: vk::DescriptorSetLayout,
    layout: vk::PipelineLayout,
    pipeline: vk::Pipeline,
    pool: vk::DescriptorPool,
    commands: vk::CommandPool,
    fence: vk::Fence,
}

impl Objects {
    fn new(instance: ash::Instance) -> Objects {
        Objects {
            instance,
            device: None,
            buffer: vk::Buffer::null(),
            memory: vk::DeviceMemory::null(),
            module: vk::ShaderModule::null(),
            set_layout: vk::DescriptorSetLayout::null(),
            layout: vk::PipelineLayout::null(),
            pipeline: vk::Pipeline::null(),
            pool: vk::DescriptorPool::null(),
            commands: vk::CommandPool::null(),
            fence: vk::Fence::null(),
        }
    }

    fn job(&mut self, stage: Stage) -> Result<(), SandboxError> {
        let vkerr = |what: &'static str| SandboxError::call::<vk::Result>(what);
        // SAFETY (whole function): every handle passed is one created just before from the
        // same instance or device, and every create info points at live locals.
        let pd = unsafe { self.instance.enumerate_physical_devices() }
            .map_err(vkerr("vkEnumeratePhysicalDevices"))?
            .into_iter()
            .next()
            .ok_or_else(|| {
                SandboxError::Unavailable("the host driver has no physical device".into())
            })?;
        if stage == Stage::Screen {
            return Ok(());
        }
        let family = unsafe {
            self.instance
                .get_physical_device_queue_family_properties(pd)
        }
        .iter()
        .position(|q| q.queue_flags.contains(vk::QueueFlags::COMPUTE))
        .ok_or("no compute queue")? as u32;
        let priorities = [1.0f32];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(family)
            .queue_priorities(&priorities)];
        let device = unsafe {
            self.instance.create_device(
                pd,
                &vk::DeviceCreateInfo::default().queue_create_infos(&queues),
                None,
            )
        }
        .map_err(vkerr("vkCreateDevice"))?;
        let device = &*self.device.insert(device);
        let queue = unsafe { device.get_device_queue(family, 0) };

        let size = u64::from(WORDS) * 4;
        self.buffer = unsafe {
            device.create_buffer(
                &vk::BufferCreateInfo::default()
                    .size(size)
                    .usage(vk::BufferUsageFlags::STORAGE_BUFFER),
                None,
            )
        }
        .map_err(vkerr("vkCreateBuffer"))?;
        let req = unsafe { device.get_buffer_memory_requirements(self.buffer) };
        let props = unsafe { self.instance.get_physical_device_memory_properties(pd) };
        let want = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let type_index = (0..props.memory_type_count)
            .find(|&t| {
                req.memory_type_bits & (1 << t) != 0
                    && props.memory_types[t as usize].property_flags.contains(want)
            })
            .ok_or("no host-visible coherent memory type")?;
        self.memory = unsafe {
            device.allocate_memory(
                &vk::MemoryAllocateInfo::default()
                    .allocation_size(req.size)
                    .memory_type_index(type_index),
                None,
            )
        }
        .map_err(vkerr("vkAllocateMemory"))?;
        unsafe { device.bind_buffer_memory(self.buffer, self.memory, 0) }
            .map_err(vkerr("vkBindBufferMemory"))?;
        let ptr = unsafe { device.map_memory(self.memory, 0, size, vk::MemoryMapFlags::empty()) }
            .map_err(vkerr("vkMapMemory"))? as *mut u32;
        for i in 0..WORDS {
            // SAFETY: `ptr` maps `size` bytes, WORDS words, aligned by the driver.
            unsafe { ptr.add(i as usize).write_volatile(input(i)) };
        }

        // glslang writes SPIR-V words in the host's byte order.
        let code: Vec<u32> = SPIRV
            .chunks_exact(4)
            .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        self.module = unsafe {
            device.create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&code), None)
        }
        .map_err(vkerr("vkCreateShaderModule"))?;
        let bindings = [vk::DescriptorSetLayoutBinding::default()
            .binding(0)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(1)
            .stage_flags(vk::ShaderStageFlags::COMPUTE)];
        self.set_layout = unsafe {
            device.create_descriptor_set_layout(
                &vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings),
                None,
            )
        }
        .map_err(vkerr("vkCreateDescriptorSetLayout"))?;
        let set_layouts = [self.set_layout];
        self.layout = unsafe {
            device.create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default().set_layouts(&set_layouts),
                None,
            )
        }
        .map_err(vkerr("vkCreatePipelineLayout"))?;
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(self.module)
            .name(c"main");
        let info = vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(self.layout);
        self.pipeline =
            unsafe { device.create_compute_pipelines(vk::PipelineCache::null(), &[info], None) }
                .map_err(|(_, e)| SandboxError::call("vkCreateComputePipelines")(e))?[0];

        let sizes = [vk::DescriptorPoolSize::default()
            .ty(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(1)];
        self.pool = unsafe {
            device.create_descriptor_pool(
                &vk::DescriptorPoolCreateInfo::default()
                    .max_sets(1)
                    .pool_sizes(&sizes),
                None,
            )
        }
        .map_err(vkerr("vkCreateDescriptorPool"))?;
        let set = unsafe {
            device.allocate_descriptor_sets(
                &vk::DescriptorSetAllocateInfo::default()
                    .descriptor_pool(self.pool)
                    .set_layouts(&set_layouts),
            )
        }
        .map_err(vkerr("vkAllocateDescriptorSets"))?[0];
        let buffer_info = [vk::DescriptorBufferInfo::default()
            .buffer(self.buffer)
            .range(vk::WHOLE_SIZE)];
        let write = vk::WriteDescriptorSet::default()
            .dst_set(set)
            .dst_binding(0)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .buffer_info(&buffer_info);
        unsafe { device.update_descriptor_sets(&[write], &[]) };

        self.commands = unsafe {
            device.create_command_pool(
                &vk::CommandPoolCreateInfo::default().queue_family_index(family),
                None,
            )
        }
        .map_err(vkerr("vkCreateCommandPool"))?;
        let cmd = unsafe {
            device.allocate_command_buffers(
                &vk::CommandBufferAllocateInfo::default()
                    .command_pool(self.commands)
                    .level(vk::CommandBufferLevel::PRIMARY)
                    .command_buffer_count(1),
            )
        }
        .map_err(vkerr("vkAllocateCommandBuffers"))?[0];
        unsafe {
            device
                .begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default())
                .map_err(vkerr("vkBeginCommandBuffer"))?;
            device.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, self.pipeline);
            device.cmd_bind_descriptor_sets(
                cmd,
                vk::PipelineBindPoint::COMPUTE,
                self.layout,
                0,
                &[set],
                &[],
            );
            device.cmd_dispatch(cmd, WORDS / LOCAL_SIZE, 1, 1);
            let barrier = vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::SHADER_WRITE)
                .dst_access_mask(vk::AccessFlags::HOST_READ);
            device.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::PipelineStageFlags::HOST,
                vk::DependencyFlags::empty(),
                &[barrier],
                &[],
                &[],
            );
            device
                .end_command_buffer(cmd)
                .map_err(vkerr("vkEndCommandBuffer"))?;
        }
        self.fence = unsafe { device.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(vkerr("vkCreateFence"))?;
        let cmds = [cmd];
        let submit = vk::SubmitInfo::default().command_buffers(&cmds);
        unsafe {
            device
                .queue_submit(queue, &[submit], self.fence)
                .map_err(vkerr("vkQueueSubmit"))?;
            device
                .wait_for_fences(&[self.fence], true, FENCE_TIMEOUT.as_nanos() as u64)
                .map_err(vkerr("vkWaitForFences"))?;
        }
        for i in 0..WORDS {
            // SAFETY: as above; the fence wait and the barrier made the shader's writes visible.
            let got = unsafe { ptr.add(i as usize).read_volatile() };
            if got != expected(i) {
                return Err(SandboxError::Unavailable(format!(
                    "the probe shader wrote {got:#x} at word {i}, expected {:#x}",
                    expected(i)
                )));
            }
        }
        Ok(())
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        // SAFETY: each handle is null or was created from this device or instance, and the
        // device is idle (the fence was waited for, or nothing was submitted).
        unsafe {
            if let Some(d) = self.device.take() {
                let _ = d.device_wait_idle();
                d.destroy_fence(self.fence, None);
                d.destroy_command_pool(self.commands, None);
                d.destroy_descriptor_pool(self.pool, None);
                d.destroy_pipeline(self.pipeline, None);
                d.destroy_pipeline_layout(self.layout, None);
                d.destroy_descriptor_set_layout(self.set_layout, None);
                d.destroy_shader_module(self.module, None);
                d.destroy_buffer(self.buffer, None);
                d.free_memory(self.memory, None);
                d.destroy_device(None);
            }
            self.instance.destroy_instance(None);
        }
    }
}
