"""Scenes to the baseline's normalised training targets, and predictions back to scenes.

Every normalisation derives from world.py: x, y by the table's half extent, z over the
range of centre heights, camera by its jitter around the nominal position, cube yaw as
(sin, cos) of (360 / symmetry) x yaw so the 90-degree symmetry is built in.
"""
from __future__ import annotations

import math

import numpy as np

from igllm_ros import world
from igllm_ros.scene import ATTRIBUTE_NAMES, Scene

_HEIGHTS = [world.centre_height(s, z) for s in world.SHAPES for z in world.SIZES]
Z_CENTRE = (max(_HEIGHTS) + min(_HEIGHTS)) / 2.0
Z_SCALE = (max(_HEIGHTS) - min(_HEIGHTS)) / 2.0
LOC_CENTRE = np.array([0.0, 0.0, Z_CENTRE])
LOC_SCALE = np.array([world.TABLE_HALF_EXTENT_M, world.TABLE_HALF_EXTENT_M, Z_SCALE])
CAMERA_CENTRE = np.array(world.CAMERA_NOMINAL_POSITION_M)
CAMERA_SCALE = world.CAMERA_JITTER_M
YAW_FREQUENCY = 360.0 / world.CUBE_SYMMETRY_DEG  # 4: yaw and yaw + 90 degrees look the same
ATTRIBUTE_INDEX = {name: {v: i for i, v in enumerate(values)} for name, values in world.ATTRIBUTES.items()}


def encode_scene(scene: Scene, max_objects: int) -> dict[str, np.ndarray]:
    """Padded per-object targets for one scene (objects beyond max_objects are an error)."""
    objects = scene.objects
    if len(objects) > max_objects:
        raise ValueError(f"scene has {len(objects)} objects; the baseline has only {max_objects} queries")
    labels = np.full((max_objects, len(ATTRIBUTE_NAMES)), -1, dtype=np.int64)
    loc = np.zeros((max_objects, 3), dtype=np.float32)
    yaw = np.zeros((max_objects, 2), dtype=np.float32)
    mask = np.zeros(max_objects, dtype=bool)
    for i, obj in enumerate(objects):
        for j, name in enumerate(ATTRIBUTE_NAMES):
            value = getattr(obj, name)
            if value not in ATTRIBUTE_INDEX[name]:
                raise ValueError(f"object {i} has unknown {name} {value!r}")
            labels[i, j] = ATTRIBUTE_INDEX[name][value]
        loc[i] = (np.asarray(obj.loc, dtype=float) - LOC_CENTRE) / LOC_SCALE
        yaw[i] = yaw_to_sincos(obj.rotation)
        mask[i] = True
    camera = (np.asarray(scene.camera.loc, dtype=float) - CAMERA_CENTRE) / CAMERA_SCALE
    return {"labels": labels, "loc": loc, "yaw": yaw, "mask": mask, "camera": camera.astype(np.float32)}


def yaw_to_sincos(yaw_deg: float) -> tuple[float, float]:
    angle = math.radians(yaw_deg * YAW_FREQUENCY)
    return math.sin(angle), math.cos(angle)


def sincos_to_yaw(sin: float, cos: float) -> float:
    """Degrees in [-45, 45) for the cube's 90-degree symmetry."""
    yaw = math.degrees(math.atan2(sin, cos)) / YAW_FREQUENCY
    return world.canonical_yaw_deg("cube", yaw)


def decode_loc(normalised: np.ndarray) -> np.ndarray:
    return np.asarray(normalised, dtype=float) * LOC_SCALE + LOC_CENTRE


def decode_camera(normalised: np.ndarray) -> np.ndarray:
    return np.asarray(normalised, dtype=float) * CAMERA_SCALE + CAMERA_CENTRE
