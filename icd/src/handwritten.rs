//! Every entry point written by hand, in one list: the generated table (`generated::entry`)
//! points here for the commands `codegen` lists as hand-written. Each lives in the module of the
//! object it concerns.

pub use crate::command_buffer::{
    vkAllocateCommandBuffers, vkBeginCommandBuffer, vkDestroyCommandPool, vkEndCommandBuffer,
    vkFreeCommandBuffers, vkResetCommandBuffer,
};
pub use crate::descriptor::{
    vkCmdPushDescriptorSetKHR, vkCmdPushDescriptorSetWithTemplateKHR, vkCreateDescriptorSetLayout,
    vkCreateDescriptorUpdateTemplate, vkDestroyDescriptorUpdateTemplate,
    vkGetDescriptorSetLayoutSupport, vkUpdateDescriptorSetWithTemplate, vkUpdateDescriptorSets,
};
pub use crate::device::{vkCreateDevice, vkDestroyDevice};
pub use crate::draw::{vkCmdDrawMultiEXT, vkCmdDrawMultiIndexedEXT};
pub use crate::external::{vkGetMemoryFdKHR, vkGetMemoryFdPropertiesKHR};
pub use crate::instance::{
    vkCreateInstance, vkDestroyInstance, vkEnumerateDeviceLayerProperties,
    vkEnumerateInstanceExtensionProperties, vkEnumerateInstanceLayerProperties,
    vkGetDeviceProcAddr, vkGetInstanceProcAddr,
};
pub use crate::memory::{vkAllocateMemory, vkFreeMemory, vkMapMemory, vkUnmapMemory};
pub use crate::pipeline::{vkCreateComputePipelines, vkCreateGraphicsPipelines};
pub use crate::private_data::{
    vkCreatePrivateDataSlot, vkDestroyPrivateDataSlot, vkGetPrivateData, vkSetPrivateData,
};
pub use crate::sync::vkResetFences;
