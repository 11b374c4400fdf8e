"""The renderer's GLSL programs. Every pass runs the same vertex shader, so a triangle covers the
same pixels in the instance map, the solo passes and the colour passes (`invariant gl_Position`).

Vertices are in world space, one row per triangle corner: position, normal, texture coordinate,
colour multiplier and instance id (0 for scenery). The lit shader is pyrender 1.0.1's
metallic-roughness model (Cook-Torrance specular, Schlick Fresnel, sRGB textures, vertex colours
multiplying the linear result, gamma 2.2 out) for one sun, one sky light from the zenith and
ambient light; the sun's shadow is four bilinear depth comparisons (pyrender takes thirty-six).
Two departures: surfaces are opaque (pyrender blends a base colour's alpha below 1), and the
emissive texture is scaled by its factor once (pyrender twice; the same for factors 0 and 1).
"""

VERTEX = """
#version 330 core
layout(location = 0) in vec3 position;
layout(location = 1) in vec3 normal;
layout(location = 2) in vec2 uv;
layout(location = 3) in vec4 colour;
layout(location = 4) in float instance;
uniform mat4 view_projection;
invariant gl_Position;
out vec3 world_position;
out vec3 world_normal;
out vec2 texcoord;
out vec4 colour_multiplier;
flat out float instance_id;
void main() {
    gl_Position = view_projection * vec4(position, 1.0);
    world_position = position;
    world_normal = normal;
    texcoord = uv;
    colour_multiplier = colour;
    instance_id = instance;
}
"""

# Instance id and linear depth (the clip w of a perspective camera: the distance along its axis).
IDS = """
#version 330 core
flat in float instance_id;
out vec2 id_and_depth;
void main() {
    id_and_depth = vec2(instance_id, 1.0 / gl_FragCoord.w);
}
"""

DEPTH_ONLY = """
#version 330 core
void main() {}
"""

LIT = """
#version 330 core
in vec3 world_position;
in vec3 world_normal;
in vec2 texcoord;
in vec4 colour_multiplier;
uniform sampler2D base_colour_texture;
uniform sampler2D metallic_roughness_texture;   // glTF: roughness in G, metallic in B
uniform sampler2D emissive_texture;
uniform sampler2DShadow shadow_map;
uniform vec4 base_colour_factor;
uniform float metallic_factor;
uniform float roughness_factor;
uniform vec3 emissive_factor;
uniform bool two_sided;                         // surfaces seen from behind are lit as such
uniform vec3 camera_position;
uniform vec3 sun_towards;                       // unit vector from the surface to the sun
uniform vec3 sun_radiance;
uniform vec3 sky_radiance;                      // from straight above, casting no shadow
uniform vec3 ambient;
uniform bool shadows;
uniform mat4 shadow_matrix;
out vec4 frag_colour;

const float PI = 3.141592653589793;
const float MIN_ROUGHNESS = 0.04;

vec3 srgb_to_linear(vec3 srgb) {
    vec3 above = step(vec3(0.04045), srgb);
    return mix(srgb / 12.92, pow((srgb + 0.055) / 1.055, vec3(2.4)), above);
}

vec3 brdf(vec3 n, vec3 v, vec3 l, float roughness, vec3 f0, vec3 c_diff, vec3 radiance) {
    vec3 h = normalize(l + v);
    float nl = clamp(dot(n, l), 0.001, 1.0);
    float nv = clamp(abs(dot(n, v)), 0.001, 1.0);
    float nh = clamp(dot(n, h), 0.0, 1.0);
    float vh = clamp(dot(v, h), 0.0, 1.0);
    vec3 fresnel = f0 + (1.0 - f0) * pow(clamp(1.0 - vh, 0.0, 1.0), 5.0);
    float k = (roughness + 1.0) * (roughness + 1.0) / 8.0;
    float geometry = nv / (nv * (1.0 - k) + k) * nl / (nl * (1.0 - k) + k);
    float a2 = roughness * roughness * roughness * roughness;
    float denominator = nh * nh * (a2 - 1.0) + 1.0;
    float distribution = a2 / (PI * denominator * denominator);
    vec3 diffuse = (1.0 - fresnel) * c_diff / PI;
    vec3 specular = fresnel * geometry * distribution / (4.0 * nl * nv + 0.001);
    return nl * radiance * (diffuse + specular);
}

float sunlit(float nl) {
    vec3 coords = (shadow_matrix * vec4(world_position, 1.0)).xyz * 0.5 + 0.5;
    if (coords.z > 1.0) return 1.0;
    float bias = max(0.001 * (1.0 - nl), 0.0001);
    vec3 at = vec3(coords.xy, coords.z - bias);
    return 0.25 * (textureOffset(shadow_map, at, ivec2(-1, -1)) + textureOffset(shadow_map, at, ivec2(1, -1))
                   + textureOffset(shadow_map, at, ivec2(-1, 1)) + textureOffset(shadow_map, at, ivec2(1, 1)));
}

void main() {
    vec2 metal_rough = texture(metallic_roughness_texture, texcoord).gb;
    float roughness = clamp(roughness_factor * metal_rough.x, MIN_ROUGHNESS, 1.0);
    float metallic = clamp(metallic_factor * metal_rough.y, 0.0, 1.0);
    vec3 base = base_colour_factor.rgb * srgb_to_linear(texture(base_colour_texture, texcoord).rgb);
    vec3 c_diff = base * (1.0 - MIN_ROUGHNESS) * (1.0 - metallic);
    vec3 f0 = mix(vec3(MIN_ROUGHNESS), base, metallic);
    vec3 n = normalize(world_normal);
    if (two_sided && !gl_FrontFacing) n = -n;
    vec3 v = normalize(camera_position - world_position);
    vec3 colour = brdf(n, v, sun_towards, roughness, f0, c_diff, sun_radiance);
    if (shadows) colour *= sunlit(clamp(dot(n, sun_towards), 0.0, 1.0));
    colour += brdf(n, v, vec3(0.0, 0.0, 1.0), roughness, f0, c_diff, sky_radiance);
    colour += base * ambient;
    colour += emissive_factor * srgb_to_linear(texture(emissive_texture, texcoord).rgb);
    colour *= colour_multiplier.rgb;
    frag_colour = vec4(clamp(pow(colour, vec3(1.0 / 2.2)), 0.0, 1.0), 1.0);
}
"""
