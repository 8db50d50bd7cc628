"""The Blender side of igllm_ros.data.cycles: a persistent Cycles render worker.

Runs inside .venv-cycles (bpy, numpy < 2), started by CyclesRenderer as
    .venv-cycles/bin/python cycles_worker.py --reply-fd N
It imports only bpy, mathutils, bmesh and the standard library: never igllm_ros, whose
dependencies need numpy 2. Requests are JSON lines on stdin; each gets one JSON line on
file descriptor N (Blender prints its own chatter to stdout, which the client logs).

`--engine EEVEE` draws the RGB image with Blender's rasterizer EEVEE instead (the same
stage; the mask pass stays Cycles'): the held-out renderer of val_eevee.

A request: {"cmd": "render", "kind": "rgb" | "mask", "out": "/path.png", "scene": {...}}
where the scene is what cycles.scene_description makes: width, height, intrinsics, the
camera pose and the objects (shape, dimensions, material, rgb, location, yaw). The reply
is {"ok": true, "seconds": s} or {"ok": false, "error": "..."}. {"cmd": "quit"} ends it.

The look is CLEVR's (facebookresearch/clevr-dataset-gen base_scene.blend, as Kubric
re-states it), scaled from CLEVR units to metres: key, fill and back area lamps and a
sun, principled rubber and metal, CLEVR RGB / 255 as linear base colour, a grey floor,
the Standard view transform. The mask pass renders every object in flat emission of its
index with one sample at the pixel centre, so a pixel holds what covers its centre, as
in the moderngl renderer's label pass.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import traceback

import bpy  # first: bmesh and mathutils come with it
import bmesh
from mathutils import Matrix, Vector

CLEVR_UNIT_M = 0.05  # = igllm_ros.world.CLEVR_UNIT_M; one CLEVR unit in metres
# CLEVR's lamps in CLEVR units, as (position, power W, colour, square size). Power scales
# with distance squared, so irradiance at the objects is CLEVR's once lengths are in metres.
LAMPS = {
    "key": ((6.44671, -2.90517, 4.2584), 100.0, (1.0, 0.929, 0.816), 0.5),  # 0xffedd0
    "fill": ((-4.67112, -4.0136, 3.01122), 30.0, (0.761, 0.816, 1.0), 0.5),  # 0xc2d0ff
    "back": ((-1.1685, 2.64602, 5.81574), 50.0, (1.0, 1.0, 1.0), 1.0),
}
SUN_POSITION = (11.6608, -6.62799, 25.8232)  # only its direction matters
SUN_STRENGTH = 0.45  # W/m^2: irradiance, independent of scale
SUN_ANGLE_RAD = 0.2  # its soft-shadow spread
LAMP_JITTER_UNITS = 1.0  # CLEVR's --key/fill/back_light_jitter: uniform +-1 unit per axis
AMBIENT = 0.05  # world colour: CLEVR's dim ambient light
FLOOR_ALBEDO = 0.33  # linear grey
# Not from CLEVR's files: one stop up brings the floor near the objects to CLEVR's mid grey
# (about sRGB 130); the rig's ratios, colours and shadows stay CLEVR's.
EXPOSURE_STOPS = 1.0
FLOOR_HALF_EXTENT_M = 12.0  # the whole view below the horizon is floor
RUBBER = {"Metallic": 0.0, "Roughness": 0.7, "IOR": 1.25}
METAL = {"Metallic": 1.0, "Roughness": 0.2, "IOR": 2.5}
CUBE_BEVEL = 0.04  # fraction of the edge: CLEVR's cubes have rounded edges
EEVEE = "EEVEE"
EEVEE_SAMPLES = 8  # EEVEE's anti-aliasing / soft-shadow samples (Cycles' `samples` does not apply to it)
SEGMENTS = 64  # spheres and cylinders: outline within 0.05 px of the true one at 320x240


def build_meshes() -> dict:
    """Unit meshes (extent 1, centred) that objects scale by their dimensions."""
    meshes = {}
    for shape in ("cube", "sphere", "cylinder"):
        bm = bmesh.new()
        if shape == "cube":
            bmesh.ops.create_cube(bm, size=1.0)
            bmesh.ops.bevel(bm, geom=list(bm.edges), offset=CUBE_BEVEL, segments=3, profile=0.5, affect="EDGES")
        elif shape == "sphere":
            bmesh.ops.create_uvsphere(bm, u_segments=SEGMENTS, v_segments=SEGMENTS // 2, radius=0.5)
        else:
            bmesh.ops.create_cone(bm, cap_ends=True, segments=SEGMENTS, radius1=0.5, radius2=0.5, depth=1.0)
        _smooth_except_flat_faces(bm)
        mesh = bpy.data.meshes.new(f"unit_{shape}")
        bm.to_mesh(mesh)
        bm.free()
        mesh.materials.append(None)  # one slot; objects link their own material into it
        meshes[shape] = mesh
    return meshes


def _smooth_except_flat_faces(bm) -> None:
    """Curved faces shade smooth; axis-aligned ones (cube faces, cylinder caps) stay flat
    with sharp edges around them, so their normals are not bent by their neighbours."""
    bm.normal_update()
    for face in bm.faces:
        flat = max(abs(c) for c in face.normal) > 0.999
        face.smooth = not flat
        if flat:
            for edge in face.edges:
                edge.smooth = False


def principled(name: str, rgb, values: dict):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    for key, value in values.items():
        bsdf.inputs[key].default_value = value
    return mat


def index_emission_material():
    """Emission of (object index + 0.25) / 255: an 8-bit grey PNG then reads the index.

    The quarter keeps rounding and truncation on the same integer; the floor (index 0)
    and the black world read 0, which the client maps to -1.
    """
    mat = bpy.data.materials.new("index_emission")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    info = nodes.new("ShaderNodeObjectInfo")
    add = nodes.new("ShaderNodeMath")
    add.operation, add.inputs[1].default_value = "ADD", 0.25
    div = nodes.new("ShaderNodeMath")
    div.operation, div.inputs[1].default_value = "DIVIDE", 255.0
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(info.outputs["Object Index"], add.inputs[0])
    links.new(add.outputs[0], div.inputs[0])
    links.new(div.outputs[0], emission.inputs["Color"])
    links.new(emission.outputs[0], out.inputs["Surface"])
    return mat


def flat_world(name: str, value: float):
    w = bpy.data.worlds.new(name)
    w.use_nodes = True
    bg = w.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (value, value, value, 1.0)
    bg.inputs["Strength"].default_value = 1.0
    return w


class Stage:
    """The Blender scene, built once: camera, lamps, floor, meshes, materials, worlds.

    Each render replaces only the objects and moves the camera (and lamps, if jittered).
    """

    def __init__(self, threads: int, device: str = "CPU", engine: str = "CYCLES"):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self.scene = bpy.context.scene
        self.engine = engine
        self.scene.render.engine = "CYCLES"
        self._render_settings(threads)
        if engine == EEVEE:
            self._eevee_settings()
        self.device = use_gpu() if device == "GPU" else "CPU"
        self.meshes = build_meshes()
        self.materials = {}
        self.index_material = index_emission_material()
        self.worlds = {"rgb": flat_world("clevr_ambient", AMBIENT), "mask": flat_world("black", 0.0)}
        self.camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
        self.scene.collection.objects.link(self.camera)
        self.scene.camera = self.camera
        self.lamps = {name: self._add_lamp(name, spec) for name, spec in LAMPS.items()}
        self._add_sun()
        self._add_floor()
        self.objects = []
        self.exposure_stops = EXPOSURE_STOPS

    def _render_settings(self, threads: int) -> None:
        render, cycles = self.scene.render, self.scene.cycles
        cycles.device = "CPU"
        render.threads_mode, render.threads = "FIXED", max(1, threads)
        render.use_persistent_data = True  # keep what it can between renders
        render.dither_intensity = 0.0
        render.image_settings.file_format = "PNG"
        render.image_settings.color_depth = "8"
        # Short paths: one diffuse bounce lights the shadows; two glossy ones let metal
        # mirror the floor and its neighbours. Longer paths changed nothing visible.
        cycles.diffuse_bounces, cycles.glossy_bounces = 1, 2
        cycles.transmission_bounces = cycles.volume_bounces = cycles.transparent_max_bounces = 0
        cycles.caustics_reflective = cycles.caustics_refractive = False
        cycles.blur_glossy = 1.0
        cycles.denoiser = "OPENIMAGEDENOISE"
        # Measured at 320x240, 16 samples: the accurate prefilter (extra denoiser runs on the
        # albedo and normal passes) was half the CPU time, and the light tree another fifth,
        # for 0.01/255 closer to a 128-sample render. Five lamps need no tree.
        cycles.denoising_prefilter = "FAST"
        cycles.use_light_tree = False
        vs = self.scene.view_settings
        vs.look, vs.exposure, vs.gamma = "None", EXPOSURE_STOPS, 1.0

    def _eevee_settings(self) -> None:
        # EEVEE rasterizes (shadow maps, light probes) where Cycles path-traces: the same
        # stage, lamps and materials drawn by a different algorithm, a renderer no model
        # trains on. Screen-space ray tracing off and 8 samples: 20 s a 320x240 render on a
        # loaded 2-core machine, against 36 s with it on and 16 samples, the look alike.
        eevee = self.scene.eevee
        eevee.taa_render_samples = EEVEE_SAMPLES
        eevee.use_shadows = True
        eevee.use_raytracing = False

    def _add_lamp(self, name: str, spec):
        _, power, colour, size = spec
        light = bpy.data.lights.new(name, "AREA")
        light.shape, light.size = "SQUARE", size * CLEVR_UNIT_M
        light.energy = power * CLEVR_UNIT_M**2
        light.color = colour
        obj = bpy.data.objects.new(name, light)
        obj.visible_camera = False
        self.scene.collection.objects.link(obj)
        return obj

    def _add_sun(self) -> None:
        sun = bpy.data.lights.new("sun", "SUN")
        sun.energy, sun.angle = SUN_STRENGTH, SUN_ANGLE_RAD
        obj = bpy.data.objects.new("sun", sun)
        obj.rotation_euler = Vector(SUN_POSITION).to_track_quat("Z", "Y").to_euler()  # -Z points at the origin
        self.scene.collection.objects.link(obj)
        self.sun = obj

    def _add_floor(self) -> None:
        bm = bmesh.new()
        bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=FLOOR_HALF_EXTENT_M)
        mesh = bpy.data.meshes.new("floor")
        bm.to_mesh(mesh)
        bm.free()
        grey = (FLOOR_ALBEDO,) * 3
        material = principled("floor", grey, {"Roughness": 0.9, "IOR": 1.3})
        self.floor_bsdf = material.node_tree.nodes["Principled BSDF"]
        mesh.materials.append(material)
        floor = bpy.data.objects.new("floor", mesh)
        floor.pass_index = 0
        self.scene.collection.objects.link(floor)

    def material(self, rgb, kind: str):
        key = (tuple(rgb), kind)
        if key not in self.materials:
            values = {"rubber": RUBBER, "metal": METAL}[kind]
            self.materials[key] = principled(f"{kind}_{rgb}", rgb, values)
        return self.materials[key]

    def set_scene(self, desc: dict) -> None:
        for obj in self.objects:
            bpy.data.objects.remove(obj, do_unlink=True)
        self.objects = []
        for i, o in enumerate(desc["objects"]):
            obj = bpy.data.objects.new(f"object_{i}", self.meshes[o["shape"]])
            obj.location = o["location"]
            obj.rotation_euler = (0.0, 0.0, math.radians(o["yaw_deg"]))
            obj.scale = o["dimensions"]
            obj.pass_index = i + 1
            obj.material_slots[0].link = "OBJECT"
            obj.material_slots[0].material = self.material([c / 255.0 for c in o["rgb"]], o["material"])
            self.scene.collection.objects.link(obj)
            self.objects.append(obj)
        self._set_camera(desc)
        self._place_lamps(desc.get("light_jitter_seed"))
        self._apply_look(desc.get("look") or {})

    def _apply_look(self, look: dict) -> None:
        """The stage's light levels, ambient, floor grey and exposure (blender_looks.BlenderLook);
        a missing factor (or no look) is CLEVR's. Set on every scene, so none leaks into the next."""
        for name, (_, power, _, _) in LAMPS.items():
            self.lamps[name].data.energy = power * CLEVR_UNIT_M**2 * float(look.get(f"{name}_gain", 1.0))
        self.sun.data.energy = SUN_STRENGTH * float(look.get("sun_gain", 1.0))
        ambient = float(look.get("ambient", AMBIENT))
        self.worlds["rgb"].node_tree.nodes["Background"].inputs["Color"].default_value = (ambient, ambient, ambient, 1.0)
        grey = float(look.get("floor_albedo", FLOOR_ALBEDO))
        self.floor_bsdf.inputs["Base Color"].default_value = (grey, grey, grey, 1.0)
        self.exposure_stops = float(look.get("exposure_stops", EXPOSURE_STOPS))

    def _set_camera(self, desc: dict) -> None:
        width, height = desc["width"], desc["height"]
        fx, fy, cx, cy = desc["intrinsics"]
        if abs(fx - fy) > 1e-9 * fx:
            raise ValueError(f"Blender's camera has square pixels: fx {fx} != fy {fy}")
        render = self.scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        cam = self.camera.data
        cam.sensor_fit, cam.sensor_width = "HORIZONTAL", 32.0
        cam.lens = fx / width * cam.sensor_width
        # Shifts are fractions of the width under a horizontal fit; pixel centres sit at
        # i + 0.5, so the principal point (cx, cy) is in the same continuous coordinates.
        cam.shift_x = (width / 2.0 - cx) / width
        cam.shift_y = (cy - height / 2.0) / width
        cam.clip_start, cam.clip_end = 0.005, 100.0
        r = desc["camera"]["table_from_optical"]  # columns: optical x right, y down, z forward
        # Blender's camera looks down its -z with +y up: columns (x, -y, -z) of the optical frame.
        self.camera.matrix_world = Matrix(
            [[r[i][0], -r[i][1], -r[i][2], desc["camera"]["position"][i]] for i in range(3)] + [[0.0, 0.0, 0.0, 1.0]]
        )

    def _place_lamps(self, seed) -> None:
        rng = random.Random(seed)
        for name, (position, *_rest) in LAMPS.items():
            jitter = [0.0] * 3 if seed is None else [rng.uniform(-1.0, 1.0) * LAMP_JITTER_UNITS for _ in range(3)]
            loc = Vector([(p + j) * CLEVR_UNIT_M for p, j in zip(position, jitter)])
            obj = self.lamps[name]
            obj.location = loc
            obj.rotation_euler = loc.to_track_quat("Z", "Y").to_euler()  # its -z (the beam) at the origin

    def render(self, kind: str, out: str, samples: int, denoise: bool) -> None:
        scene, cycles = self.scene, self.scene.cycles
        if kind == "rgb":
            scene.render.engine = "BLENDER_EEVEE_NEXT" if self.engine == EEVEE else "CYCLES"
            scene.world = self.worlds["rgb"]
            bpy.context.view_layer.material_override = None
            scene.view_settings.view_transform, scene.view_settings.exposure = "Standard", self.exposure_stops
            scene.render.image_settings.color_mode = "RGB"
            cycles.samples, cycles.use_denoising, cycles.use_adaptive_sampling = samples, denoise, True
            cycles.pixel_filter_type, cycles.filter_width = "BLACKMAN_HARRIS", 1.5
            cycles.max_bounces = 3
        elif kind == "mask":
            scene.render.engine = "CYCLES"  # one exact sample at each pixel centre, whatever draws the RGB
            scene.world = self.worlds["mask"]
            bpy.context.view_layer.material_override = self.index_material
            scene.view_settings.view_transform, scene.view_settings.exposure = "Raw", 0.0  # the values as emitted
            scene.render.image_settings.color_mode = "BW"
            # one sample at the pixel centre (a box filter 0.01 px wide), no light paths
            cycles.samples, cycles.use_denoising, cycles.use_adaptive_sampling = 1, False, False
            cycles.pixel_filter_type, cycles.filter_width = "BOX", 0.01
            cycles.max_bounces = 0
        else:
            raise ValueError(f"unknown render kind {kind!r}; expected 'rgb' or 'mask'")
        scene.render.filepath = out
        bpy.ops.render.render(write_still=True)


def use_gpu() -> str:
    """Points Cycles at the first GPU backend with a device; its name, or RuntimeError."""
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in ("OPTIX", "CUDA", "HIP", "ONEAPI"):
        try:
            prefs.compute_device_type = backend
        except TypeError:  # not built into this wheel
            continue
        prefs.get_devices()  # refreshes the list for this backend
        if any(d.type == backend for d in prefs.devices):
            for d in prefs.devices:
                d.use = d.type == backend
            bpy.context.scene.cycles.device = "GPU"
            return backend
    raise RuntimeError("Cycles found no GPU (tried OptiX, CUDA, HIP, oneAPI); use device='CPU'")


def serve(reply_fd: int, threads: int, device: str, engine: str = "CYCLES") -> None:
    replies = os.fdopen(reply_fd, "w", buffering=1)

    def reply(**fields) -> None:
        replies.write(json.dumps(fields) + "\n")
        replies.flush()

    try:
        stage = Stage(threads, device, engine)
    except Exception as err:  # e.g. no GPU: the client says why it cannot start
        reply(ok=False, error=f"{type(err).__name__}: {err}", trace=traceback.format_exc(limit=4))
        return
    reply(ok=True, ready=True, blender=bpy.app.version_string, device=stage.device)
    for line in sys.stdin:
        if not line.strip():
            continue
        start = time.perf_counter()
        try:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                reply(ok=True)
                return
            if req.get("cmd") != "render":
                raise ValueError(f"unknown command {req.get('cmd')!r}")
            stage.set_scene(req["scene"])
            stage.render(req["kind"], req["out"], int(req.get("samples", 64)), bool(req.get("denoise", True)))
            reply(ok=True, seconds=time.perf_counter() - start)
        except Exception as err:  # the client raises it; the worker stays up for the next request
            reply(ok=False, error=f"{type(err).__name__}: {err}", trace=traceback.format_exc(limit=4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", choices=("CPU", "GPU"), default="CPU")
    parser.add_argument("--engine", choices=("CYCLES", EEVEE), default="CYCLES", help="what draws the RGB image")
    args = parser.parse_args()
    serve(args.reply_fd, args.threads, args.device, args.engine)


if __name__ == "__main__":
    main()
