#version 450
// data[i] = i * SALT + SALT * SALT: a kernel whose code differs with its specialization
// constant, so that each value is a shader of its own to compile (and to cache).
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint SALT = 1;
layout(set = 0, binding = 0) writeonly buffer Data { uint v[]; } data;

void main() {
    uint i = gl_GlobalInvocationID.x;
    data.v[i] = i * SALT + SALT * SALT;
}
