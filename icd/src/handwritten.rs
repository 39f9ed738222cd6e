//! Every entry point written by hand, in one list: the generated table (`generated::entry`)
//! points here for the commands `codegen` lists as hand-written. Each lives in the module of the
//! object family it concerns.

pub use crate::command_buffer::{
    vkAllocateCommandBuffers, vkBeginCommandBuffer, vkCmdDrawMultiEXT, vkCmdDrawMultiIndexedEXT,
    vkCmdPushDescriptorSetWithTemplateKHR, vkDestroyCommandPool, vkEndCommandBuffer,
    vkFreeCommandBuffers, vkResetCommandBuffer,
};
pub use crate::descriptor::{
    vkAllocateDescriptorSets, vkCreateDescriptorPool, vkCreateDescriptorSetLayout,
    vkCreateDescriptorUpdateTemplate, vkCreatePipelineLayout, vkDestroyDescriptorPool,
    vkDestroyDescriptorSetLayout, vkDestroyDescriptorUpdateTemplate, vkDestroyPipelineLayout,
    vkFreeDescriptorSets, vkResetDescriptorPool, vkUpdateDescriptorSetWithTemplate,
    vkUpdateDescriptorSets,
};
pub use crate::device::{vkCreateDevice, vkDestroyDevice, vkEnumerateDeviceExtensionProperties};
pub use crate::external::{vkGetMemoryFdKHR, vkGetMemoryFdPropertiesKHR};
pub use crate::instance::{
    vkCreateInstance, vkDestroyInstance, vkEnumerateDeviceLayerProperties,
    vkEnumerateInstanceExtensionProperties, vkEnumerateInstanceLayerProperties,
};
pub use crate::memory::{vkAllocateMemory, vkFreeMemory, vkMapMemory, vkUnmapMemory};
pub use crate::physical_device::{
    vkGetPhysicalDeviceImageFormatProperties, vkGetPhysicalDeviceImageFormatProperties2,
};
pub use crate::pipeline::{vkCreateComputePipelines, vkCreateGraphicsPipelines};
pub use crate::private_data::{
    vkCreatePrivateDataSlot, vkDestroyPrivateDataSlot, vkGetPrivateData, vkSetPrivateData,
};
pub use crate::queue::{
    vkCreateEvent, vkCreateFence, vkCreateSemaphore, vkDestroyEvent, vkDestroyFence,
    vkDestroySemaphore, vkGetDeviceQueue, vkGetDeviceQueue2, vkGetEventStatus, vkGetFenceStatus,
    vkGetSemaphoreCounterValue, vkQueueBindSparse, vkQueueSubmit, vkQueueSubmit2, vkResetFences,
    vkWaitForFences, vkWaitSemaphores,
};
pub use crate::surface::{
    vkCreateHeadlessSurfaceEXT, vkCreateWaylandSurfaceKHR, vkCreateXcbSurfaceKHR,
    vkCreateXlibSurfaceKHR, vkDestroySurfaceKHR, vkGetDeviceGroupPresentCapabilitiesKHR,
    vkGetDeviceGroupSurfacePresentModesKHR, vkGetPhysicalDevicePresentRectanglesKHR,
    vkGetPhysicalDeviceSurfaceCapabilities2KHR, vkGetPhysicalDeviceSurfaceCapabilitiesKHR,
    vkGetPhysicalDeviceSurfaceFormats2KHR, vkGetPhysicalDeviceSurfaceFormatsKHR,
    vkGetPhysicalDeviceSurfacePresentModesKHR, vkGetPhysicalDeviceSurfaceSupportKHR,
    vkGetPhysicalDeviceWaylandPresentationSupportKHR, vkGetPhysicalDeviceXcbPresentationSupportKHR,
    vkGetPhysicalDeviceXlibPresentationSupportKHR,
};
pub use crate::swapchain::{
    vkAcquireNextImage2KHR, vkAcquireNextImageKHR, vkBindImageMemory2, vkCreateSwapchainKHR,
    vkDestroySwapchainKHR, vkGetSwapchainImagesKHR, vkQueuePresentKHR,
};
