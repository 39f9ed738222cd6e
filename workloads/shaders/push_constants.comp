#version 450
// Reads every member of a full 128-byte push-constant block, each filled by a different
// vkCmdPushConstants range.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) writeonly buffer Out { uint v[]; } dst;
layout(push_constant) uniform Params {
    uint base;      // offset 0
    uint mul;       // offset 4
    uvec2 add;      // offset 8
    vec4 scale;     // offset 16
    uint table[24]; // offset 32
} pc;

void main() {
    uint i = gl_GlobalInvocationID.x;
    dst.v[pc.base + i] = i * pc.mul + pc.add.x + pc.add.y * pc.table[i % 24u] + uint(pc.scale[i % 4u] * float(i));
}
