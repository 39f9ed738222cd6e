#version 450
// The sandbox's probe: a compute shader small enough to compile in milliseconds, run once before
// lock-down (so the driver's one-time set-up happens while files are still readable) and by
// `airlock-server --sandbox-selftest` after it. data[i] = data[i] * 3 + i.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) buffer Data { uint v[]; } data;

void main() {
    uint i = gl_GlobalInvocationID.x;
    data.v[i] = data.v[i] * 3u + i;
}
