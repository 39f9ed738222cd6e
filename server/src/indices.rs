//! Render pass create infos, whose members index sibling arrays: an attachment reference
//! names an element of `pAttachments`, a dependency two elements of `pSubpasses`. The decoder
//! checks every array against its own count, but not what one array's values say about
//! another's length. Drivers follow these indices unchecked, and so does the validation layer
//! after reporting them (it crashed on attachment 1560281088 of 3: found by the fuzzer), so the
//! server refuses such a render pass before either sees it.

use ash::vk;

fn slice<'a, T>(p: *const T, n: u32) -> &'a [T] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: decoded arrays: `n` elements at `p`, alive for the call.
        unsafe { std::slice::from_raw_parts(p, n as usize) }
    }
}

fn attachment(what: &str, index: u32, count: u32) -> Result<(), String> {
    if index == vk::ATTACHMENT_UNUSED || index < count {
        Ok(())
    } else {
        Err(format!("{what}: attachment {index} of {count}"))
    }
}

fn subpass(what: &str, index: u32, count: u32) -> Result<(), String> {
    if index == vk::SUBPASS_EXTERNAL || index < count {
        Ok(())
    } else {
        Err(format!("{what}: subpass {index} of {count}"))
    }
}

/// The attachment indices of one subpass, whichever version of the structs holds them.
struct Subpass {
    inputs: Vec<u32>,
    colors: Vec<u32>,
    resolves: Vec<u32>,
    depth: Option<u32>,
    preserves: Vec<u32>,
    /// `VkSubpassDescriptionDepthStencilResolve` (render pass 2 only).
    depth_resolve: Option<u32>,
}

/// A [`Subpass`] from a `VkSubpassDescription` or `VkSubpassDescription2` (same member names).
macro_rules! subpass_of {
    ($s:expr, $depth_resolve:expr) => {{
        let s = $s;
        Subpass {
            inputs: slice(s.p_input_attachments, s.input_attachment_count)
                .iter()
                .map(|r| r.attachment)
                .collect(),
            colors: slice(s.p_color_attachments, s.color_attachment_count)
                .iter()
                .map(|r| r.attachment)
                .collect(),
            resolves: slice(s.p_resolve_attachments, s.color_attachment_count)
                .iter()
                .map(|r| r.attachment)
                .collect(),
            depth: s.p_depth_stencil_attachment.as_ref().map(|r| r.attachment),
            preserves: slice(s.p_preserve_attachments, s.preserve_attachment_count).to_vec(),
            depth_resolve: $depth_resolve,
        }
    }};
}

fn check(
    attachments: u32,
    subpasses: &[Subpass],
    dependencies: impl Iterator<Item = (u32, u32)>,
) -> Result<(), String> {
    for (i, s) in subpasses.iter().enumerate() {
        let lists = [
            ("pInputAttachments", &s.inputs),
            ("pColorAttachments", &s.colors),
            ("pResolveAttachments", &s.resolves),
            ("pPreserveAttachments", &s.preserves),
        ];
        for (name, list) in lists {
            for (j, a) in list.iter().enumerate() {
                attachment(&format!("pSubpasses[{i}].{name}[{j}]"), *a, attachments)?;
            }
        }
        if let Some(a) = s.depth {
            attachment(
                &format!("pSubpasses[{i}].pDepthStencilAttachment"),
                a,
                attachments,
            )?;
        }
        if let Some(a) = s.depth_resolve {
            attachment(
                &format!("pSubpasses[{i}].pDepthStencilResolveAttachment"),
                a,
                attachments,
            )?;
        }
    }
    let n = subpasses.len() as u32;
    for (i, (src, dst)) in dependencies.enumerate() {
        subpass(&format!("pDependencies[{i}].srcSubpass"), src, n)?;
        subpass(&format!("pDependencies[{i}].dstSubpass"), dst, n)?;
    }
    Ok(())
}

/// `VkRenderPassInputAttachmentAspectCreateInfo`: a subpass and one of its input attachments.
///
/// # Safety
/// `chain` is a decoded pNext chain.
unsafe fn input_aspects(
    chain: *const std::ffi::c_void,
    subpasses: &[Subpass],
) -> Result<(), String> {
    let mut node = chain as *const vk::BaseInStructure;
    while let Some(n) = node.as_ref() {
        if n.s_type == vk::StructureType::RENDER_PASS_INPUT_ATTACHMENT_ASPECT_CREATE_INFO {
            let info = &*(node as *const vk::RenderPassInputAttachmentAspectCreateInfo);
            let refs = slice(info.p_aspect_references, info.aspect_reference_count);
            for (i, r) in refs.iter().enumerate() {
                let what = format!("pAspectReferences[{i}]");
                let s = subpasses.get(r.subpass as usize).ok_or_else(|| {
                    format!("{what}: subpass {} of {}", r.subpass, subpasses.len())
                })?;
                if r.input_attachment_index as usize >= s.inputs.len() {
                    return Err(format!(
                        "{what}: input attachment {} of {}",
                        r.input_attachment_index,
                        s.inputs.len()
                    ));
                }
            }
        }
        node = n.p_next;
    }
    Ok(())
}

/// `vkCreateRenderPass`.
///
/// # Safety
/// `info` was decoded by the server: every array holds its count of elements.
pub unsafe fn render_pass(info: &vk::RenderPassCreateInfo<'_>) -> Result<(), String> {
    let subpasses: Vec<Subpass> = slice(info.p_subpasses, info.subpass_count)
        .iter()
        .map(|s| subpass_of!(s, None))
        .collect();
    let deps = slice(info.p_dependencies, info.dependency_count)
        .iter()
        .map(|d| (d.src_subpass, d.dst_subpass));
    check(info.attachment_count, &subpasses, deps)?;
    input_aspects(info.p_next, &subpasses)
}

/// `vkCreateRenderPass2`.
///
/// # Safety
/// As [`render_pass`].
pub unsafe fn render_pass2(info: &vk::RenderPassCreateInfo2<'_>) -> Result<(), String> {
    let subpasses: Vec<Subpass> = slice(info.p_subpasses, info.subpass_count)
        .iter()
        .map(|s| {
            let mut depth_resolve = None;
            let mut node = s.p_next as *const vk::BaseInStructure;
            while let Some(n) = node.as_ref() {
                if n.s_type == vk::StructureType::SUBPASS_DESCRIPTION_DEPTH_STENCIL_RESOLVE {
                    let r = &*(node as *const vk::SubpassDescriptionDepthStencilResolve);
                    depth_resolve = r
                        .p_depth_stencil_resolve_attachment
                        .as_ref()
                        .map(|a| a.attachment);
                }
                node = n.p_next;
            }
            subpass_of!(s, depth_resolve)
        })
        .collect();
    let deps = slice(info.p_dependencies, info.dependency_count)
        .iter()
        .map(|d| (d.src_subpass, d.dst_subpass));
    check(info.attachment_count, &subpasses, deps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_and_subpass_indices_stay_inside_their_arrays() {
        let attachments = [vk::AttachmentDescription::default(); 2];
        let color = [vk::AttachmentReference {
            attachment: 1,
            layout: vk::ImageLayout::GENERAL,
        }];
        let sub = [vk::SubpassDescription::default().color_attachments(&color)];
        let dep = [vk::SubpassDependency::default()
            .src_subpass(vk::SUBPASS_EXTERNAL)
            .dst_subpass(0)];
        let info = vk::RenderPassCreateInfo::default()
            .attachments(&attachments)
            .subpasses(&sub)
            .dependencies(&dep);
        // SAFETY: a valid create info.
        assert_eq!(unsafe { render_pass(&info) }, Ok(()));

        let far = [vk::AttachmentReference {
            attachment: 1_560_281_088,
            layout: vk::ImageLayout::GENERAL,
        }];
        let sub = [vk::SubpassDescription::default().color_attachments(&far)];
        let info = info.subpasses(&sub);
        // SAFETY: well formed, an index out of range.
        assert_eq!(
            unsafe { render_pass(&info) },
            Err("pSubpasses[0].pColorAttachments[0]: attachment 1560281088 of 2".into())
        );

        let sub = [vk::SubpassDescription::default().color_attachments(&color)];
        let dep = [vk::SubpassDependency::default()
            .src_subpass(0)
            .dst_subpass(3)];
        let info = info.subpasses(&sub).dependencies(&dep);
        // SAFETY: as above.
        assert_eq!(
            unsafe { render_pass(&info) },
            Err("pDependencies[0].dstSubpass: subpass 3 of 1".into())
        );
    }
}
