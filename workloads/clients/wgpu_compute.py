"""wgpu for Python, unchanged: a compute shader over 1 Mi words, checked against numpy.

Prints the adapter on stderr and a digest of the result on stdout, for the test to compare
between drivers (workloads/tests/clients.rs).
"""

import hashlib
import sys

import numpy as np
import wgpu

N = 1 << 20
SHADER = """
@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read_write> b: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    b[i] = a[i] * 2654435761u + (i ^ (i >> 3u));
}
"""

adapter = wgpu.gpu.request_adapter_sync()
print("adapter:", adapter.info["device"], "/", adapter.info["description"], file=sys.stderr)
device = adapter.request_device_sync()

a = np.arange(N, dtype=np.uint32)
buf_a = device.create_buffer_with_data(data=a, usage=wgpu.BufferUsage.STORAGE)
buf_b = device.create_buffer(
    size=a.nbytes, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC
)
module = device.create_shader_module(code=SHADER)
pipeline = device.create_compute_pipeline(
    layout="auto", compute={"module": module, "entry_point": "main"}
)
group = device.create_bind_group(
    layout=pipeline.get_bind_group_layout(0),
    entries=[
        {"binding": 0, "resource": {"buffer": buf_a}},
        {"binding": 1, "resource": {"buffer": buf_b}},
    ],
)
encoder = device.create_command_encoder()
compute = encoder.begin_compute_pass()
compute.set_pipeline(pipeline)
compute.set_bind_group(0, group)
compute.dispatch_workgroups(N // 64)
compute.end()
device.queue.submit([encoder.finish()])

out = np.frombuffer(device.queue.read_buffer(buf_b), dtype=np.uint32)
i = np.arange(N, dtype=np.uint64)
want = (i * 2654435761 + (i ^ (i >> 3))).astype(np.uint32)
wrong = np.flatnonzero(out != want)
if wrong.size:
    k = wrong[0]
    sys.exit(f"{wrong.size} of {N} words wrong, first [{k}] = {out[k]}, expected {want[k]}")
print("compute", hashlib.sha256(out.tobytes()).hexdigest())
