#version 450
// out[i] = f(in[i], i) over a buffer larger than one dispatch dimension allows, hence the 2D grid.
layout(local_size_x = 256) in;
layout(set = 0, binding = 0) readonly buffer In { uint v[]; } src;
layout(set = 0, binding = 1) writeonly buffer Out { uint v[]; } dst;
layout(push_constant) uniform Params { uint count; } pc;

void main() {
    uint i = gl_GlobalInvocationID.y * (gl_NumWorkGroups.x * gl_WorkGroupSize.x) + gl_GlobalInvocationID.x;
    if (i >= pc.count) {
        return;
    }
    uint x = src.v[i];
    dst.v[i] = (x ^ (i * 0x9E3779B9u)) + ((x << 7) | (x >> 25));
}
