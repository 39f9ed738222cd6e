#version 450
layout(location = 0) in vec3 position;
layout(location = 1) in vec2 uv;
layout(location = 2) in vec4 color;
layout(location = 3) in float textured;
layout(location = 0) out vec2 out_uv;
layout(location = 1) out vec4 out_color;
layout(location = 2) out float out_textured;

void main() {
    out_uv = uv;
    out_color = color;
    out_textured = textured;
    gl_Position = vec4(position, 1.0);
}
