"""wgpu for Python, unchanged: an offscreen frame with 4x MSAA resolved, depth, and a texture
uploaded through the queue and sampled linearly.

Prints the adapter on stderr and a digest of the pixels on stdout, for the test to compare
between drivers (workloads/tests/clients.rs). Checks the frame's outline itself: the clear
colour in a corner, the triangle's blend of colour and texture at the centre.
"""

import hashlib
import sys

import numpy as np
import wgpu

W = H = 256
RGBA = wgpu.TextureFormat.rgba8unorm
SHADER = """
struct V { @builtin(position) pos: vec4<f32>, @location(0) col: vec3<f32> };

@vertex fn vs(@builtin(vertex_index) i: u32) -> V {
    var p = array<vec2<f32>, 3>(vec2(0.0, 0.8), vec2(-0.8, -0.7), vec2(0.8, -0.6));
    var c = array<vec3<f32>, 3>(vec3(1.0, 0.0, 0.0), vec3(0.0, 1.0, 0.0), vec3(0.0, 0.0, 1.0));
    return V(vec4(p[i], 0.0, 1.0), c[i]);
}

@group(0) @binding(0) var tex: texture_2d<f32>;
@group(0) @binding(1) var smp: sampler;

@fragment fn fs(v: V) -> @location(0) vec4<f32> {
    let t = textureSample(tex, smp, v.pos.xy / 256.0);
    return vec4(v.col * 0.75 + t.rgb * 0.25, 1.0);
}
"""

adapter = wgpu.gpu.request_adapter_sync()
print("adapter:", adapter.info["device"], "/", adapter.info["description"], file=sys.stderr)
device = adapter.request_device_sync()

# An 8x8-pixel yellow and black checker.
checker = np.zeros((64, 64, 4), np.uint8)
cells = (np.arange(64)[:, None] // 8 + np.arange(64)[None, :] // 8) % 2 == 1
checker[cells] = [255, 255, 0, 255]
texture = device.create_texture(
    size=(64, 64, 1),
    format=RGBA,
    usage=wgpu.TextureUsage.TEXTURE_BINDING | wgpu.TextureUsage.COPY_DST,
)
device.queue.write_texture({"texture": texture}, checker, {"bytes_per_row": 256}, (64, 64, 1))
sampler = device.create_sampler(mag_filter="linear", min_filter="linear")


def attachment(fmt, samples, usage=wgpu.TextureUsage.RENDER_ATTACHMENT):
    return device.create_texture(size=(W, H, 1), format=fmt, sample_count=samples, usage=usage)


target = attachment(RGBA, 4)
resolved = attachment(RGBA, 1, wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC)
depth = attachment(wgpu.TextureFormat.depth32float, 4)
module = device.create_shader_module(code=SHADER)
pipeline = device.create_render_pipeline(
    layout="auto",
    vertex={"module": module, "entry_point": "vs"},
    fragment={"module": module, "entry_point": "fs", "targets": [{"format": RGBA}]},
    primitive={"topology": "triangle-list"},
    depth_stencil={
        "format": wgpu.TextureFormat.depth32float,
        "depth_write_enabled": True,
        "depth_compare": "less",
    },
    multisample={"count": 4},
)
group = device.create_bind_group(
    layout=pipeline.get_bind_group_layout(0),
    entries=[
        {"binding": 0, "resource": texture.create_view()},
        {"binding": 1, "resource": sampler},
    ],
)
encoder = device.create_command_encoder()
frame = encoder.begin_render_pass(
    color_attachments=[
        {
            "view": target.create_view(),
            "resolve_target": resolved.create_view(),
            "clear_value": (0.1, 0.2, 0.3, 1.0),
            "load_op": "clear",
            "store_op": "discard",
        }
    ],
    depth_stencil_attachment={
        "view": depth.create_view(),
        "depth_clear_value": 1.0,
        "depth_load_op": "clear",
        "depth_store_op": "discard",
    },
)
frame.set_pipeline(pipeline)
frame.set_bind_group(0, group)
frame.draw(3)
frame.end()
device.queue.submit([encoder.finish()])

data = device.queue.read_texture({"texture": resolved}, {"bytes_per_row": W * 4}, (W, H, 1))
pixels = np.frombuffer(data, np.uint8).reshape(H, W, 4)
corner, centre = pixels[2, 2].tolist(), pixels[H // 2, W // 2].tolist()
if corner != [26, 51, 76, 255]:
    sys.exit(f"corner {corner}: expected the clear colour")
if corner == centre or centre[3] != 255:
    sys.exit(f"centre {centre}: expected the triangle")
print("render", hashlib.sha256(pixels.tobytes()).hexdigest(), centre)
