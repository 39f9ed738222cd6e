#version 450
// Set 0 is written with a descriptor update template, set 1 is a push descriptor set.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) writeonly buffer Dst { uint v[]; } dst[2];
layout(set = 0, binding = 1) uniform Params { uvec4 k; } params;
layout(set = 1, binding = 0) writeonly buffer PushedDst { uint v[]; } pushed;
layout(set = 1, binding = 1) uniform PushedParams { uvec4 k; } pushed_params;

void main() {
    uint i = gl_GlobalInvocationID.x;
    dst[0].v[i] = i * params.k.x + params.k.y;
    dst[1].v[i] = i ^ params.k.z;
    pushed.v[i] = i * pushed_params.k.x + pushed_params.k.w;
}
