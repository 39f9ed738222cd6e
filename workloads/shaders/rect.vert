#version 450
// An axis-aligned rectangle from push constants, no vertex buffer: six vertices, two triangles.
layout(push_constant) uniform Rect { vec4 bounds; vec4 color; float depth; } rect;

const vec2 CORNERS[6] = vec2[](vec2(0, 0), vec2(1, 0), vec2(0, 1), vec2(1, 0), vec2(1, 1), vec2(0, 1));

void main() {
    vec2 t = CORNERS[gl_VertexIndex];
    gl_Position = vec4(mix(rect.bounds.xy, rect.bounds.zw, t), rect.depth, 1.0);
}
