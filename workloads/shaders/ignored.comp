#version 450
// Reads a 4 x 4 texture two ways, through a separate image and sampler and through a combined
// image sampler whose sampler is immutable, and writes what it read (scenario `ignored`: the
// descriptors were written with garbage in every member Vulkan says to ignore).
layout(local_size_x = 16) in;
layout(set = 0, binding = 0) uniform texture2D tex;
layout(set = 0, binding = 1) uniform sampler smp;
layout(set = 0, binding = 2) uniform sampler2D imm;
layout(set = 0, binding = 3) writeonly buffer Out { vec4 v[]; } dst;

void main() {
    uint i = gl_LocalInvocationID.x;
    vec2 uv = (vec2(i % 4u, i / 4u) + 0.5) / 4.0;
    dst.v[2u * i] = textureLod(sampler2D(tex, smp), uv, 0.0);
    dst.v[2u * i + 1u] = textureLod(imm, uv, 0.0);
}
