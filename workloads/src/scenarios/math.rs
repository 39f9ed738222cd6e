//! Math built-ins (exp, exp2, log, log2, pow, sinh, cosh, frexp; modf, fract, ldexp for doubles)
//! in 16-, 32- and 64-bit floats, in compute and fragment shaders, checked against the CPU.
//!
//! lavapipe's JIT turns some of these into calls of C functions (libm's `expf`, `frexp` …) that
//! it looks up by name in the process: through Airlock that process is the server, which once
//! died here calling address 0 (issue 13). Precisions the device lacks are skipped, and the
//! report says which ran.

use crate::error::{ensure, Error};
use crate::memory::{Access, Buffer, Location};
use crate::pipeline::{descriptor_binding, GraphicsDesc, Target};
use crate::rect::{Offscreen, Rect, COLOR_FORMAT};
use crate::{shaders, Context, Report, Result};
use ash::vk;

/// Elements: one per invocation, and one per pixel of a 64 × 64 target.
const SIDE: u32 = 64;
const COUNT: u32 = SIDE * SIDE;
/// Results per element, as math.glsl stores them.
const RESULTS: usize = 9;
const RESULTS_F64: usize = 6;

/// Element i's inputs, exact in every precision: x in [0.25, 4), y in [0.5, 3).
fn inputs(i: u32) -> (f32, f32) {
    let x = 0.25 + (i % 240) as f32 / 64.0;
    let y = 0.5 + (i.wrapping_mul(7) % 160) as f32 / 64.0;
    (x, y)
}

/// `frexp`: a mantissa in [0.5, 1) and an exponent; for the positive normal inputs used here.
fn frexp(v: f64) -> (f64, i32) {
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let mantissa = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (mantissa, exponent)
}

/// What math.glsl computes for element i, in f64 (the shader's own precision is allowed for in
/// the comparison).
fn expected(i: u32) -> [f64; RESULTS] {
    let (x, y) = inputs(i);
    let (x, y) = (f64::from(x), f64::from(y));
    let (m, e) = frexp(x);
    [
        x.exp(),
        y.exp2(),
        x.ln(),
        y.log2(),
        x.powf(y),
        y.sinh(),
        x.cosh(),
        m,
        f64::from(e),
    ]
}

fn expected_f64(i: u32) -> [f64; RESULTS_F64] {
    let (x, y) = inputs(i);
    let (x, y) = (f64::from(x), f64::from(y));
    let (m, e) = frexp(x);
    let p = x * y;
    let ldexp = y * 2f64.powi((x * 4.0) as i32 - 8);
    [
        m,
        f64::from(e),
        p.fract(),
        p.trunc(),
        (x / y).fract(),
        ldexp,
    ]
}

/// Relative error allowed of one precision (with as much absolute error near 0): a few of its
/// ULPs and the approximations GLSL allows; frexp's results must be exact.
#[derive(Clone, Copy)]
enum Precision {
    F16,
    F32,
    F64,
}

impl Precision {
    fn tolerance(self) -> f64 {
        match self {
            Precision::F16 => 4e-3,
            Precision::F32 => 1e-4,
            Precision::F64 => 1e-12,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Precision::F16 => "float16",
            Precision::F32 => "float32",
            Precision::F64 => "float64",
        }
    }
}

const NAMES: [&str; RESULTS] = [
    "exp(x)",
    "exp2(y)",
    "log(x)",
    "log2(y)",
    "pow(x, y)",
    "sinh(y)",
    "cosh(x)",
    "frexp mantissa",
    "frexp exponent",
];
const NAMES_F64: [&str; RESULTS_F64] = [
    "frexp mantissa",
    "frexp exponent",
    "modf fraction",
    "modf whole",
    "fract(x / y)",
    "ldexp",
];

/// Checks `actual` (RESULTS_F64 or RESULTS values per element) against the CPU.
fn check(what: &str, precision: Precision, actual: &[f64]) -> Result<()> {
    let per = if matches!(precision, Precision::F64) {
        RESULTS_F64
    } else {
        RESULTS
    };
    ensure(actual.len() == per * COUNT as usize, || {
        format!(
            "{what}: {} results, expected {}",
            actual.len(),
            per * COUNT as usize
        )
    })?;
    let mut wrong = 0usize;
    let mut first = None;
    for i in 0..COUNT {
        let (want, names): (Vec<f64>, &[&str]) = match precision {
            Precision::F64 => (expected_f64(i).to_vec(), &NAMES_F64),
            _ => (expected(i).to_vec(), &NAMES),
        };
        for (k, (&w, name)) in want.iter().zip(names).enumerate() {
            let a = actual[per * i as usize + k];
            let exact = name.starts_with("frexp");
            let ok = if exact {
                a == w
            } else {
                (a - w).abs() <= precision.tolerance() * w.abs().max(1.0)
            };
            if !ok {
                wrong += 1;
                let (x, y) = inputs(i);
                first.get_or_insert(format!(
                    "element {i} (x = {x}, y = {y}): {name} is {a}, expected {w}"
                ));
            }
        }
    }
    match first {
        None => Ok(()),
        Some(f) => Err(Error::Mismatch(format!(
            "{what} in {}: {wrong} results wrong, first {f}",
            precision.name()
        ))),
    }
}

fn input_buffer(ctx: &Context) -> Result<Buffer> {
    let src = ctx.buffer(
        u64::from(COUNT) * 8,
        vk::BufferUsageFlags::STORAGE_BUFFER,
        Location::Host,
    )?;
    let data: Vec<f32> = (0..COUNT)
        .flat_map(|i| {
            let (x, y) = inputs(i);
            [x, y]
        })
        .collect();
    src.write(0, &data);
    Ok(src)
}

/// One dispatch of `spirv` over every element; its results widened to f64.
fn compute(
    ctx: &Context,
    spirv: &[u8],
    src: &Buffer,
    precision: Precision,
) -> Result<(Vec<u8>, Vec<f64>)> {
    let wide = matches!(precision, Precision::F64);
    let per = if wide { RESULTS_F64 } else { RESULTS };
    let size = (per * COUNT as usize * if wide { 8 } else { 4 }) as u64;
    let dst = ctx.buffer(size, vk::BufferUsageFlags::STORAGE_BUFFER, Location::Host)?;
    let kernel = ctx.kernel(spirv, 2, 4, vk::PipelineCache::null())?;
    let set = ctx.kernel_set(&kernel, &[src, &dst])?;
    ctx.run_commands(|cmd| {
        kernel.dispatch(ctx, cmd, set, &COUNT, [COUNT / 64, 1, 1]);
        ctx.memory_barrier(cmd, Access::COMPUTE_WRITE, Access::HOST_READ);
        Ok(())
    })?;
    Ok(results(&dst, wide))
}

/// The results in `dst`: its bytes, and its values widened to f64.
fn results(dst: &Buffer, wide: bool) -> (Vec<u8>, Vec<f64>) {
    let bytes: Vec<u8> = dst.read();
    let values = if wide {
        dst.read::<f64>()
    } else {
        dst.read::<f32>().into_iter().map(f64::from).collect()
    };
    (bytes, values)
}

/// A full-target draw whose fragment shader, `spirv`, stores one element's results per pixel.
fn fragment(ctx: &Context, spirv: &[u8], src: &Buffer) -> Result<(Vec<u8>, Vec<f64>)> {
    let size = (RESULTS * COUNT as usize * 4) as u64;
    let dst = ctx.buffer(size, vk::BufferUsageFlags::STORAGE_BUFFER, Location::Host)?;
    let bindings = [0, 1].map(|b| {
        descriptor_binding(
            b,
            vk::DescriptorType::STORAGE_BUFFER,
            1,
            vk::ShaderStageFlags::FRAGMENT,
        )
    });
    let set_layout = ctx.set_layout(&bindings, vk::DescriptorSetLayoutCreateFlags::empty())?;
    let push = vk::PushConstantRange::default()
        .stage_flags(vk::ShaderStageFlags::VERTEX)
        .size(std::mem::size_of::<Rect>() as u32);
    let layout = ctx.pipeline_layout(&[set_layout], &[push])?;
    let pipeline = ctx.graphics_pipeline(&GraphicsDesc {
        vertex: shaders::RECT_VERT,
        fragment: spirv,
        layout,
        bindings: &[],
        attributes: &[],
        samples: vk::SampleCountFlags::TYPE_1,
        depth_test: false,
        blend: false,
        target: Target::Dynamic {
            color: COLOR_FORMAT,
            depth: None,
        },
    })?;
    let set = ctx.descriptor_set(set_layout)?;
    let infos = [[src.info()], [dst.info()]];
    let writes = [0, 1].map(|b| {
        vk::WriteDescriptorSet::default()
            .dst_set(set)
            .dst_binding(b)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .buffer_info(&infos[b as usize])
    });
    unsafe { ctx.device.update_descriptor_sets(&writes, &[]) };
    let target = Offscreen::new(ctx, SIDE, false)?;
    let whole = Rect::pixels(SIDE, [0, 0, SIDE, SIDE], [255; 4], 0.5);
    ctx.run_commands(|cmd| {
        target.begin(ctx, cmd, [0, 0, 0, 255]);
        unsafe {
            ctx.device
                .cmd_bind_pipeline(cmd, vk::PipelineBindPoint::GRAPHICS, pipeline);
            ctx.device.cmd_bind_descriptor_sets(
                cmd,
                vk::PipelineBindPoint::GRAPHICS,
                layout,
                0,
                &[set],
                &[],
            );
            ctx.device.cmd_push_constants(
                cmd,
                layout,
                vk::ShaderStageFlags::VERTEX,
                0,
                bytemuck::bytes_of(&whole),
            );
            ctx.device.cmd_draw(cmd, 6, 1, 0, 0);
        }
        target.end(ctx, cmd);
        let written = Access(
            vk::PipelineStageFlags::FRAGMENT_SHADER,
            vk::AccessFlags::SHADER_WRITE,
        );
        ctx.memory_barrier(cmd, written, Access::HOST_READ);
        Ok(())
    })?;
    Ok(results(&dst, false))
}

pub fn run(ctx: &Context) -> Result<Report> {
    let src = input_buffer(ctx)?;
    let mut report = Report::new();
    let runs: [(&str, bool, Precision, &[u8]); 5] = [
        ("compute", true, Precision::F32, shaders::MATH_F32),
        (
            "compute",
            ctx.shader_float16,
            Precision::F16,
            shaders::MATH_F16,
        ),
        (
            "compute",
            ctx.shader_float64,
            Precision::F64,
            shaders::MATH_F64,
        ),
        (
            "fragment",
            ctx.fragment_stores,
            Precision::F32,
            shaders::MATH_F32_FRAG,
        ),
        (
            "fragment",
            ctx.fragment_stores && ctx.shader_float16,
            Precision::F16,
            shaders::MATH_F16_FRAG,
        ),
    ];
    for (stage, supported, precision, spirv) in runs {
        let name = format!("{stage} {}", precision.name());
        report.flag(&format!("{name} ran"), supported);
        if !supported {
            continue;
        }
        let (bytes, values) = if stage == "fragment" {
            fragment(ctx, spirv, &src)?
        } else {
            compute(ctx, spirv, &src, precision)?
        };
        check(&name, precision, &values)?;
        report.bytes(&name, &bytes);
    }
    Ok(report)
}
