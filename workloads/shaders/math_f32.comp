#version 450
#extension GL_GOOGLE_include_directive : require
// math.glsl's built-ins in float, one element per invocation.
#define T float
#define OUT float

layout(local_size_x = 64) in;
layout(push_constant) uniform Params { uint count; } pc;
#include "math.glsl"

void main() {
    if (gl_GlobalInvocationID.x < pc.count) {
        store_results(gl_GlobalInvocationID.x);
    }
}
