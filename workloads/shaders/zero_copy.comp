#version 450
// Each invocation reduces one 1024-word chunk of the mapped input to a sum, an xor and a
// position-weighted sum, so a stale or zero page anywhere changes the result.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer In { uint v[]; } src;
layout(set = 0, binding = 1) writeonly buffer Out { uint v[]; } dst;

const uint CHUNK = 1024u;

void main() {
    uint chunk = gl_GlobalInvocationID.x;
    uint sum = 0u;
    uint xor_all = 0u;
    uint weighted = 0u;
    for (uint j = 0u; j < CHUNK; j++) {
        uint x = src.v[chunk * CHUNK + j];
        sum += x;
        xor_all ^= x;
        weighted += x * (j + 1u);
    }
    dst.v[chunk * 3u] = sum;
    dst.v[chunk * 3u + 1u] = xor_all;
    dst.v[chunk * 3u + 2u] = weighted;
}
