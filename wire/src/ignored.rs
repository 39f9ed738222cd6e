//! Members Vulkan says are ignored under some condition: the one table of them.
//!
//! An application may leave anything in such a member, and a layer between it and the driver
//! (the Khronos validation layer wraps handles and unwraps only the members that matter) may
//! pass a value that is no handle at all. A driver in the same process never looks; Airlock's
//! encoder would read the pointer or send the handle, and its server would refuse the id. So the
//! client's encoder consults this table for every input struct and sends an ignored member as
//! absent (`NULL`, `VK_NULL_HANDLE`, a count of 0): nothing ignored is read, looked up or sent.
//!
//! Covered: the handle and pointer members (and the counts of those pointers) of the structures
//! Airlock carries whose descriptions in the Vulkan 1.3.239 specification say they are ignored,
//! or may be invalid, under a condition the ICD can evaluate. Each rule names its source.
//! Not covered: depth/stencil and colour-blend state that a subpass of a render pass object does
//! not use (the ICD does not keep render passes); pipeline libraries, whose parts decide what
//! they ignore, travel as given.

use crate::desc::StructDesc;
use ash::vk;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Where a struct being encoded sits: its memory, and what encloses it, up to the command's
/// argument list (whose `name` is the command's and whose members are 64-bit words).
///
/// Only the encoder makes scopes, of the application's valid inputs: every pointer a rule
/// follows is one the encoder itself would read (Vulkan requires them valid), so reading
/// through a scope is sound as long as the rule reads the struct its `structure` names.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub(crate) name: &'static str,
    pub(crate) p: *const u8,
    pub(crate) outer: Option<&'a Scope<'a>>,
}

impl<'a> Scope<'a> {
    /// The memory as a `T`: the struct this scope names.
    pub fn get<T>(&self) -> &'a T {
        // SAFETY: see the type; the rules call this with the struct the scope names.
        unsafe { &*(self.p as *const T) }
    }

    /// This scope or the nearest enclosing one named `name`.
    pub fn find(&self, name: &str) -> Option<&Scope<'a>> {
        let mut s = Some(self);
        while let Some(x) = s {
            if x.name == name {
                return Some(x);
            }
            s = x.outer;
        }
        None
    }

    /// Argument `i` of a command's argument list (a scope found by the command's name).
    pub fn arg(&self, i: usize) -> u64 {
        // SAFETY: a command's scope is its argument array, which the rules index within.
        unsafe { std::ptr::read_unaligned((self.p as *const u64).add(i)) }
    }
}

/// What the application's objects are, for the conditions that depend on them; the ICD
/// answers from what it keeps.
pub trait Facts {
    /// Whether `command_buffer` (the application's handle) was allocated primary.
    fn is_primary(&self, command_buffer: u64) -> bool;
    /// Whether `binding` of the layout of descriptor set `set` has immutable samplers.
    fn set_binding_immutable(&self, set: u64, binding: u32) -> bool;
    /// Whether `binding` of set number `set` of pipeline layout `layout` has immutable samplers.
    fn layout_binding_immutable(&self, layout: u64, set: u32, binding: u32) -> bool;
}

/// Members of one structure ignored when `when` holds.
pub struct Rule {
    pub structure: &'static str,
    pub members: &'static [&'static str],
    pub when: fn(&Scope, &dyn Facts) -> bool,
    /// Where the specification says so (chapter file of Vulkan-Docs and the member).
    pub spec: &'static str,
}

fn image_source(t: vk::DescriptorType) -> bool {
    matches!(
        t,
        vk::DescriptorType::SAMPLER
            | vk::DescriptorType::COMBINED_IMAGE_SAMPLER
            | vk::DescriptorType::SAMPLED_IMAGE
            | vk::DescriptorType::STORAGE_IMAGE
            | vk::DescriptorType::INPUT_ATTACHMENT
    )
}

fn buffer_source(t: vk::DescriptorType) -> bool {
    matches!(
        t,
        vk::DescriptorType::UNIFORM_BUFFER
            | vk::DescriptorType::STORAGE_BUFFER
            | vk::DescriptorType::UNIFORM_BUFFER_DYNAMIC
            | vk::DescriptorType::STORAGE_BUFFER_DYNAMIC
    )
}

fn texel_source(t: vk::DescriptorType) -> bool {
    matches!(
        t,
        vk::DescriptorType::UNIFORM_TEXEL_BUFFER | vk::DescriptorType::STORAGE_TEXEL_BUFFER
    )
}

fn takes_sampler(t: vk::DescriptorType) -> bool {
    matches!(
        t,
        vk::DescriptorType::SAMPLER | vk::DescriptorType::COMBINED_IMAGE_SAMPLER
    )
}

/// The application's array of `n` elements at `p` (empty when NULL): a member of a struct
/// being encoded, valid as Vulkan requires (see [`Scope`]).
fn slice<'a, T>(p: *const T, n: u32) -> &'a [T] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(p, n as usize) }
    }
}

/// A pointer member of a struct being encoded (see [`Scope`]).
fn deref<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: as above.
    unsafe { p.as_ref() }
}

/// The write (`VkWriteDescriptorSet`) enclosing a scope, if any.
fn write<'a>(s: &Scope<'a>) -> Option<&'a vk::WriteDescriptorSet<'a>> {
    s.find("VkWriteDescriptorSet").map(|w| w.get())
}

/// Whether the binding a write updates has immutable samplers: for push descriptors the
/// binding of the pipeline layout's set, else that of the destination set's layout.
fn writes_immutable_samplers(s: &Scope, facts: &dyn Facts) -> bool {
    let Some(w) = write(s) else { return false };
    if !takes_sampler(w.descriptor_type) {
        return false;
    }
    match s.find("vkCmdPushDescriptorSetKHR") {
        Some(cmd) => facts.layout_binding_immutable(cmd.arg(2), cmd.arg(3) as u32, w.dst_binding),
        None => facts.set_binding_immutable(vk::Handle::as_raw(w.dst_set), w.dst_binding),
    }
}

fn graphics<'a>(s: &Scope<'a>) -> Option<&'a vk::GraphicsPipelineCreateInfo<'a>> {
    s.find("VkGraphicsPipelineCreateInfo").map(|g| g.get())
}

/// Whether the graphics pipeline enclosing `s` sets any of `states` dynamically.
fn dynamic(s: &Scope, states: &[vk::DynamicState]) -> bool {
    graphics(s)
        .and_then(|g| deref(g.p_dynamic_state))
        .is_some_and(|d| {
            slice(d.p_dynamic_states, d.dynamic_state_count)
                .iter()
                .any(|x| states.contains(x))
        })
}

/// Whether it sets all of `states` dynamically.
fn all_dynamic(s: &Scope, states: &[vk::DynamicState]) -> bool {
    states.iter().all(|x| dynamic(s, std::slice::from_ref(x)))
}

/// A complete graphics pipeline (not a library, whose parts decide what it ignores).
fn complete(g: &vk::GraphicsPipelineCreateInfo) -> bool {
    !g.flags.contains(vk::PipelineCreateFlags::LIBRARY_KHR)
}

/// Whether a complete graphics pipeline discards rasterization statically.
fn discards(s: &Scope) -> bool {
    let Some(g) = graphics(s) else { return false };
    let raster = deref(g.p_rasterization_state);
    complete(g)
        && raster.is_some_and(|r| r.rasterizer_discard_enable == vk::TRUE)
        && !dynamic(s, &[vk::DynamicState::RASTERIZER_DISCARD_ENABLE])
}

/// The dynamic-rendering formats of a complete graphics pipeline without a render pass
/// (`VkPipelineRenderingCreateInfo`; none chained means no attachments).
fn rendering<'a>(
    g: &'a vk::GraphicsPipelineCreateInfo<'a>,
) -> Option<Option<&'a vk::PipelineRenderingCreateInfo<'a>>> {
    if !complete(g) || g.render_pass != vk::RenderPass::null() {
        return None;
    }
    let mut n = g.p_next as *const vk::BaseInStructure;
    while let Some(b) = deref(n) {
        if b.s_type == vk::StructureType::PIPELINE_RENDERING_CREATE_INFO {
            return Some(deref(n as *const vk::PipelineRenderingCreateInfo));
        }
        n = b.p_next;
    }
    Some(None)
}

fn derives(s: &Scope) -> bool {
    let flags = match s.name {
        "VkGraphicsPipelineCreateInfo" => s.get::<vk::GraphicsPipelineCreateInfo>().flags,
        _ => s.get::<vk::ComputePipelineCreateInfo>().flags,
    };
    flags.contains(vk::PipelineCreateFlags::DERIVATIVE)
}

/// The begin info enclosing a scope continues a render pass.
fn continues(s: &Scope) -> bool {
    s.find("VkCommandBufferBeginInfo").is_some_and(|b| {
        b.get::<vk::CommandBufferBeginInfo>()
            .flags
            .contains(vk::CommandBufferUsageFlags::RENDER_PASS_CONTINUE)
    })
}

/// Every rule. Adding one: name the structure and members as vk.xml spells them, say when, and
/// where the specification says so; `tests::every_rule_names_members_that_can_be_absent` checks
/// the names and that each member can travel as absent.
pub static RULES: &[Rule] = &[
    Rule {
        structure: "VkWriteDescriptorSet",
        members: &["pImageInfo"],
        when: |s, _| !image_source(s.get::<vk::WriteDescriptorSet>().descriptor_type),
        spec: "descriptorsets.adoc: pImageInfo, pBufferInfo, pTexelBufferView are accessed only for the descriptor type that reads them",
    },
    Rule {
        structure: "VkWriteDescriptorSet",
        members: &["pBufferInfo"],
        when: |s, _| !buffer_source(s.get::<vk::WriteDescriptorSet>().descriptor_type),
        spec: "descriptorsets.adoc: as above",
    },
    Rule {
        structure: "VkWriteDescriptorSet",
        members: &["pTexelBufferView"],
        when: |s, _| !texel_source(s.get::<vk::WriteDescriptorSet>().descriptor_type),
        spec: "descriptorsets.adoc: as above",
    },
    Rule {
        structure: "VkWriteDescriptorSet",
        members: &["dstSet"],
        when: |s, _| s.find("vkCmdPushDescriptorSetKHR").is_some(),
        spec: "descriptorsets.adoc, vkCmdPushDescriptorSetKHR: the dstSet member is ignored",
    },
    Rule {
        structure: "VkDescriptorImageInfo",
        members: &["sampler"],
        when: |s, f| {
            write(s).is_some_and(|w| !takes_sampler(w.descriptor_type))
                || writes_immutable_samplers(s, f)
        },
        spec: "descriptorsets.adoc, VkDescriptorImageInfo: sampler is used for SAMPLER and COMBINED_IMAGE_SAMPLER if the binding does not use immutable samplers",
    },
    Rule {
        structure: "VkDescriptorImageInfo",
        members: &["imageView"],
        when: |s, _| write(s).is_some_and(|w| w.descriptor_type == vk::DescriptorType::SAMPLER),
        spec: "descriptorsets.adoc, VkDescriptorImageInfo: imageView is not used for SAMPLER",
    },
    Rule {
        structure: "VkDescriptorSetLayoutBinding",
        members: &["pImmutableSamplers"],
        when: |s, _| !takes_sampler(s.get::<vk::DescriptorSetLayoutBinding>().descriptor_type),
        spec: "descriptorsets.adoc, VkDescriptorSetLayoutBinding: for other types pImmutableSamplers is ignored",
    },
    Rule {
        structure: "VkDescriptorUpdateTemplateCreateInfo",
        members: &["descriptorSetLayout"],
        when: |s, _| {
            s.get::<vk::DescriptorUpdateTemplateCreateInfo>().template_type
                != vk::DescriptorUpdateTemplateType::DESCRIPTOR_SET
        },
        spec: "descriptorsets.adoc: descriptorSetLayout is ignored if templateType is not DESCRIPTOR_SET",
    },
    Rule {
        structure: "VkDescriptorUpdateTemplateCreateInfo",
        members: &["pipelineLayout"],
        when: |s, _| {
            s.get::<vk::DescriptorUpdateTemplateCreateInfo>().template_type
                != vk::DescriptorUpdateTemplateType::PUSH_DESCRIPTORS_KHR
        },
        spec: "descriptorsets.adoc: pipelineBindPoint, pipelineLayout and set are ignored if templateType is not PUSH_DESCRIPTORS_KHR",
    },
    Rule {
        structure: "VkGraphicsPipelineCreateInfo",
        members: &["basePipelineHandle"],
        when: |s, _| !derives(s),
        spec: "pipelines.adoc, pipeline derivatives: without DERIVATIVE_BIT the base pipeline members are ignored",
    },
    Rule {
        structure: "VkComputePipelineCreateInfo",
        members: &["basePipelineHandle"],
        when: |s, _| !derives(s),
        spec: "pipelines.adoc, pipeline derivatives: as above",
    },
    Rule {
        structure: "VkGraphicsPipelineCreateInfo",
        members: &["pTessellationState"],
        when: |s, _| {
            let g = s.get::<vk::GraphicsPipelineCreateInfo>();
            complete(g)
                && !slice(g.p_stages, g.stage_count).iter().any(|st| {
                    st.stage.intersects(
                        vk::ShaderStageFlags::TESSELLATION_CONTROL
                            | vk::ShaderStageFlags::TESSELLATION_EVALUATION,
                    )
                })
        },
        spec: "pipelines.adoc, VkGraphicsPipelineCreateInfo: pTessellationState is used by tessellation shaders only",
    },
    Rule {
        structure: "VkGraphicsPipelineCreateInfo",
        members: &[
            "pViewportState",
            "pMultisampleState",
            "pDepthStencilState",
            "pColorBlendState",
        ],
        when: |s, _| discards(s),
        spec: "pipelines.adoc, VkGraphicsPipelineCreateInfo: viewport, multisample, depth/stencil and blend state are used when rasterization is enabled",
    },
    Rule {
        structure: "VkGraphicsPipelineCreateInfo",
        members: &["pDepthStencilState"],
        when: |s, _| {
            rendering(s.get()).is_some_and(|r| {
                r.is_none_or(|r| {
                    r.depth_attachment_format == vk::Format::UNDEFINED
                        && r.stencil_attachment_format == vk::Format::UNDEFINED
                })
            })
        },
        spec: "pipelines.adoc, VkGraphicsPipelineCreateInfo: pDepthStencilState is used for depth or stencil attachments accessed during rendering",
    },
    Rule {
        structure: "VkGraphicsPipelineCreateInfo",
        members: &["pColorBlendState"],
        when: |s, _| {
            rendering(s.get()).is_some_and(|r| r.is_none_or(|r| r.color_attachment_count == 0))
        },
        spec: "pipelines.adoc, VkGraphicsPipelineCreateInfo: pColorBlendState is used for color attachments accessed during rendering",
    },
    Rule {
        structure: "VkGraphicsPipelineCreateInfo",
        members: &["pVertexInputState"],
        when: |s, _| dynamic(s, &[vk::DynamicState::VERTEX_INPUT_EXT]),
        spec: "pipelines.adoc, VkGraphicsPipelineCreateInfo: pVertexInputState is ignored with VK_DYNAMIC_STATE_VERTEX_INPUT_EXT",
    },
    Rule {
        structure: "VkPipelineViewportStateCreateInfo",
        members: &["pViewports"],
        when: |s, _| {
            dynamic(
                s,
                &[
                    vk::DynamicState::VIEWPORT,
                    vk::DynamicState::VIEWPORT_WITH_COUNT,
                ],
            )
        },
        spec: "vertexpostproc.adoc, VkPipelineViewportStateCreateInfo: if the viewport state is dynamic, pViewports is ignored",
    },
    Rule {
        structure: "VkPipelineViewportStateCreateInfo",
        members: &["pScissors"],
        when: |s, _| {
            dynamic(
                s,
                &[
                    vk::DynamicState::SCISSOR,
                    vk::DynamicState::SCISSOR_WITH_COUNT,
                ],
            )
        },
        spec: "vertexpostproc.adoc, VkPipelineViewportStateCreateInfo: if the scissor state is dynamic, pScissors is ignored",
    },
    Rule {
        structure: "VkPipelineColorBlendStateCreateInfo",
        members: &["pAttachments"],
        when: |s, _| {
            all_dynamic(
                s,
                &[
                    vk::DynamicState::COLOR_BLEND_ENABLE_EXT,
                    vk::DynamicState::COLOR_BLEND_EQUATION_EXT,
                    vk::DynamicState::COLOR_WRITE_MASK_EXT,
                ],
            )
        },
        spec: "framebuffer.adoc, VkPipelineColorBlendStateCreateInfo: pAttachments is ignored when blend enable, equation and write mask are all dynamic",
    },
    Rule {
        structure: "VkPipelineRenderingCreateInfo",
        members: &["colorAttachmentCount", "pColorAttachmentFormats"],
        when: |s, _| graphics(s).is_some_and(|g| g.render_pass != vk::RenderPass::null()),
        spec: "pipelines.adoc, VkPipelineRenderingCreateInfo: with a valid render pass its parameters are ignored",
    },
    Rule {
        structure: "VkCommandBufferBeginInfo",
        members: &["pInheritanceInfo"],
        when: |s, f| {
            s.find("vkBeginCommandBuffer")
                .is_some_and(|c| f.is_primary(c.arg(0)))
        },
        spec: "cmdbuffers.adoc, VkCommandBufferBeginInfo: for a primary command buffer pInheritanceInfo is ignored",
    },
    Rule {
        structure: "VkCommandBufferInheritanceInfo",
        members: &["renderPass", "framebuffer"],
        when: |s, _| !continues(s),
        spec: "cmdbuffers.adoc: without RENDER_PASS_CONTINUE_BIT renderPass, subpass and framebuffer are ignored",
    },
    Rule {
        structure: "VkCommandBufferInheritanceRenderingInfo",
        members: &["colorAttachmentCount", "pColorAttachmentFormats"],
        when: |s, _| {
            let pass = s
                .find("VkCommandBufferInheritanceInfo")
                .is_some_and(|i| {
                    i.get::<vk::CommandBufferInheritanceInfo>().render_pass
                        != vk::RenderPass::null()
                });
            pass || !continues(s)
        },
        spec: "cmdbuffers.adoc, VkCommandBufferInheritanceRenderingInfo: ignored with a render pass or without RENDER_PASS_CONTINUE_BIT",
    },
    Rule {
        structure: "VkBufferCreateInfo",
        members: &["queueFamilyIndexCount", "pQueueFamilyIndices"],
        when: |s, _| s.get::<vk::BufferCreateInfo>().sharing_mode != vk::SharingMode::CONCURRENT,
        spec: "resources.adoc, VkBufferCreateInfo: ignored if sharingMode is not CONCURRENT",
    },
    Rule {
        structure: "VkImageCreateInfo",
        members: &["queueFamilyIndexCount", "pQueueFamilyIndices"],
        when: |s, _| s.get::<vk::ImageCreateInfo>().sharing_mode != vk::SharingMode::CONCURRENT,
        spec: "resources.adoc, VkImageCreateInfo: ignored if sharingMode is not CONCURRENT",
    },
    Rule {
        structure: "VkFramebufferCreateInfo",
        members: &["pAttachments"],
        when: |s, _| {
            s.get::<vk::FramebufferCreateInfo>()
                .flags
                .contains(vk::FramebufferCreateFlags::IMAGELESS)
        },
        spec: "renderpass.adoc, VkFramebufferCreateInfo: with IMAGELESS_BIT pAttachments is ignored",
    },
    Rule {
        structure: "VkRenderingAttachmentInfo",
        members: &["resolveImageView"],
        when: |s, _| {
            let a = s.get::<vk::RenderingAttachmentInfo>();
            a.resolve_mode == vk::ResolveModeFlags::NONE || a.image_view == vk::ImageView::null()
        },
        spec: "renderpass.adoc, VkRenderingAttachmentInfo: resolveImageView is ignored with resolveMode NONE, and every member with a null imageView",
    },
];

/// The rules of each structure.
fn index() -> &'static HashMap<&'static str, Vec<&'static Rule>> {
    static INDEX: OnceLock<HashMap<&'static str, Vec<&'static Rule>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut m: HashMap<&'static str, Vec<&'static Rule>> = HashMap::new();
        for r in RULES {
            m.entry(r.structure).or_default().push(r);
        }
        m
    })
}

/// Whether any rule concerns structure `d` (most have none).
pub fn has_rules(d: &StructDesc) -> bool {
    index().contains_key(d.name)
}

/// The fields of `d` (bit i: `d.fields[i]`) that are ignored where the struct sits (`scope`,
/// which the encoder made for a `d`).
pub(crate) fn ignored_fields(d: &StructDesc, scope: &Scope, facts: &dyn Facts) -> u64 {
    let Some(rules) = index().get(d.name) else {
        return 0;
    };
    let mut mask = 0u64;
    for r in rules {
        if (r.when)(scope, facts) {
            for (i, f) in d.fields.iter().enumerate().take(64) {
                if r.members.contains(&f.name) {
                    mask |= 1 << i;
                }
            }
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desc::{Kind, Len, Ty};
    use crate::generated::structs::ALL as ALL_STRUCTS;

    #[test]
    fn every_rule_names_members_that_can_be_absent() {
        for r in RULES {
            let d = ALL_STRUCTS
                .iter()
                .find(|d| d.name == r.structure)
                .unwrap_or_else(|| panic!("{} is not a carried structure", r.structure));
            assert!(d.fields.len() <= 64, "{}", d.name);
            for m in r.members {
                let f = d
                    .fields
                    .iter()
                    .find(|f| f.name == *m)
                    .unwrap_or_else(|| panic!("{} has no member {m}", d.name));
                // A required handle (Kind::Object) or an inline struct cannot travel as absent;
                // nor can a required pointer, unless its count travels as 0 with it.
                let counted = |len: Len| match len {
                    Len::Sibling(i) => r.members.contains(&d.fields[i as usize].name),
                    _ => false,
                };
                let absent_ok = match f.kind {
                    Kind::Value(Ty::Struct(_) | Ty::Union(..)) => false,
                    Kind::Value(_) => true,
                    Kind::Ptr { optional, .. } | Kind::Str { optional } => optional,
                    Kind::Array { optional, len, .. } => optional || counted(len),
                    Kind::Bytes { len } | Kind::StrArray { len } => counted(len),
                    _ => false,
                };
                assert!(
                    absent_ok,
                    "{}.{m} ({:?}) cannot travel as absent",
                    d.name, f.kind
                );
            }
            assert!(!r.spec.is_empty());
        }
    }
}
