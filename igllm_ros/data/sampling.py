"""Seeded sampling of scenes from the pinned world (docs/scene_world.md, world.py).

Every number is drawn on the program's grid (millimetres, tenths of a degree), so the
sampled scene *is* what a program can say: ground truth == quantize(ground truth), and
spacing, table bounds and yaw bands hold exactly after quantization. The split's rules
(CoGenT condition, yaw band, visual shift, randomized look, camera mode) come from splits.py.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from igllm_ros import world
from igllm_ros.data.lighting import Lighting, sample_lighting
from igllm_ros.data.blender_looks import BlenderLook, sample_blender_look
from igllm_ros.data.randomization import Look, sample_look
from igllm_ros.data.splits import SPLITS, SplitRule, split_rule
from igllm_ros.program import quantize
from igllm_ros.scene import Camera, Scene, SceneObject

__all__ = ["SPLITS", "Lighting", "Look", "SceneSpec", "sample_scene", "sample_scene_with_labels", "min_visible_pixels"]

MM = 1000  # grid steps per metre (program.LOC_DECIMALS = 3)
PLACEMENT_TRIES = 100  # positions tried for one object before the scene starts over
OBJECT_RESAMPLES = 30  # times an invisible object is redrawn before the scene starts over
SCENE_ATTEMPTS = 200
CAMERA_TRIES = 100  # robot camera draws whose millimetre rounding left the ranges are redrawn


@dataclass(frozen=True)
class SceneSpec:
    """Everything that re-renders a sample exactly: the (quantized) scene, the lights, the size."""

    scene: Scene
    lighting: Lighting
    split: str
    width: int = world.IMAGE_WIDTH
    height: int = world.IMAGE_HEIGHT
    # the randomized factors beyond `lighting` (None: the nominal look); a BlenderLook for a
    # randomized Blender split (its `lighting` is then unused: Blender draws its own stage)
    look: Look | BlenderLook | None = None


def min_visible_pixels(width: int, height: int) -> int:
    """The visibility threshold (200 px at 320x240) scaled by pixel count."""
    return max(1, math.ceil(world.MIN_VISIBLE_PIXELS * width * height / (world.IMAGE_WIDTH * world.IMAGE_HEIGHT)))


def sample_scene(
    rng: np.random.Generator,
    split: str = "train",
    width: int = world.IMAGE_WIDTH,
    height: int = world.IMAGE_HEIGHT,
    renderer=None,
) -> SceneSpec:
    """A scene of the split whose every object shows at least the visible-pixel threshold.

    The visibility check renders an instance mask; pass a SceneRenderer of this size to
    reuse it (otherwise one per process and size is created and kept).
    """
    return sample_scene_with_labels(rng, split, width, height, renderer)[0]


def sample_scene_with_labels(rng, split="train", width=world.IMAGE_WIDTH, height=world.IMAGE_HEIGHT, renderer=None, camera=None):
    """(SceneSpec, mask, depth): the labels are the accepted scene's, so callers need not re-render them.

    `camera` pins the camera instead of drawing it (tests of extreme poses); the draws
    that follow then differ from the split's own samples.
    """
    rule = split_rule(split)
    if renderer is None:
        renderer = _shared_renderer(width, height)
    elif (renderer.width, renderer.height) != (width, height):
        raise ValueError(f"renderer is {renderer.width}x{renderer.height}, sampling asks for {width}x{height}")
    threshold = min_visible_pixels(width, height)
    if camera is None:
        camera = sample_robot_camera(rng) if rule.camera == "robot" else sample_camera(rng)
    if rule.randomize and rule.renderer != "moderngl":
        lighting, look = sample_lighting(rng, rule.visual_shift), sample_blender_look(rng)
    elif rule.randomize:
        lighting, look = sample_look(rng)
    else:
        lighting, look = sample_lighting(rng, rule.visual_shift), None
    for _ in range(SCENE_ATTEMPTS):
        count = int(rng.integers(world.MIN_OBJECTS, world.MAX_OBJECTS + 1))
        objects: list[SceneObject] = []
        for _ in range(count):
            obj = _place_object(rng, objects, rule)
            if obj is None:
                break
            objects.append(obj)
        if len(objects) < count:
            continue
        for _ in range(OBJECT_RESAMPLES):
            scene = quantize(Scene(objects=tuple(objects), camera=camera))
            mask, depth = renderer.render_labels(scene)
            visible = np.bincount(mask[mask >= 0].ravel(), minlength=count)
            hidden = np.flatnonzero(visible[:count] < threshold)
            if hidden.size == 0:
                return SceneSpec(scene, lighting, split, width, height, look), mask, depth
            i = int(hidden[0])  # redraw one hidden object (attributes and place), keep the rest
            replacement = _place_object(rng, objects[:i] + objects[i + 1 :], rule)
            if replacement is None:
                break
            objects[i] = replacement
    raise RuntimeError(f"could not sample a {split} scene with every object visible after {SCENE_ATTEMPTS} attempts")


def sample_camera(rng: np.random.Generator) -> Camera:
    """The nominal camera position jittered per coordinate, on the millimetre grid, inside +-jitter."""
    loc = []
    for nominal in world.CAMERA_NOMINAL_POSITION_M:
        lo = math.ceil(round((nominal - world.CAMERA_JITTER_M) * MM, 6))
        hi = math.floor(round((nominal + world.CAMERA_JITTER_M) * MM, 6))
        loc.append(int(rng.integers(lo, hi + 1)) / MM)
    return Camera(loc=tuple(loc))


def sample_robot_camera(rng: np.random.Generator) -> Camera:
    """A robot's camera pose: uniform in distance, elevation and azimuth inside world.ROBOT_CAMERA_*.

    It looks at the table origin with no roll (as every Camera); the position is on the
    millimetre grid, and draws that rounding pushed outside the ranges are redrawn.
    """
    azimuth0 = world.nominal_camera_azimuth_deg()
    half = world.ROBOT_CAMERA_AZIMUTH_HALF_RANGE_DEG
    for _ in range(CAMERA_TRIES):
        distance = rng.uniform(*world.ROBOT_CAMERA_DISTANCE_M)
        elevation = math.radians(rng.uniform(*world.ROBOT_CAMERA_ELEVATION_DEG))
        azimuth = math.radians(azimuth0 + rng.uniform(-half, half))
        xyz = (math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation))
        loc = tuple(round(distance * c * MM) / MM for c in xyz)
        if robot_camera_in_range(loc):
            return Camera(loc=loc)
    raise AssertionError("unreachable: millimetre rounding cannot keep every draw out of the ranges")


def robot_camera_in_range(loc) -> bool:
    """Whether a camera position lies inside the robot camera ranges of world.py."""
    distance, elevation, azimuth = world.camera_spherical(loc)
    offset = (azimuth - world.nominal_camera_azimuth_deg() + 180.0) % 360.0 - 180.0
    lo_d, hi_d = world.ROBOT_CAMERA_DISTANCE_M
    lo_e, hi_e = world.ROBOT_CAMERA_ELEVATION_DEG
    return lo_d <= distance <= hi_d and lo_e <= elevation <= hi_e and abs(offset) <= world.ROBOT_CAMERA_AZIMUTH_HALF_RANGE_DEG


def sample_yaw_deg(rng: np.random.Generator, bands_decideg) -> float:
    """Uniform over the union of half-open bands, in whole tenths of a degree."""
    widths = [hi - lo for lo, hi in bands_decideg]
    k = int(rng.integers(0, sum(widths)))
    for (lo, _), width in zip(bands_decideg, widths):
        if k < width:
            return (lo + k) / 10.0
        k -= width
    raise AssertionError("unreachable")


def _place_object(rng: np.random.Generator, others: list[SceneObject], rule: SplitRule) -> SceneObject | None:
    shape = str(rng.choice(world.SHAPES))
    size = str(rng.choice(world.SIZES))
    material = str(rng.choice(world.MATERIALS))
    color = str(rng.choice(world.allowed_colors(shape, rule.condition)))
    rotation = sample_yaw_deg(rng, rule.yaw_bands_decideg) if shape == "cube" else 0.0
    r = world.radius(shape, size)
    half = round(world.TABLE_HALF_EXTENT_M * MM)
    for _ in range(PLACEMENT_TRIES):
        x, y = (int(v) / MM for v in rng.integers(-half, half + 1, size=2))
        if all(_gap(x, y, r, o) >= world.MIN_GAP_M for o in others):
            return SceneObject(shape, color, material, size, (x, y, world.centre_height(shape, size)), rotation)
    return None


def _gap(x: float, y: float, r: float, other: SceneObject) -> float:
    return math.hypot(x - other.loc[0], y - other.loc[1]) - r - world.radius(other.shape, other.size)


_RENDERERS: dict = {}


def _shared_renderer(width: int, height: int):
    """One renderer per process and size (a forked child must not reuse its parent's context)."""
    from igllm_ros.data.render import SceneRenderer

    key = (os.getpid(), width, height)
    if key not in _RENDERERS:
        _RENDERERS[key] = SceneRenderer(width, height)
    return _RENDERERS[key]
