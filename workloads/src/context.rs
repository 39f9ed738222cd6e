//! Instance, device and queue, the objects a scenario creates (destroyed with the context), and
//! command submission.

use crate::error::{Check, Error, Result};
use ash::{
    ext::{debug_utils, extended_dynamic_state3, vertex_input_dynamic_state},
    khr::external_memory_fd,
    khr::push_descriptor,
    vk,
};
use std::ffi::{c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const VALIDATION_LAYER: &CStr = c"VK_LAYER_KHRONOS_validation";

/// Long enough for a 64 MiB dispatch on a slow CPU driver, short enough to fail a test rather
/// than hang it.
pub const TIMEOUT_NS: u64 = 60_000_000_000;

#[derive(Clone, Copy, Default, Debug)]
pub struct Options {
    /// Enable the Khronos validation layer and count what it reports (see
    /// [`validation_messages`]).
    pub validate: bool,
    /// Enable `VK_KHR_surface` with this surface extension, and `VK_KHR_swapchain`.
    pub surface: Option<&'static CStr>,
}

static VALIDATION_MESSAGES: AtomicUsize = AtomicUsize::new(0);

/// Warnings and errors the validation layer reported so far in this process.
pub fn validation_messages() -> usize {
    VALIDATION_MESSAGES.load(Ordering::SeqCst)
}

type Destroy = Box<dyn FnOnce(&ash::Device) + Send>;

pub struct Context {
    pub entry: ash::Entry,
    pub instance: ash::Instance,
    pub physical_device: vk::PhysicalDevice,
    pub properties: vk::PhysicalDeviceProperties,
    pub memory_properties: vk::PhysicalDeviceMemoryProperties,
    pub device: ash::Device,
    pub queue_family: u32,
    /// Whether the validation layer is on ([`Options::validate`]).
    pub validating: bool,
    pub timestamp_valid_bits: u32,
    pub occlusion_query_precise: bool,
    /// Optional shader features, enabled where the device has them: 16- and 64-bit float
    /// arithmetic, and stores to storage buffers from fragment shaders.
    pub shader_float16: bool,
    pub shader_float64: bool,
    pub fragment_stores: bool,
    /// Imageless framebuffers (a core 1.2 feature), when the device has them.
    pub imageless_framebuffer: bool,
    /// `VK_EXT_vertex_input_dynamic_state`, when the device has it.
    pub vertex_input_dynamic: Option<vertex_input_dynamic_state::Device>,
    /// `VK_EXT_extended_dynamic_state3` with dynamic blend enable, equation and write mask.
    pub dynamic_blend: Option<extended_dynamic_state3::Device>,
    /// `VK_KHR_push_descriptor`, when the device has it.
    pub push_descriptor: Option<push_descriptor::Device>,
    /// `VK_KHR_external_memory_fd`, when the device has it.
    pub external_memory_fd: Option<external_memory_fd::Device>,
    queue: Mutex<vk::Queue>,
    command_pool: Mutex<vk::CommandPool>,
    descriptor_pool: Mutex<vk::DescriptorPool>,
    owned: Mutex<Vec<Destroy>>,
    messenger: Option<(debug_utils::Instance, vk::DebugUtilsMessengerEXT)>,
}

/// A handle the context can destroy when it is dropped.
pub trait Owned: Copy + Send + 'static {
    /// # Safety
    /// The handle was created from `device` and is no longer in use.
    unsafe fn destroy(self, device: &ash::Device);
}

macro_rules! owned {
    ($($ty:ty => $destroy:ident),* $(,)?) => {
        $(impl Owned for $ty {
            unsafe fn destroy(self, device: &ash::Device) {
                unsafe { device.$destroy(self, None) }
            }
        })*
    };
}

owned!(
    vk::Buffer => destroy_buffer,
    vk::DeviceMemory => free_memory,
    vk::Image => destroy_image,
    vk::ImageView => destroy_image_view,
    vk::Sampler => destroy_sampler,
    vk::ShaderModule => destroy_shader_module,
    vk::Pipeline => destroy_pipeline,
    vk::PipelineLayout => destroy_pipeline_layout,
    vk::PipelineCache => destroy_pipeline_cache,
    vk::DescriptorSetLayout => destroy_descriptor_set_layout,
    vk::DescriptorPool => destroy_descriptor_pool,
    vk::DescriptorUpdateTemplate => destroy_descriptor_update_template,
    vk::RenderPass => destroy_render_pass,
    vk::Framebuffer => destroy_framebuffer,
    vk::CommandPool => destroy_command_pool,
    vk::Semaphore => destroy_semaphore,
    vk::Fence => destroy_fence,
    vk::QueryPool => destroy_query_pool,
    vk::Event => destroy_event,
);

unsafe extern "system" fn on_validation_message(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    _types: vk::DebugUtilsMessageTypeFlagsEXT,
    data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
    _user: *mut c_void,
) -> vk::Bool32 {
    // SAFETY: the layer passes valid callback data for the duration of the call.
    let message = unsafe { (*data).message_as_c_str() }.unwrap_or_default();
    eprintln!("validation {severity:?}: {}", message.to_string_lossy());
    VALIDATION_MESSAGES.fetch_add(1, Ordering::SeqCst);
    vk::FALSE
}

impl Context {
    pub fn new(options: Options) -> Result<Self> {
        // SAFETY: loads the system's Vulkan loader, which the rest of the program goes through.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| Error::Loader(e.to_string()))?;
        let app = vk::ApplicationInfo::default()
            .application_name(c"airlock-workload")
            .api_version(vk::API_VERSION_1_3);
        let layers = [VALIDATION_LAYER.as_ptr()];
        let mut extensions = Vec::new();
        if options.validate {
            extensions.push(debug_utils::NAME.as_ptr());
        }
        if let Some(platform) = options.surface {
            extensions.extend([ash::khr::surface::NAME.as_ptr(), platform.as_ptr()]);
        }
        let mut messenger_info = vk::DebugUtilsMessengerCreateInfoEXT::default()
            .message_severity(
                vk::DebugUtilsMessageSeverityFlagsEXT::WARNING
                    | vk::DebugUtilsMessageSeverityFlagsEXT::ERROR,
            )
            .message_type(
                vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION
                    | vk::DebugUtilsMessageTypeFlagsEXT::PERFORMANCE,
            )
            .pfn_user_callback(Some(on_validation_message));
        let mut instance_info = vk::InstanceCreateInfo::default()
            .application_info(&app)
            .enabled_extension_names(&extensions);
        if options.validate {
            // Chained too, so that instance creation and destruction are validated as well.
            instance_info = instance_info
                .enabled_layer_names(&layers)
                .push_next(&mut messenger_info);
        }
        // SAFETY: valid create info; the instance is destroyed in Drop.
        let instance =
            unsafe { entry.create_instance(&instance_info, None) }.check("vkCreateInstance")?;
        let messenger = if options.validate {
            let utils = debug_utils::Instance::new(&entry, &instance);
            // SAFETY: valid create info; destroyed in Drop before the instance.
            let m = unsafe { utils.create_debug_utils_messenger(&messenger_info, None) }
                .check("vkCreateDebugUtilsMessengerEXT")?;
            Some((utils, m))
        } else {
            None
        };

        // SAFETY: plain queries on a live instance.
        let physical_device = *unsafe { instance.enumerate_physical_devices() }
            .check("vkEnumeratePhysicalDevices")?
            .first()
            .ok_or_else(|| Error::Unsupported("no Vulkan physical device".into()))?;
        let properties = unsafe { instance.get_physical_device_properties(physical_device) };
        if properties.api_version < vk::API_VERSION_1_3 {
            return Err(Error::Unsupported(format!(
                "the device supports Vulkan {}.{}, the workloads need 1.3",
                vk::api_version_major(properties.api_version),
                vk::api_version_minor(properties.api_version)
            )));
        }
        let memory_properties =
            unsafe { instance.get_physical_device_memory_properties(physical_device) };
        let families =
            unsafe { instance.get_physical_device_queue_family_properties(physical_device) };
        let wanted = vk::QueueFlags::GRAPHICS | vk::QueueFlags::COMPUTE;
        let (queue_family, family) = families
            .iter()
            .enumerate()
            .find(|(_, f)| f.queue_flags.contains(wanted))
            .ok_or_else(|| Error::Unsupported("no graphics+compute queue family".into()))?;
        let queue_family = queue_family as u32;
        let mut supported12 = vk::PhysicalDeviceVulkan12Features::default();
        let mut supported_vi = vk::PhysicalDeviceVertexInputDynamicStateFeaturesEXT::default();
        let mut supported_eds3 = vk::PhysicalDeviceExtendedDynamicState3FeaturesEXT::default();
        let mut supported2 = vk::PhysicalDeviceFeatures2::default()
            .push_next(&mut supported12)
            .push_next(&mut supported_vi)
            .push_next(&mut supported_eds3);
        unsafe { instance.get_physical_device_features2(physical_device, &mut supported2) };
        let supported = supported2.features;
        let shader_float16 = supported12.shader_float16 == vk::TRUE;
        let imageless_framebuffer = supported12.imageless_framebuffer == vk::TRUE;
        let device_extensions =
            unsafe { instance.enumerate_device_extension_properties(physical_device) }
                .check("vkEnumerateDeviceExtensionProperties")?;
        let has = |name| {
            device_extensions
                .iter()
                .any(|e| e.extension_name_as_c_str() == Ok(name))
        };
        let (has_push_descriptor, has_memory_fd) =
            (has(push_descriptor::NAME), has(external_memory_fd::NAME));
        let has_vertex_input = has(vertex_input_dynamic_state::NAME)
            && supported_vi.vertex_input_dynamic_state == vk::TRUE;
        let has_dynamic_blend = has(extended_dynamic_state3::NAME)
            && supported_eds3.extended_dynamic_state3_color_blend_enable == vk::TRUE
            && supported_eds3.extended_dynamic_state3_color_blend_equation == vk::TRUE
            && supported_eds3.extended_dynamic_state3_color_write_mask == vk::TRUE;

        let priorities = [1.0];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(queue_family)
            .queue_priorities(&priorities)];
        let features = vk::PhysicalDeviceFeatures::default()
            .occlusion_query_precise(supported.occlusion_query_precise == vk::TRUE)
            .shader_float64(supported.shader_float64 == vk::TRUE)
            .fragment_stores_and_atomics(supported.fragment_stores_and_atomics == vk::TRUE);
        // Timeline semaphores, dynamic rendering and private data are mandatory in Vulkan 1.3.
        let mut features12 = vk::PhysicalDeviceVulkan12Features::default()
            .timeline_semaphore(true)
            .shader_float16(shader_float16)
            .imageless_framebuffer(imageless_framebuffer);
        let mut vertex_input = vk::PhysicalDeviceVertexInputDynamicStateFeaturesEXT::default()
            .vertex_input_dynamic_state(true);
        let mut dynamic_blend = vk::PhysicalDeviceExtendedDynamicState3FeaturesEXT::default()
            .extended_dynamic_state3_color_blend_enable(true)
            .extended_dynamic_state3_color_blend_equation(true)
            .extended_dynamic_state3_color_write_mask(true);
        let mut features13 = vk::PhysicalDeviceVulkan13Features::default()
            .dynamic_rendering(true)
            .private_data(true);
        let enabled_extensions: Vec<_> = [
            has_push_descriptor.then_some(push_descriptor::NAME.as_ptr()),
            has_memory_fd.then_some(external_memory_fd::NAME.as_ptr()),
            has_vertex_input.then_some(vertex_input_dynamic_state::NAME.as_ptr()),
            has_dynamic_blend.then_some(extended_dynamic_state3::NAME.as_ptr()),
            options.surface.map(|_| ash::khr::swapchain::NAME.as_ptr()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut device_info = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queues)
            .enabled_features(&features)
            .enabled_extension_names(&enabled_extensions)
            .push_next(&mut features12)
            .push_next(&mut features13);
        if has_vertex_input {
            device_info = device_info.push_next(&mut vertex_input);
        }
        if has_dynamic_blend {
            device_info = device_info.push_next(&mut dynamic_blend);
        }
        // SAFETY: valid create info; the device is destroyed in Drop.
        let device = unsafe { instance.create_device(physical_device, &device_info, None) }
            .check("vkCreateDevice")?;
        let queue = unsafe { device.get_device_queue(queue_family, 0) };
        let push_descriptor =
            has_push_descriptor.then(|| push_descriptor::Device::new(&instance, &device));
        let external_memory_fd =
            has_memory_fd.then(|| external_memory_fd::Device::new(&instance, &device));
        let vertex_input_dynamic =
            has_vertex_input.then(|| vertex_input_dynamic_state::Device::new(&instance, &device));
        let dynamic_blend =
            has_dynamic_blend.then(|| extended_dynamic_state3::Device::new(&instance, &device));
        let pool_info = vk::CommandPoolCreateInfo::default()
            .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER)
            .queue_family_index(queue_family);
        let command_pool =
            unsafe { device.create_command_pool(&pool_info, None) }.check("vkCreateCommandPool")?;
        let sizes = [
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(256),
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::UNIFORM_BUFFER)
                .descriptor_count(64),
            vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::COMBINED_IMAGE_SAMPLER)
                .descriptor_count(16),
        ];
        let descriptor_pool_info = vk::DescriptorPoolCreateInfo::default()
            .max_sets(64)
            .pool_sizes(&sizes);
        let descriptor_pool = unsafe { device.create_descriptor_pool(&descriptor_pool_info, None) }
            .check("vkCreateDescriptorPool")?;

        Ok(Self {
            entry,
            instance,
            physical_device,
            properties,
            memory_properties,
            device,
            queue_family,
            validating: options.validate,
            timestamp_valid_bits: family.timestamp_valid_bits,
            occlusion_query_precise: features.occlusion_query_precise == vk::TRUE,
            shader_float16,
            shader_float64: features.shader_float64 == vk::TRUE,
            fragment_stores: features.fragment_stores_and_atomics == vk::TRUE,
            imageless_framebuffer,
            vertex_input_dynamic,
            dynamic_blend,
            push_descriptor,
            external_memory_fd,
            queue: Mutex::new(queue),
            command_pool: Mutex::new(command_pool),
            descriptor_pool: Mutex::new(descriptor_pool),
            owned: Mutex::new(Vec::new()),
            messenger,
        })
    }

    /// Hands `handle` to the context, which destroys it (in reverse order of handing) when
    /// dropped; returns it for use until then.
    pub fn own<T: Owned>(&self, handle: T) -> T {
        self.owned
            .lock()
            .unwrap()
            .push(Box::new(move |d| unsafe { handle.destroy(d) }));
        handle
    }

    pub fn fence(&self, signaled: bool) -> Result<vk::Fence> {
        let flags = if signaled {
            vk::FenceCreateFlags::SIGNALED
        } else {
            vk::FenceCreateFlags::empty()
        };
        let info = vk::FenceCreateInfo::default().flags(flags);
        unsafe { self.device.create_fence(&info, None) }
            .check("vkCreateFence")
            .map(|f| self.own(f))
    }

    pub fn timeline_semaphore(&self, initial: u64) -> Result<vk::Semaphore> {
        let mut timeline = vk::SemaphoreTypeCreateInfo::default()
            .semaphore_type(vk::SemaphoreType::TIMELINE)
            .initial_value(initial);
        let info = vk::SemaphoreCreateInfo::default().push_next(&mut timeline);
        unsafe { self.device.create_semaphore(&info, None) }
            .check("vkCreateSemaphore")
            .map(|s| self.own(s))
    }

    pub fn command_pool(&self) -> Result<vk::CommandPool> {
        let info = vk::CommandPoolCreateInfo::default().queue_family_index(self.queue_family);
        unsafe { self.device.create_command_pool(&info, None) }
            .check("vkCreateCommandPool")
            .map(|p| self.own(p))
    }

    pub fn allocate_command_buffers(
        &self,
        pool: vk::CommandPool,
        level: vk::CommandBufferLevel,
        count: u32,
    ) -> Result<Vec<vk::CommandBuffer>> {
        let info = vk::CommandBufferAllocateInfo::default()
            .command_pool(pool)
            .level(level)
            .command_buffer_count(count);
        unsafe { self.device.allocate_command_buffers(&info) }.check("vkAllocateCommandBuffers")
    }

    pub fn begin(&self, cmd: vk::CommandBuffer, flags: vk::CommandBufferUsageFlags) -> Result<()> {
        let info = vk::CommandBufferBeginInfo::default().flags(flags);
        unsafe { self.device.begin_command_buffer(cmd, &info) }.check("vkBeginCommandBuffer")
    }

    pub fn end(&self, cmd: vk::CommandBuffer) -> Result<()> {
        unsafe { self.device.end_command_buffer(cmd) }.check("vkEndCommandBuffer")
    }

    /// `vkQueueSubmit` (the queue is externally synchronized, hence the lock).
    pub fn submit(&self, submits: &[vk::SubmitInfo<'_>], fence: vk::Fence) -> Result<()> {
        let queue = self.queue.lock().unwrap();
        unsafe { self.device.queue_submit(*queue, submits, fence) }.check("vkQueueSubmit")
    }

    /// The queue, for calls that do not submit (`vkQueuePresentKHR` …).
    pub fn queue(&self) -> vk::Queue {
        *self.queue.lock().unwrap()
    }

    pub fn wait_idle(&self) -> Result<()> {
        let queue = self.queue.lock().unwrap();
        unsafe { self.device.queue_wait_idle(*queue) }.check("vkQueueWaitIdle")
    }

    pub fn wait_fence(&self, fence: vk::Fence) -> Result<()> {
        unsafe { self.device.wait_for_fences(&[fence], true, TIMEOUT_NS) }.check("vkWaitForFences")
    }

    /// Submits `cmds` in one batch and waits for them.
    pub fn submit_and_wait(&self, cmds: &[vk::CommandBuffer]) -> Result<()> {
        let info = vk::FenceCreateInfo::default();
        let fence = unsafe { self.device.create_fence(&info, None) }.check("vkCreateFence")?;
        let submit = vk::SubmitInfo::default().command_buffers(cmds);
        let result = self
            .submit(&[submit], fence)
            .and_then(|()| self.wait_fence(fence));
        unsafe { self.device.destroy_fence(fence, None) };
        result
    }

    /// Records a primary command buffer with `record`, submits it and waits for it.
    pub fn run_commands(&self, record: impl FnOnce(vk::CommandBuffer) -> Result<()>) -> Result<()> {
        let pool = self.command_pool.lock().unwrap();
        let cmd = self.allocate_command_buffers(*pool, vk::CommandBufferLevel::PRIMARY, 1)?[0];
        let result = self
            .begin(cmd, vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT)
            .and_then(|()| record(cmd))
            .and_then(|()| self.end(cmd))
            .and_then(|()| self.submit_and_wait(&[cmd]));
        unsafe { self.device.free_command_buffers(*pool, &[cmd]) };
        result
    }

    /// A descriptor set from the context's pool.
    pub fn descriptor_set(&self, layout: vk::DescriptorSetLayout) -> Result<vk::DescriptorSet> {
        let pool = self.descriptor_pool.lock().unwrap();
        let layouts = [layout];
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(*pool)
            .set_layouts(&layouts);
        Ok(unsafe { self.device.allocate_descriptor_sets(&info) }
            .check("vkAllocateDescriptorSets")?[0])
    }

    /// `driverName (driverInfo)` from VkPhysicalDeviceDriverProperties.
    pub fn driver_description(&self) -> String {
        let mut driver = vk::PhysicalDeviceDriverProperties::default();
        let mut props = vk::PhysicalDeviceProperties2::default().push_next(&mut driver);
        unsafe {
            self.instance
                .get_physical_device_properties2(self.physical_device, &mut props)
        };
        let name = driver.driver_name_as_c_str().unwrap_or_default();
        let info = driver.driver_info_as_c_str().unwrap_or_default();
        format!("{} ({})", name.to_string_lossy(), info.to_string_lossy())
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        unsafe {
            // Nothing useful to do about a lost device while tearing down.
            let _ = self.device.device_wait_idle();
            let owned = std::mem::take(self.owned.get_mut().unwrap());
            for destroy in owned.into_iter().rev() {
                destroy(&self.device);
            }
            self.device
                .destroy_descriptor_pool(*self.descriptor_pool.get_mut().unwrap(), None);
            self.device
                .destroy_command_pool(*self.command_pool.get_mut().unwrap(), None);
            self.device.destroy_device(None);
            if let Some((utils, messenger)) = self.messenger.take() {
                utils.destroy_debug_utils_messenger(messenger, None);
            }
            self.instance.destroy_instance(None);
        }
    }
}
