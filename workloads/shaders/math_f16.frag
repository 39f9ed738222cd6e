#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// math.glsl's built-ins in float16_t in a fragment shader: one element per pixel of a 64-wide target.
#define T float16_t
#define OUT float
#include "math.glsl"
layout(location = 0) out vec4 color;

void main() {
    store_results(uint(gl_FragCoord.y) * 64u + uint(gl_FragCoord.x));
    color = vec4(1.0);
}
