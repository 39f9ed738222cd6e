#version 450
layout(set = 0, binding = 0) uniform sampler2D tex;
layout(location = 0) in vec2 uv;
layout(location = 1) in vec4 color;
layout(location = 2) in float textured;
layout(location = 0) out vec4 out_color;

void main() {
    out_color = color * mix(vec4(1.0), texture(tex, uv), textured);
}
