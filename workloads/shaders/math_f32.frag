#version 450
#extension GL_GOOGLE_include_directive : require
// math.glsl's built-ins in float in a fragment shader: one element per pixel of a 64-wide target.
#define T float
#define OUT float
#include "math.glsl"
layout(location = 0) out vec4 color;

void main() {
    store_results(uint(gl_FragCoord.y) * 64u + uint(gl_FragCoord.x));
    color = vec4(1.0);
}
