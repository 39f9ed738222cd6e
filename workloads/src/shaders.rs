//! SPIR-V compiled by build.rs from `workloads/shaders/`.

macro_rules! spirv {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".spv"))
    };
}

pub const COMPUTE: &[u8] = spirv!("compute.comp");
pub const PATTERN: &[u8] = spirv!("pattern.comp");
/// `data[i] = i * SALT + SALT * SALT`, `SALT` a specialization constant (id 0).
pub const SALTED: &[u8] = spirv!("salted.comp");
pub const PUSH_CONSTANTS: &[u8] = spirv!("push_constants.comp");
pub const TEMPLATES: &[u8] = spirv!("templates.comp");
pub const ZERO_COPY: &[u8] = spirv!("zero_copy.comp");
pub const IGNORED: &[u8] = spirv!("ignored.comp");
pub const MATH_F16: &[u8] = spirv!("math_f16.comp");
pub const MATH_F32: &[u8] = spirv!("math_f32.comp");
pub const MATH_F64: &[u8] = spirv!("math_f64.comp");
pub const MATH_F16_FRAG: &[u8] = spirv!("math_f16.frag");
pub const MATH_F32_FRAG: &[u8] = spirv!("math_f32.frag");
pub const RECT_VERT: &[u8] = spirv!("rect.vert");
pub const RECT_FRAG: &[u8] = spirv!("rect.frag");
pub const SCENE_VERT: &[u8] = spirv!("scene.vert");
pub const SCENE_FRAG: &[u8] = spirv!("scene.frag");

/// Push constants of pattern.comp, which writes `data[offset + i] = i * mul + add` for
/// `i < count`, 64 invocations per workgroup.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, Debug)]
pub struct Pattern {
    pub offset: u32,
    pub count: u32,
    pub mul: u32,
    pub add: u32,
}

impl Pattern {
    pub const GROUP_SIZE: u32 = 64;

    /// The value written at `data[offset + i]`.
    pub fn value(&self, i: u32) -> u32 {
        i.wrapping_mul(self.mul).wrapping_add(self.add)
    }

    pub fn groups(&self) -> [u32; 3] {
        [self.count.div_ceil(Self::GROUP_SIZE), 1, 1]
    }

    /// A kernel for pattern.comp, its pipeline created with `cache`.
    pub fn kernel(
        ctx: &crate::Context,
        cache: ash::vk::PipelineCache,
    ) -> crate::Result<crate::pipeline::Kernel> {
        ctx.kernel(PATTERN, 1, std::mem::size_of::<Self>() as u32, cache)
    }
}
