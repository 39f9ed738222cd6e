#version 450
// data[offset + i] = i * mul + add for i < count: a cheap, checkable write into a chosen region.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) writeonly buffer Data { uint v[]; } data;
layout(push_constant) uniform Params { uint offset; uint count; uint mul; uint add; } pc;

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < pc.count) {
        data.v[pc.offset + i] = i * pc.mul + pc.add;
    }
}
