#version 450
layout(push_constant) uniform Rect { vec4 bounds; vec4 color; float depth; } rect;
layout(location = 0) out vec4 color;

void main() {
    color = rect.color;
}
