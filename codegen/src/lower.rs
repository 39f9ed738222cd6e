//! Decides how each struct member and command parameter travels, as `wire::desc` expressions.

use crate::model::{Category, CommandDef, Decl, Model};
use std::collections::{BTreeMap, BTreeSet};

/// Commands whose ICD entry point is written by hand (`icd/src/handwritten.rs` lists them):
/// they answer locally, hand over memory, batch recorded commands or manage objects around the
/// generic call.
pub const HANDWRITTEN: &[&str] = &[
    // Window-system integration, the ICD's alone (icd/src/surface.rs, icd/src/swapchain.rs).
    "vkDestroySurfaceKHR",
    "vkGetPhysicalDeviceSurfaceSupportKHR",
    "vkGetPhysicalDeviceSurfaceCapabilitiesKHR",
    "vkGetPhysicalDeviceSurfaceFormatsKHR",
    "vkGetPhysicalDeviceSurfacePresentModesKHR",
    "vkGetPhysicalDeviceSurfaceCapabilities2KHR",
    "vkGetPhysicalDeviceSurfaceFormats2KHR",
    "vkCreateXcbSurfaceKHR",
    "vkGetPhysicalDeviceXcbPresentationSupportKHR",
    "vkCreateXlibSurfaceKHR",
    "vkGetPhysicalDeviceXlibPresentationSupportKHR",
    "vkCreateWaylandSurfaceKHR",
    "vkGetPhysicalDeviceWaylandPresentationSupportKHR",
    "vkCreateHeadlessSurfaceEXT",
    "vkGetPhysicalDevicePresentRectanglesKHR",
    "vkCreateSwapchainKHR",
    "vkDestroySwapchainKHR",
    "vkGetSwapchainImagesKHR",
    "vkAcquireNextImageKHR",
    "vkAcquireNextImage2KHR",
    "vkQueuePresentKHR",
    "vkGetDeviceGroupPresentCapabilitiesKHR",
    "vkGetDeviceGroupSurfacePresentModesKHR",
    // Carried, but the ICD adds its own extensions to the list (instance.rs, device.rs), and
    // a swapchain image's binding names the swapchain's memory (swapchain.rs).
    "vkEnumerateDeviceExtensionProperties",
    "vkBindImageMemory2",
    // Image format queries with no chain are kept apart (physical_device.rs).
    "vkGetPhysicalDeviceImageFormatProperties",
    "vkGetPhysicalDeviceImageFormatProperties2",
    "vkGetInstanceProcAddr",
    "vkGetDeviceProcAddr",
    "vkEnumerateInstanceExtensionProperties",
    "vkEnumerateInstanceLayerProperties",
    "vkEnumerateDeviceLayerProperties",
    "vkCreateInstance",
    "vkDestroyInstance",
    "vkCreateDevice",
    "vkDestroyDevice",
    "vkGetDeviceQueue",
    "vkGetDeviceQueue2",
    "vkCreatePrivateDataSlot",
    "vkDestroyPrivateDataSlot",
    "vkSetPrivateData",
    "vkGetPrivateData",
    "vkAllocateMemory",
    "vkMapMemory",
    "vkUnmapMemory",
    "vkFreeMemory",
    "vkGetMemoryFdKHR",
    "vkGetMemoryFdPropertiesKHR",
    "vkAllocateCommandBuffers",
    "vkFreeCommandBuffers",
    "vkDestroyCommandPool",
    "vkBeginCommandBuffer",
    "vkEndCommandBuffer",
    "vkResetCommandBuffer",
    "vkCreateDescriptorSetLayout",
    "vkDestroyDescriptorSetLayout",
    "vkAllocateDescriptorSets",
    "vkFreeDescriptorSets",
    "vkCreateDescriptorPool",
    "vkResetDescriptorPool",
    "vkDestroyDescriptorPool",
    "vkCreatePipelineLayout",
    "vkDestroyPipelineLayout",
    "vkUpdateDescriptorSets",
    "vkCreateDescriptorUpdateTemplate",
    "vkDestroyDescriptorUpdateTemplate",
    "vkUpdateDescriptorSetWithTemplate",
    "vkCmdPushDescriptorSetWithTemplateKHR",
    "vkResetFences",
    // Synchronization through the feedback region (icd/src/queue.rs).
    "vkCreateFence",
    "vkDestroyFence",
    "vkGetFenceStatus",
    "vkWaitForFences",
    "vkQueueSubmit",
    "vkQueueSubmit2",
    "vkQueueBindSparse",
    "vkCreateSemaphore",
    "vkDestroySemaphore",
    "vkGetSemaphoreCounterValue",
    "vkWaitSemaphores",
    "vkCreateEvent",
    "vkDestroyEvent",
    "vkGetEventStatus",
    "vkCmdDrawMultiEXT",
    "vkCmdDrawMultiIndexedEXT",
    // Their creation feedback is the ICD's to fill in (icd/src/pipeline.rs).
    "vkCreateComputePipelines",
    "vkCreateGraphicsPipelines",
];

/// The commands the server's families handle themselves (besides the host call): each gets a
/// typed view of its arguments (`server/src/generated/views.rs`).
pub const SERVER_HANDLED: &[&str] = &[
    "vkCreateInstance",
    "vkDestroyInstance",
    "vkGetPhysicalDeviceProperties2",
    "vkGetPhysicalDeviceMemoryProperties",
    "vkGetPhysicalDeviceMemoryProperties2",
    "vkGetPhysicalDeviceExternalBufferProperties",
    "vkGetPhysicalDeviceImageFormatProperties2",
    "vkGetPhysicalDeviceExternalSemaphoreProperties",
    "vkGetPhysicalDeviceExternalFenceProperties",
    "vkEnumerateDeviceExtensionProperties",
    "vkCreateDevice",
    "vkAllocateMemory",
    "vkGetMemoryFdKHR",
    "vkGetMemoryFdPropertiesKHR",
    "vkCreateBuffer",
    "vkCreateImage",
    "vkCreateSemaphore",
    "vkGetSemaphoreCounterValue",
    "vkSignalSemaphore",
    "vkWaitSemaphores",
    "vkQueueSubmit",
    "vkQueueSubmit2",
    "vkAllocateCommandBuffers",
    "vkBeginCommandBuffer",
    "vkEndCommandBuffer",
    "vkResetCommandBuffer",
    "vkFreeCommandBuffers",
    "vkResetCommandPool",
    "vkDestroyCommandPool",
    "vkCreateDescriptorSetLayout",
    "vkAllocateDescriptorSets",
    "vkResetDescriptorPool",
    "vkCreateQueryPool",
    "vkCreateGraphicsPipelines",
    "vkCreateComputePipelines",
    "vkCreateSampler",
    "vkCreateImageView",
    "vkDestroyImageView",
    "vkDestroyImage",
    "vkCreateRenderPass",
    "vkCreateRenderPass2",
    "vkDestroyPipelineLayout",
    "vkSetPrivateData",
    "vkGetPrivateData",
    "vkResetFences",
    "vkDestroyFence",
    "vkDestroySemaphore",
    "vkWaitForFences",
    "vkGetFenceStatus",
    "vkSetEvent",
    "vkResetEvent",
    "vkGetEventStatus",
];

/// Waits and compiles: run off the server's reader thread.
pub const BLOCKING: &[&str] = &[
    "vkWaitForFences",
    "vkWaitSemaphores",
    "vkQueueWaitIdle",
    "vkDeviceWaitIdle",
    "vkCreateGraphicsPipelines",
    "vkCreateComputePipelines",
    "vkGetQueryPoolResults",
    "vkGetEventStatus",
];

pub fn snake(name: &str) -> String {
    // ash's field names: heck's snake case, with `type` renamed.
    if name == "type" {
        return "ty".into();
    }
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    let mut lower_mode = false;
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let prev_upper = i > 0 && chars[i - 1].is_uppercase();
        if c == '_' {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            lower_mode = false;
            continue;
        }
        if c.is_uppercase()
            && prev_upper
            && next.is_some_and(|n| n.is_lowercase())
            && !out.ends_with('_')
        {
            out.push('_');
        }
        out.extend(c.to_lowercase());
        if c.is_lowercase() {
            lower_mode = true;
        } else if c.is_uppercase() {
            lower_mode = false;
        }
        if lower_mode && next.is_some_and(|n| n.is_uppercase()) {
            out.push('_');
        }
    }
    out
}

pub fn rust_type(name: &str) -> String {
    name.strip_prefix("Vk").unwrap_or(name).to_string()
}

pub fn stype_const(value: &str) -> String {
    format!(
        "vk::StructureType::{}",
        value.strip_prefix("VK_STRUCTURE_TYPE_").unwrap_or(value)
    )
}

pub fn objtype_const(value: &str) -> String {
    format!(
        "vk::ObjectType::{}",
        value.strip_prefix("VK_OBJECT_TYPE_").unwrap_or(value)
    )
}

pub struct Lowering<'m> {
    pub m: &'m Model,
    /// Supported structs and their lowered fields (Rust expressions for `Field`).
    pub structs: BTreeMap<String, Result<Vec<(String, String)>, String>>,
    pub lifetimes: BTreeMap<String, bool>,
}

impl<'m> Lowering<'m> {
    pub fn new(m: &'m Model) -> Self {
        Lowering {
            m,
            structs: BTreeMap::new(),
            lifetimes: BTreeMap::new(),
        }
    }

    /// The structs lowered so far that can be carried.
    pub fn carried(&self) -> BTreeSet<String> {
        self.structs
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether ash gives this struct a lifetime parameter (it has a pointer somewhere).
    pub fn has_lifetime(&mut self, name: &str) -> bool {
        let name = self.m.resolve(name).to_string();
        if let Some(&l) = self.lifetimes.get(&name) {
            return l;
        }
        self.lifetimes.insert(name.clone(), false);
        let Some(s) = self.m.structs.get(&name).cloned() else {
            return false;
        };
        let l = s.members.iter().any(|d| {
            d.ptr_depth > 0
                || (matches!(self.m.category(&d.ty), Category::Struct) && self.has_lifetime(&d.ty))
        });
        self.lifetimes.insert(name, l);
        l
    }

    pub fn rust_struct(&mut self, name: &str) -> String {
        let name = self.m.resolve(name).to_string();
        if self.has_lifetime(&name) {
            format!("vk::{}<'static>", rust_type(&name))
        } else {
            format!("vk::{}", rust_type(&name))
        }
    }

    fn array_len(&self, a: &str) -> Result<u32, String> {
        if let Ok(n) = a.parse() {
            return Ok(n);
        }
        self.m
            .constants
            .get(a)
            .and_then(|v| v.trim_end_matches('U').parse().ok())
            .ok_or_else(|| format!("unknown array size {a}"))
    }

    /// The `Ty` expression for a value of C type `ty`.
    pub fn ty(&mut self, ty: &str) -> Result<String, String> {
        Ok(match self.m.category(ty) {
            Category::Base(b) => match b {
                "u8" => "Ty::U8",
                "u16" => "Ty::U16",
                "u32" => "Ty::U32",
                "i32" => "Ty::I32",
                "u64" => "Ty::U64",
                "i64" => "Ty::I64",
                "f32" => "Ty::F32",
                "f64" => "Ty::F64",
                "usize" => "Ty::Usize",
                _ => return Err(format!("{ty} has no value type")),
            }
            .to_string(),
            Category::Enum => "Ty::I32".into(),
            Category::Bitmask { wide } => if wide { "Ty::U64" } else { "Ty::U32" }.into(),
            Category::Handle {
                dispatchable,
                objtype,
            } => {
                format!(
                    "Ty::{}({})",
                    if dispatchable {
                        "Dispatchable"
                    } else {
                        "Handle"
                    },
                    objtype_const(&objtype)
                )
            }
            Category::Struct => {
                let name = self.m.resolve(ty).to_string();
                self.lower_struct(&name)?;
                if self.m.structs[&name].is_union {
                    let r = self.rust_struct(&name);
                    format!("Ty::Union(size_of::<{r}>(), align_of::<{r}>())")
                } else {
                    format!("Ty::Struct(&S_{})", rust_type(&name))
                }
            }
            Category::FuncPointer | Category::Other => {
                return Err(format!("{ty} cannot cross processes"))
            }
        })
    }

    pub fn lower_struct(&mut self, name: &str) -> Result<(), String> {
        if let Some(r) = self.structs.get(name) {
            return r.as_ref().map(|_| ()).map_err(Clone::clone);
        }
        // Provisional entry breaks cycles; pointer cycles do not occur in selected structs.
        self.structs.insert(name.to_string(), Ok(Vec::new()));
        let s = self.m.structs[name].clone();
        let result = if s.is_union {
            s.members
                .iter()
                .find(|d| {
                    d.ptr_depth > 0
                        || !matches!(
                            self.m.category(&d.ty),
                            Category::Base(_)
                                | Category::Struct
                                | Category::Enum
                                | Category::Bitmask { .. }
                        )
                })
                .map_or(Ok(Vec::new()), |d| {
                    Err(format!("union {name} member {} is not plain data", d.name))
                })
                .and_then(|v| {
                    for d in &s.members {
                        if matches!(self.m.category(&d.ty), Category::Struct) {
                            self.lower_struct(self.m.resolve(&d.ty))?;
                            let inner = &self.m.structs[self.m.resolve(&d.ty)];
                            if !inner.is_union && inner.members.iter().any(|x| x.ptr_depth > 0) {
                                return Err(format!("union {name} holds pointers"));
                            }
                        }
                    }
                    Ok(v)
                })
        } else {
            let mut fields = Vec::new();
            let mut err = None;
            for d in &s.members {
                match self.member_kind(d, &s.members, false) {
                    Ok(kind) => fields.push((d.name.clone(), kind)),
                    Err(e) => {
                        err = Some(format!("{name}.{}: {e}", d.name));
                        break;
                    }
                }
            }
            if s.returned_only && err.is_none() {
                if let Some((f, k)) = fields.iter().find(|(_, k)| {
                    !(k.starts_with("Kind::Value")
                        || k.starts_with("Kind::Object")
                        || k.starts_with("Kind::FixedArray")
                        || k == "Kind::SType"
                        || k == "Kind::PNext")
                }) {
                    err = Some(format!("{name}.{f}: returned-only struct with {k}"));
                }
            }
            match err {
                Some(e) => Err(e),
                None => Ok(fields),
            }
        };
        self.structs.insert(name.to_string(), result.clone());
        result.map(|_| ())
    }

    fn len_expr(&self, len: &str, siblings: &[Decl]) -> Result<String, String> {
        if let Some((p, member)) = len.split_once("->") {
            let idx = siblings
                .iter()
                .position(|s| s.name == p)
                .ok_or(format!("len {len}"))?;
            let ps = &siblings[idx];
            let st = self.m.resolve(&ps.ty);
            let sd = self.m.structs.get(st).ok_or(format!("len {len}"))?;
            let md = sd
                .members
                .iter()
                .find(|x| x.name == member)
                .ok_or(format!("len {len}"))?;
            let mty = match self.m.category(&md.ty) {
                Category::Base("u32") => "Ty::U32",
                Category::Base("u64") => "Ty::U64",
                Category::Base("usize") => "Ty::Usize",
                _ => return Err(format!("len {len} type")),
            };
            let lt = if sd.members.iter().any(|x| x.ptr_depth > 0) {
                "<'static>"
            } else {
                ""
            };
            return Ok(format!(
                "Len::SiblingMember {{ index: {idx}, offset: offset_of!(vk::{}{lt}, {}) as u32, ty: {mty} }}",
                rust_type(st),
                snake(member)
            ));
        }
        if let Some(rest) = len
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(" + 31) / 32"))
        {
            let idx = siblings
                .iter()
                .position(|s| s.name == rest)
                .ok_or(format!("len {len}"))?;
            return Ok(format!("Len::SampleMaskWords({idx})"));
        }
        if let Some(bytes) = len.strip_suffix(" / 4") {
            let idx = siblings
                .iter()
                .position(|s| s.name == bytes)
                .ok_or(format!("len {len}"))?;
            return Ok(format!("Len::Sibling({idx})"));
        }
        if let Ok(n) = len.parse::<u32>() {
            return Ok(format!("Len::Const({n})"));
        }
        let idx = siblings
            .iter()
            .position(|s| s.name == len)
            .ok_or(format!("unsupported len {len}"))?;
        Ok(format!("Len::Sibling({idx})"))
    }

    /// Lowers a struct member or (with `param`) a command parameter.
    pub fn member_kind(
        &mut self,
        d: &Decl,
        siblings: &[Decl],
        param: bool,
    ) -> Result<String, String> {
        if d.name == "sType" && !param {
            return Ok("Kind::SType".into());
        }
        if d.name == "pNext" && !param {
            return Ok("Kind::PNext".into());
        }
        if d.bitfield {
            return Err("bitfield".into());
        }
        let cat = self.m.category(&d.ty);
        if matches!(cat, Category::FuncPointer)
            || d.name == "pUserData"
            || d.ty == "VkAllocationCallbacks"
        {
            return Ok("Kind::Null".into());
        }
        // A LaTeX length has a C-like `altlen` beside it.
        let len_first = match (d.len.as_deref(), d.altlen.as_deref()) {
            (Some(l), Some(alt)) if l.starts_with("latexmath") => Some(alt.to_string()),
            (l, _) => l.map(|l| l.split(',').next().unwrap_or(l).to_string()),
        };
        match (d.ptr_depth, d.is_const) {
            (0, _) => match &d.array {
                Some(a) => {
                    let n = self.array_len(a)?;
                    let t = self.ty(&d.ty)?;
                    if param {
                        Ok(format!(
                            "Kind::Array {{ elem: {t}, len: Len::Const({n}), optional: false }}"
                        ))
                    } else {
                        Ok(format!("Kind::FixedArray({t}, {n})"))
                    }
                }
                None => {
                    let t = self.ty(&d.ty)?;
                    let handle = t.starts_with("Ty::Handle") || t.starts_with("Ty::Dispatchable");
                    if handle && !d.optional {
                        Ok(format!("Kind::Object({t})"))
                    } else {
                        Ok(format!("Kind::Value({t})"))
                    }
                }
            },
            (1, true) => {
                let opt = d.optional;
                match len_first.as_deref() {
                    Some("null-terminated") if d.ty == "char" => {
                        Ok(format!("Kind::Str {{ optional: {opt} }}"))
                    }
                    Some(l) => {
                        let len = self.len_expr(l, siblings)?;
                        if d.ty == "void" || l.ends_with(" / 4") {
                            Ok(format!("Kind::Bytes {{ len: {len} }}"))
                        } else {
                            Ok(format!(
                                "Kind::Array {{ elem: {}, len: {len}, optional: {opt} }}",
                                self.ty(&d.ty)?
                            ))
                        }
                    }
                    None if d.ty == "void" => Err("untyped pointer without length".into()),
                    None => Ok(format!(
                        "Kind::Ptr {{ elem: {}, optional: {opt} }}",
                        self.ty(&d.ty)?
                    )),
                }
            }
            (1, false) if param => {
                if siblings
                    .iter()
                    .any(|s| s.ptr_depth == 1 && !s.is_const && s.len.as_deref() == Some(&d.name))
                {
                    return Ok(format!("Kind::InOutCount({})", self.ty(&d.ty)?));
                }
                match len_first.as_deref() {
                    Some(l) => {
                        let count = siblings.iter().position(|s| s.name == l);
                        let counted =
                            count.filter(|&i| siblings[i].ptr_depth == 1 && !siblings[i].is_const);
                        match (counted, d.ty == "void") {
                            (Some(i), true) => {
                                Ok(format!("Kind::OutCountedBytes {{ count: {i} }}"))
                            }
                            (Some(i), false) => Ok(format!(
                                "Kind::OutCounted {{ elem: {}, count: {i} }}",
                                self.ty(&d.ty)?
                            )),
                            (None, true) => Ok(format!(
                                "Kind::OutBytes {{ len: {} }}",
                                self.len_expr(l, siblings)?
                            )),
                            (None, false) => Ok(format!(
                                "Kind::OutArray {{ elem: {}, len: {} }}",
                                self.ty(&d.ty)?,
                                self.len_expr(l, siblings)?
                            )),
                        }
                    }
                    None if d.ty == "void" => Err("untyped output pointer".into()),
                    None => Ok(format!("Kind::Out({})", self.ty(&d.ty)?)),
                }
            }
            (2, true) if d.ty == "char" => match len_first.as_deref() {
                Some(l) => Ok(format!(
                    "Kind::StrArray {{ len: {} }}",
                    self.len_expr(l, siblings)?
                )),
                None => Err("string array without length".into()),
            },
            _ => Err(format!(
                "pointer shape {}{}",
                "*".repeat(d.ptr_depth),
                if d.is_const { " const" } else { "" }
            )),
        }
    }

    pub fn command_params(&mut self, c: &CommandDef) -> Result<Vec<(String, String)>, String> {
        c.params
            .iter()
            .map(|p| {
                self.member_kind(p, &c.params, true)
                    .map(|k| (p.name.clone(), k))
                    .map_err(|e| format!("{}: {e}", p.name))
            })
            .collect()
    }

    /// The structs that may extend `name`'s chain and are themselves carried.
    pub fn extenders(&mut self, name: &str, carried: &BTreeSet<String>) -> Vec<String> {
        let m = self.m;
        let mut v: Vec<String> = m
            .structs
            .values()
            .filter(|s| carried.contains(&s.name) && s.extends.iter().any(|e| m.resolve(e) == name))
            .filter_map(|s| s.s_type.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}
