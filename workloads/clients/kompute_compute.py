"""Kompute (kp), unchanged: a GLSL kernel with a specialization constant and a push constant,
run twice from one recorded sequence with a new push constant, checked against numpy.

Prints the device on stderr and a digest of both results on stdout, for the test to compare
between drivers (workloads/tests/clients.rs). glslangValidator compiles the kernel.
"""

import hashlib
import os
import subprocess
import sys
import tempfile

import kp
import numpy as np

N = 1 << 16
GLSL = """
#version 450
layout(local_size_x = 64) in;
layout(constant_id = 0) const float SCALE = 1.0;
layout(push_constant) uniform Push { float offset; } push;
layout(set = 0, binding = 0) readonly buffer A { float a[]; };
layout(set = 0, binding = 1) readonly buffer B { float b[]; };
layout(set = 0, binding = 2) writeonly buffer Out { float o[]; };

void main() {
    uint i = gl_GlobalInvocationID.x;
    o[i] = a[i] * b[i] * SCALE + push.offset;
}
"""

with tempfile.TemporaryDirectory() as tmp:
    spv = os.path.join(tmp, "kernel.spv")
    subprocess.run(
        ["glslangValidator", "-V", "--stdin", "-S", "comp", "-o", spv],
        input=GLSL.encode(),
        capture_output=True,
        check=True,
    )
    with open(spv, "rb") as f:
        spirv = f.read()

mgr = kp.Manager()
print("adapter:", mgr.get_device_properties()["device_name"], file=sys.stderr)

a = np.linspace(-1.0, 1.0, N, dtype=np.float32)
b = (np.arange(N) % 7).astype(np.float32)
ta, tb, out = mgr.tensor(a), mgr.tensor(b), mgr.tensor(np.zeros(N, np.float32))
algo = mgr.algorithm([ta, tb, out], spirv, (N // 64, 1, 1), [2.0], [0.5])
mgr.sequence().record(kp.OpTensorSyncDevice([ta, tb, out])).eval()

digest = hashlib.sha256()
for offset in (0.5, -3.25):
    (
        mgr.sequence()
        .record(kp.OpAlgoDispatch(algo, [offset]))
        .record(kp.OpTensorSyncLocal([out]))
        .eval()
    )
    got = out.data()
    want = a * b * np.float32(2.0) + np.float32(offset)
    if not np.allclose(got, want, rtol=1e-6, atol=1e-6):
        k = int(np.flatnonzero(~np.isclose(got, want, rtol=1e-6, atol=1e-6))[0])
        sys.exit(f"offset {offset}: [{k}] = {got[k]}, expected {want[k]}")
    digest.update(got.tobytes())
print("kompute", digest.hexdigest())
