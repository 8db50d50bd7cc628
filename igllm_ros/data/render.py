"""A CLEVR-looking real-time renderer on a headless OpenGL context (moderngl over EGL).

Mesa's llvmpipe runs it on a CPU; the same code uses an NVIDIA GPU's EGL when there is
one. Three passes per image:
  1. shadow map: depth from the key light (orthographic, covers the table and around);
  2. colour: 4x MSAA, three-point lighting, PCF-filtered key shadow, rubber (Lambert +
     weak specular) vs metal (tinted environment reflection + sharp highlights), ground
     that fades to the horizon and darkens where objects touch it; resolved to RGB;
  3. labels: no antialiasing, writes (object index, optical z) per pixel: mask + depth.
The projection is built from scene.intrinsics and Camera.table_from_optical, so a
table-frame point lands on the pixel scene.project gives (pixel i spans [i, i+1)).
A randomized look (randomization.Look) draws with a second colour program compiled from
the same source with RANDOMIZED 1 (sun, shadow softness, floor texture, horizon fade,
colour convention, highlights, exposure and white balance); the nominal program is
unchanged by it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from igllm_ros import world
from igllm_ros.data import meshes
from igllm_ros.data.colours import base_colour
from igllm_ros.data.lighting import NOMINAL, Lighting
from igllm_ros.data.randomization import Look
from igllm_ros.scene import Scene, intrinsics

NEAR_M, FAR_M = 0.01, 30.0
GROUND_HALF_EXTENT_M = 12.0
SHADOW_MAP_SIZE = 512  # 1.4 mm texels: enough under the PCF blur, and half the cost of 1024
SHADOW_HALF_EXTENT_M = 0.36  # light-space half width of the shadow map's view
MSAA_SAMPLES = 4
LOD_SEGMENTS = (8, 12, 16, 24, 32, 48, 64)  # tessellations of spheres and cylinders
LOD_MAX_ERROR_PX = 0.25  # how far a tessellated outline may fall inside the true one
SHADOW_SEGMENTS = 12  # shadows are soft: coarse meshes suffice
MATERIAL_CODE = {"rubber": 0, "metal": 1}
GROUND_CODE = 2

_VERTEX = """
#version 330
uniform mat4 model;
uniform mat3 normal_mat;
uniform mat3 opt_from_table;
uniform vec3 cam_pos;
uniform vec4 intr;      // fx, fy, cx, cy
uniform vec2 size;      // width, height
uniform mat4 light_vp;
in vec3 in_pos;
in vec3 in_normal;
out vec3 v_pos;
out vec3 v_normal;
out vec4 v_light;
out float v_zopt;
const float N = %(near)r, F = %(far)r;
const float SHADOW_OFFSET = %(shadow_offset)r;
void main() {
    vec4 w = model * vec4(in_pos, 1.0);
    v_pos = w.xyz;
    v_normal = normal_mat * in_normal;
    // normal offset (two shadow-map texels) against shadow acne on surfaces at grazing light
    v_light = light_vp * vec4(w.xyz + normalize(v_normal) * SHADOW_OFFSET, 1.0);
    vec3 p = opt_from_table * (w.xyz - cam_pos);
    v_zopt = p.z;
    // Clip coordinates whose perspective divide gives the pinhole pixel of K (y down).
    gl_Position = vec4(2.0 * (intr.x * p.x + intr.z * p.z) / size.x - p.z,
                       p.z - 2.0 * (intr.y * p.y + intr.w * p.z) / size.y,
                       ((F + N) * p.z - 2.0 * F * N) / (F - N),
                       p.z);
}
""" % {"near": NEAR_M, "far": FAR_M, "shadow_offset": 2.0 * 2.0 * SHADOW_HALF_EXTENT_M / SHADOW_MAP_SIZE}

_COLOUR_FRAGMENT = """
#version 330
// RANDOMIZED 0 is the nominal look; 1 adds the domain-randomization factors (randomization.Look).
// The preprocessor strips the RANDOMIZED blocks, so the nominal program is token for token
// what it was before they existed: nominal images stay bit-identical.
#define RANDOMIZED %(randomized)d
uniform vec3 albedo;
uniform int material;          // 0 rubber, 1 metal, 2 ground
uniform vec3 cam_pos;
uniform vec3 key_dir, fill_dir, back_dir;
uniform vec3 key_col, fill_col, back_col;   // colour x intensity
uniform vec3 ambient;                        // colour x intensity
uniform vec3 horizon;
uniform vec3 sky;                            // light colour of the sky dome
uniform vec3 ground_lit;                     // the open ground's lit colour
uniform sampler2DShadow shadow_map;
uniform vec4 footprints[%(max_objects)d];     // x, y, radius, 0: contact darkening
uniform int n_footprints;
in vec3 v_pos;
in vec3 v_normal;
in vec4 v_light;
in float v_zopt;
out vec4 frag;
const float TEXEL = 1.0 / %(shadow_size)d.0;
#if RANDOMIZED
uniform vec3 sun_dir, sun_col;
uniform float shadow_on_sun;     // 1: the shadow map is the sun's, 0: the key's
uniform float shadow_radius;     // PCF radius, texels
uniform vec2 horizon_fade;       // the ground fades to the horizon colour between these distances
uniform vec4 floor_texture;      // amplitude, 1 / feature size, offset x, offset y
uniform vec4 material_params;    // rubber specular, rubber shininess, metal specular, metal shininess
uniform float metal_reflection;
uniform vec3 exposure_wb;        // exposure x white-balance gains

float value_noise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    vec4 h = fract(sin(vec4(dot(i, vec2(127.1, 311.7)), dot(i + vec2(1, 0), vec2(127.1, 311.7)),
                            dot(i + vec2(0, 1), vec2(127.1, 311.7)), dot(i + vec2(1, 1), vec2(127.1, 311.7)))) * 43758.5453);
    return mix(mix(h.x, h.y, u.x), mix(h.z, h.w, u.x), u.y);
}
#endif

#if RANDOMIZED
// (cos a, sin a) at a = 45 deg * i + 0.3 rad, radius 1 on even i and 0.5 on odd i
const vec2 SHADOW_RING[8] = vec2[8](
    vec2(0.9553365, 0.2955202), vec2(0.2332804, 0.4422446),
    vec2(-0.2955199, 0.9553366), vec2(-0.4422445, 0.2332805),
    vec2(-0.9553367, -0.2955196), vec2(-0.2332806, -0.4422444),
    vec2(0.2955193, -0.9553368), vec2(0.4422444, -0.2332808));
#endif

float key_shadow() {
    vec3 c = v_light.xyz / v_light.w * 0.5 + 0.5;
    if (c.x <= 0.0 || c.x >= 1.0 || c.y <= 0.0 || c.y >= 1.0 || c.z >= 1.0) return 1.0;
    float ref = c.z - 0.001;
    float s = 0.0;
#if RANDOMIZED
    // 8 taps on two rings of the chosen radius: hard (small) to soft (large) shadow edges.
    // The ring is a constant (llvmpipe does not fold cos/sin: 16 per fragment cost 10 %%).
    for (int i = 0; i < 8; ++i) {
        s += texture(shadow_map, vec3(c.xy + shadow_radius * TEXEL * SHADOW_RING[i], ref));
    }
    return s * 0.125;
#else
    // 4 bilinear-compared taps (each a 2x2 PCF): soft-looking edges at little cost.
    s += texture(shadow_map, vec3(c.xy + vec2(-1.5, -0.5) * TEXEL, ref));
    s += texture(shadow_map, vec3(c.xy + vec2( 0.5, -1.5) * TEXEL, ref));
    s += texture(shadow_map, vec3(c.xy + vec2( 1.5,  0.5) * TEXEL, ref));
    s += texture(shadow_map, vec3(c.xy + vec2(-0.5,  1.5) * TEXEL, ref));
    return s * 0.25;
#endif
}

// A cheap studio environment for metal. Below the horizon a ray sees the lit ground plane:
// dark near the object's own base (its contact shadow), brighter towards the key light,
// fading to the horizon colour far away. Above it, a sky dome brightening upwards with
// soft reflections of the three lamps.
vec3 environment(vec3 p, vec3 r) {
    float t = p.z / max(-r.z, 1e-3);
    vec2 hit = p.xy + t * r.xy;
    vec2 flat_r = normalize(r.xy + vec2(1e-5));
    float towards_key = max(dot(flat_r, normalize(key_dir.xy)), 0.0);
    vec3 below = ground_lit * (0.2 + 0.8 * smoothstep(0.0, 0.06, t)) * (0.3 + 1.6 * towards_key * towards_key * towards_key);
#if RANDOMIZED
    below = mix(below, horizon, smoothstep(horizon_fade.x, horizon_fade.y, length(hit)));
#else
    below = mix(below, horizon, smoothstep(0.25, 1.6, length(hit)));
#endif
    vec3 above = sky * mix(0.3, 1.1, sqrt(clamp(r.z, 0.0, 1.0)));
    above += key_col * 1.2 * pow(max(dot(r, key_dir), 0.0), 24.0)
           + (fill_col * pow(max(dot(r, fill_dir), 0.0), 16.0) + back_col * pow(max(dot(r, back_dir), 0.0), 16.0)) * 0.6;
#if RANDOMIZED
    above += sun_col * 1.2 * pow(max(dot(r, sun_dir), 0.0), 24.0);
#endif
    // CLEVR's lamps are large and near: their reflections reach down vertical surfaces,
    // which draws the bright streaks of metal cylinders and the lit faces of metal cubes.
    float streak = pow(towards_key, 60.0) * smoothstep(-0.9, 0.0, r.z);
    return mix(below, above, smoothstep(-0.015, 0.015, r.z)) + key_col * 0.9 * streak;
}

void main() {
    vec3 n = normalize(v_normal);
    vec3 v = normalize(cam_pos - v_pos);
    float sh = key_shadow();
#if RANDOMIZED
    float sh_sun = mix(1.0, sh, shadow_on_sun);
    sh = mix(sh, 1.0, shadow_on_sun);  // from here on: the key's shadow
#endif
    vec3 lit = ambient * (0.6 + 0.4 * n.z)
             + key_col * max(dot(n, key_dir), 0.0) * sh
             + fill_col * max(dot(n, fill_dir), 0.0)
             + back_col * max(dot(n, back_dir), 0.0);
#if RANDOMIZED
    lit += sun_col * max(dot(n, sun_dir), 0.0) * sh_sun;
#endif
    vec3 colour;
    if (material == 2) {
        float ao = 1.0;
        for (int i = 0; i < n_footprints; ++i) {
            float d = max(distance(v_pos.xy, footprints[i].xy) - 0.6 * footprints[i].z, 0.0);
            float r = footprints[i].z;
            ao *= 1.0 - 0.45 * exp(-d * d / (0.35 * r * r));
        }
#if RANDOMIZED
        vec2 q = (v_pos.xy + floor_texture.zw) * floor_texture.y;
        float grain = 0.65 * value_noise(q) + 0.35 * value_noise(q * 3.7);
        colour = albedo * (1.0 + floor_texture.x * (2.0 * grain - 1.0)) * lit * ao;
        float far = smoothstep(horizon_fade.x, horizon_fade.y, length(v_pos.xy));
#else
        colour = albedo * lit * ao;
        float far = smoothstep(0.25, 1.6, length(v_pos.xy));
#endif
        colour = mix(colour, horizon, far);
    } else if (material == 0) {
        vec3 h = normalize(key_dir + v);
#if RANDOMIZED
        vec3 h_sun = normalize(sun_dir + v);
        colour = albedo * lit + material_params.x * (key_col * pow(max(dot(n, h), 0.0), material_params.y) * sh
                                                      + sun_col * pow(max(dot(n, h_sun), 0.0), material_params.y) * sh_sun);
#else
        colour = albedo * lit + 0.06 * key_col * pow(max(dot(n, h), 0.0), 12.0) * sh;
#endif
    } else {
        vec3 r = reflect(-v, n);
        float fres = 0.75 + 0.25 * pow(1.0 - max(dot(n, v), 0.0), 5.0);
#if RANDOMIZED
        vec3 spec = (key_col * pow(max(dot(r, key_dir), 0.0), material_params.w) * sh
                     + sun_col * pow(max(dot(r, sun_dir), 0.0), material_params.w) * sh_sun) * material_params.z;
        colour = albedo * (0.08 * lit + fres * metal_reflection * environment(v_pos, r)) + spec * mix(albedo, vec3(1.0), 0.6);
#else
        vec3 spec = key_col * pow(max(dot(r, key_dir), 0.0), 400.0) * 8.0 * sh;
        colour = albedo * (0.08 * lit + fres * 1.25 * environment(v_pos, r)) + spec * mix(albedo, vec3(1.0), 0.6);
#endif
    }
#if RANDOMIZED
    colour *= exposure_wb;
#endif
    frag = vec4(pow(clamp(colour, 0.0, 1.0), vec3(1.0 / 2.2)), 1.0);
}
"""
_COLOUR_PARAMS = {"max_objects": world.MAX_OBJECTS * 4, "shadow_size": SHADOW_MAP_SIZE}

_LABEL_FRAGMENT = """
#version 330
uniform float object_id;
in vec3 v_pos;
in vec3 v_normal;
in vec4 v_light;
in float v_zopt;
out vec2 frag;
void main() { frag = vec2(object_id, v_zopt); }
"""

_SHADOW_VERTEX = """
#version 330
uniform mat4 model;
uniform mat4 light_vp;
in vec3 in_pos;
void main() { gl_Position = light_vp * model * vec4(in_pos, 1.0); }
"""
_SHADOW_FRAGMENT = """
#version 330
void main() {}
"""
MAX_FOOTPRINTS = world.MAX_OBJECTS * 4  # predicted scenes may hold more objects than the world allows


@dataclass
class Render:
    rgb: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) int16: -1 ground/background, i = index into scene.objects
    depth: np.ndarray  # (H, W) float32, metres along optical z; ground included; inf where nothing


def object_model_matrix(obj) -> tuple[np.ndarray, np.ndarray]:
    """(4x4 model, 3x3 normal matrix): unit mesh -> table frame for this object."""
    dims = np.asarray(world.dimensions(obj.shape, obj.size), dtype=float)
    yaw = math.radians(obj.rotation) if obj.shape == "cube" else 0.0
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    model = np.eye(4)
    model[:3, :3] = rot * dims  # rot @ diag(dims)
    model[:3, 3] = obj.loc
    return model, rot / dims  # rot @ diag(1/dims): inverse-transpose of rot @ diag(dims)


def light_view_projection(direction: np.ndarray) -> np.ndarray:
    """Orthographic view-projection of the key light, looking at the table origin."""
    forward = -direction / np.linalg.norm(direction)
    right = np.array([forward[1], -forward[0], 0.0])  # forward x (0, 0, 1)
    right /= np.linalg.norm(right)
    up = np.array([  # right x forward (np.cross is slow on 3-vectors)
        right[1] * forward[2] - right[2] * forward[1],
        right[2] * forward[0] - right[0] * forward[2],
        right[0] * forward[1] - right[1] * forward[0],
    ])
    eye = direction * 1.0
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = right, up, -forward
    view[:3, 3] = -view[:3, :3] @ eye
    h, near, far = SHADOW_HALF_EXTENT_M, 0.4, 1.6
    proj = np.diag([1.0 / h, 1.0 / h, -2.0 / (far - near), 1.0])
    proj[2, 3] = -(far + near) / (far - near)
    return proj @ view


def _mat(m: np.ndarray) -> bytes:
    return np.ascontiguousarray(np.asarray(m, dtype="f4").T).tobytes()  # GLSL is column-major


class SceneRenderer:
    """Renders any Scene (ground truth or prediction) to RGB, instance mask and depth.

    One context, framebuffers and meshes per renderer; reuse it. Not thread-safe.
    """

    def __init__(self, width: int = world.IMAGE_WIDTH, height: int = world.IMAGE_HEIGHT):
        import moderngl

        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.ctx = moderngl.create_context(standalone=True, backend="egl")
        ctx = self.ctx
        self._colour_prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_COLOUR_FRAGMENT % dict(_COLOUR_PARAMS, randomized=0))
        self._randomized_prog = None  # compiled on the first randomized look
        self._label_prog = ctx.program(vertex_shader=_VERTEX, fragment_shader=_LABEL_FRAGMENT)
        self._shadow_prog = ctx.program(vertex_shader=_SHADOW_VERTEX, fragment_shader=_SHADOW_FRAGMENT)

        self._vaos, self._buffers = {}, {}
        self._add_mesh(("ground",), meshes.ground(GROUND_HALF_EXTENT_M))
        self._add_mesh(("cube",), meshes.cube())
        for segments in LOD_SEGMENTS:
            self._add_mesh(("sphere", segments), meshes.sphere(segments, max(6, segments // 2)))
            self._add_mesh(("cylinder", segments), meshes.cylinder(segments))

        size = (self.width, self.height)
        self._shadow_tex = ctx.depth_texture((SHADOW_MAP_SIZE, SHADOW_MAP_SIZE))
        self._shadow_tex.compare_func = "<="
        self._shadow_tex.repeat_x = self._shadow_tex.repeat_y = False
        self._shadow_fbo = ctx.framebuffer(depth_attachment=self._shadow_tex)
        samples = min(MSAA_SAMPLES, ctx.max_samples)
        self._msaa_fbo = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer(size, 4, samples=samples)],
            depth_attachment=ctx.depth_renderbuffer(size, samples=samples),
        )
        self._resolve_fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer(size, 4)])
        self._label_tex = ctx.texture(size, 2, dtype="f4")
        self._label_fbo = ctx.framebuffer(color_attachments=[self._label_tex], depth_attachment=ctx.depth_renderbuffer(size))
        self._colour_prog["shadow_map"].value = 0
        self._k = intrinsics(self.width, self.height)

    # ------------------------------------------------------------------ public
    def render(self, scene: Scene, lighting: Lighting | None = None) -> Render:
        """RGB (antialiased), instance mask and depth of `scene` under `lighting` (None: nominal)."""
        mask, depth = self.render_labels(scene)
        return Render(rgb=self.render_rgb(scene, lighting), mask=mask, depth=depth)

    def render_rgb(self, scene: Scene, lighting: Lighting | None = None, look: Look | None = None) -> np.ndarray:
        """The antialiased image; `look` (randomization.Look) adds the randomized factors, None: nominal.

        Sensor effects of the look (noise, blur, JPEG, vignetting) are not applied here
        but by sensor.apply_sensor on the 8-bit image.
        """
        lighting = NOMINAL if lighting is None else lighting
        ctx = self.ctx
        pose = scene.camera.table_from_optical()
        placed = self._placed(scene, pose)
        convention = "srgb" if look is None else look.color_convention
        with ctx:
            ctx.enable_only(ctx.DEPTH_TEST)
            shadow_from_sun = look is not None and look.shadow_light == "sun"
            light_vp = light_view_projection(look.sun_direction() if shadow_from_sun else lighting.direction("key"))
            self._draw_shadow_map(placed, light_vp)
            prog, vao_kind = (self._colour_prog, "colour") if look is None else (self._randomized_program(), "colour_dr")
            self._set_camera(prog, pose)
            self._set_lighting(prog, lighting, light_vp, scene, look)
            self._msaa_fbo.use()
            self._msaa_fbo.clear(*lighting.horizon_color, 1.0, depth=1.0)
            self._shadow_tex.use(location=0)
            ctx.enable(ctx.CULL_FACE)  # closed meshes: back faces never show
            for obj, model, normal, mesh in placed:
                prog["model"].write(_mat(model))
                prog["normal_mat"].write(_mat(normal))
                prog["albedo"].value = base_colour(obj.color, convention)
                prog["material"].value = MATERIAL_CODE[obj.material]
                self._vaos[vao_kind, mesh].render()
            ctx.disable(ctx.CULL_FACE)
            # the ground last: the depth test then skips shading it under the objects
            prog["model"].write(_mat(np.eye(4)))
            prog["normal_mat"].write(_mat(np.eye(3)))
            prog["albedo"].value = tuple(float(v) for v in lighting.ground_color)
            prog["material"].value = GROUND_CODE
            self._vaos[vao_kind, ("ground",)].render()
            ctx.copy_framebuffer(self._resolve_fbo, self._msaa_fbo)
            data = self._resolve_fbo.read(components=3, alignment=1)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.height, self.width, 3)[::-1].copy()

    def render_labels(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        """(mask int16, depth float32) from an aliased pass: each pixel is what covers its centre."""
        ctx = self.ctx
        pose = scene.camera.table_from_optical()
        placed = self._placed(scene, pose)
        prog = self._label_prog
        with ctx:
            ctx.enable_only(ctx.DEPTH_TEST | ctx.CULL_FACE)
            self._set_camera(prog, pose)
            self._label_fbo.use()
            self._label_fbo.clear(-1.0, -1.0, 0.0, 0.0, depth=1.0)
            for i, (_, model, _, mesh) in enumerate(placed):
                prog["model"].write(_mat(model))
                prog["object_id"].value = float(i)
                self._vaos["label", mesh].render()
            ctx.disable(ctx.CULL_FACE)
            prog["model"].write(_mat(np.eye(4)))
            prog["object_id"].value = -1.0
            self._vaos["label", ("ground",)].render()
            data = self._label_fbo.read(components=2, dtype="f4", alignment=1)
        labels = np.frombuffer(data, dtype=np.float32).reshape(self.height, self.width, 2)[::-1]
        mask = np.rint(labels[:, :, 0]).astype(np.int16)
        depth = labels[:, :, 1].copy()
        depth[depth <= 0.0] = np.inf
        return mask, depth

    @property
    def gl_renderer(self) -> str:
        """The OpenGL renderer string, e.g. 'llvmpipe (...)' on a CPU or the GPU's name."""
        with self.ctx:
            return self.ctx.info["GL_RENDERER"]

    def release(self) -> None:
        if self.ctx is not None:
            self.ctx.release()
            self.ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    # ----------------------------------------------------------------- helpers
    def _add_mesh(self, key: tuple, mesh) -> None:
        vertices, triangles = mesh
        vbo, ibo = self.ctx.buffer(vertices.tobytes()), self.ctx.buffer(triangles.astype("i4").tobytes())
        self._buffers[key] = (vbo, ibo)
        self._vaos["colour", key] = self.ctx.vertex_array(self._colour_prog, [(vbo, "3f 3f", "in_pos", "in_normal")], ibo, 4)
        self._vaos["label", key] = self.ctx.vertex_array(self._label_prog, [(vbo, "3f 12x", "in_pos")], ibo, 4)
        self._vaos["shadow", key] = self.ctx.vertex_array(self._shadow_prog, [(vbo, "3f 12x", "in_pos")], ibo, 4)

    def _randomized_program(self):
        """The colour program with the randomization factors, and its vertex arrays (made once)."""
        if self._randomized_prog is None:
            prog = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_COLOUR_FRAGMENT % dict(_COLOUR_PARAMS, randomized=1))
            prog["shadow_map"].value = 0
            for key, (vbo, ibo) in self._buffers.items():
                self._vaos["colour_dr", key] = self.ctx.vertex_array(prog, [(vbo, "3f 3f", "in_pos", "in_normal")], ibo, 4)
            self._randomized_prog = prog
        return self._randomized_prog

    def _placed(self, scene: Scene, pose) -> list:
        """(object, model matrix, normal matrix, mesh key) per object, in scene order.

        Curved shapes get the coarsest tessellation whose outline stays within
        LOD_MAX_ERROR_PX of the true one at the object's distance (vertex work is most
        of llvmpipe's cost, and most objects are small in the image).
        """
        if not scene.objects:
            return []
        rot, t = pose
        centres = (np.array([o.loc for o in scene.objects], dtype=float) - t) @ rot  # optical frame
        placed = []
        for obj, centre in zip(scene.objects, centres):
            model, normal = object_model_matrix(obj)
            if obj.shape == "cube":
                mesh = ("cube",)
            else:
                radius_px = self._k[0, 0] * world.radius(obj.shape, obj.size) / max(centre[2] - world.LARGE_RADIUS_M, NEAR_M)
                mesh = (obj.shape, _lod_segments(radius_px))
            placed.append((obj, model, normal, mesh))
        return placed

    def _set_camera(self, prog, pose) -> None:
        rot, t = pose
        k = self._k
        prog["opt_from_table"].write(_mat(rot.T))
        prog["cam_pos"].value = tuple(float(v) for v in t)
        prog["intr"].value = (k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        prog["size"].value = (float(self.width), float(self.height))

    def _set_lighting(self, prog, lighting: Lighting, light_vp: np.ndarray, scene: Scene, look: Look | None) -> None:
        prog["light_vp"].write(_mat(light_vp))
        lamps = {}
        for which in ("key", "fill", "back"):
            prog[f"{which}_dir"].value = tuple(float(v) for v in lighting.direction(which))
            lamps[which] = np.asarray(getattr(lighting, f"{which}_color")) * getattr(lighting, f"{which}_intensity")
            prog[f"{which}_col"].value = tuple(float(v) for v in lamps[which])
        ambient = lighting.ambient_intensity * np.asarray(lighting.ambient_color)
        prog["ambient"].value = tuple(float(v) for v in ambient)
        prog["horizon"].value = tuple(float(v) for v in lighting.horizon_color)
        # what a mirror sees: the open ground as lit, and a sky tinted like the lamps
        ground = ambient + sum(lamps[w] * max(lighting.direction(w)[2], 0.0) for w in lamps)
        if look is not None:
            sun = np.asarray(look.sun_color) * look.sun_intensity
            ground = ground + sun * max(look.sun_direction()[2], 0.0)
            lamps["sun"] = sun
            self._set_look(prog, look, sun)
        prog["ground_lit"].value = tuple(float(v) for v in ground * np.asarray(lighting.ground_color))
        sky = sum(lamps.values())
        prog["sky"].value = tuple(float(v) for v in sky / max(sky.max(), 1e-6))
        footprints = np.zeros((MAX_FOOTPRINTS, 4), dtype="f4")
        objects = scene.objects[:MAX_FOOTPRINTS]
        for i, obj in enumerate(objects):
            footprints[i, :3] = (obj.loc[0], obj.loc[1], world.radius(obj.shape, obj.size))
        prog["footprints"].write(footprints.tobytes())
        prog["n_footprints"].value = len(objects)

    @staticmethod
    def _set_look(prog, look: Look, sun: np.ndarray) -> None:
        prog["sun_dir"].value = tuple(float(v) for v in look.sun_direction())
        prog["sun_col"].value = tuple(float(v) for v in sun)
        prog["shadow_on_sun"].value = 1.0 if look.shadow_light == "sun" else 0.0
        prog["shadow_radius"].value = float(look.shadow_softness)
        prog["horizon_fade"].value = tuple(float(v) for v in look.horizon_fade_m)
        prog["floor_texture"].value = (float(look.texture_amplitude), 1.0 / float(look.texture_scale_m), *(float(v) for v in look.texture_offset_m))
        prog["material_params"].value = (float(look.rubber_specular), float(look.rubber_shininess), float(look.metal_specular), float(look.metal_shininess))
        prog["metal_reflection"].value = float(look.metal_reflection)
        prog["exposure_wb"].value = tuple(float(look.exposure * g) for g in look.white_balance)

    def _draw_shadow_map(self, placed: list, light_vp: np.ndarray) -> None:
        self._shadow_fbo.use()
        self._shadow_fbo.clear(depth=1.0)
        self._shadow_prog["light_vp"].write(_mat(light_vp))
        for obj, model, _, _ in placed:
            self._shadow_prog["model"].write(_mat(model))
            self._vaos["shadow", ("cube",) if obj.shape == "cube" else (obj.shape, SHADOW_SEGMENTS)].render()


def _lod_segments(radius_px: float) -> int:
    for segments in LOD_SEGMENTS:
        if radius_px * (1.0 - math.cos(math.pi / segments)) <= LOD_MAX_ERROR_PX:
            return segments
    return LOD_SEGMENTS[-1]
