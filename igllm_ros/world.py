"""The pinned scene world: CLEVR's world scaled to a tabletop, in metres.

This module is the single source of truth for the constants in docs/scene_world.md.
Benchmarks and outside tests depend on these values: change them only with the spec.

Frames: the *table* frame has its origin at the table centre, x and y on the table,
z up (REP-103). The camera's *optical* frame is x right, y down, z forward.
"""
from __future__ import annotations

import math

CLEVR_UNIT_M = 0.05  # 1 CLEVR unit in metres

# Objects stand on z = 0 with centres inside x, y in [-TABLE_HALF_EXTENT_M, +TABLE_HALF_EXTENT_M].
TABLE_HALF_EXTENT_M = 0.15

SHAPES = ("cube", "sphere", "cylinder")
SIZES = ("large", "small")
MATERIALS = ("rubber", "metal")
COLORS_RGB = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
COLORS = tuple(COLORS_RGB)
ATTRIBUTES = {"shape": SHAPES, "color": COLORS, "material": MATERIALS, "size": SIZES}

LARGE_RADIUS_M = 0.035  # sphere and cylinder radius; half the cube's face diagonal
LARGE_CYLINDER_HEIGHT_M = 0.07
SIZE_SCALE = {"large": 1.0, "small": 0.5}

MIN_OBJECTS = 3
MAX_OBJECTS = 10
MIN_GAP_M = 0.0125  # surface to surface, using each object's radius
MIN_VISIBLE_PIXELS = 200  # at the default 320x240
CUBE_SYMMETRY_DEG = 90.0  # only cubes show yaw, modulo this

# Camera: looks at the table origin with no roll; each coordinate jittered uniformly.
CAMERA_NOMINAL_POSITION_M = (0.374, -0.3255, 0.267)
CAMERA_JITTER_M = 0.025
# Robot camera poses (val_camera, train_robust): anywhere in this shell around the table
# origin, looking at the origin with no roll. Azimuth is measured in the table plane from +x
# towards +y, elevation above the table; the nominal camera sits at about 0.563 m, 28.3 deg
# elevation, -41.0 deg azimuth.
ROBOT_CAMERA_DISTANCE_M = (0.40, 0.85)
ROBOT_CAMERA_ELEVATION_DEG = (20.0, 60.0)
ROBOT_CAMERA_AZIMUTH_HALF_RANGE_DEG = 10.0  # around the nominal camera's azimuth
FOCAL_OVER_WIDTH = 1.09375  # fx = fy = this x image width (35 mm lens on a 32 mm sensor)
IMAGE_WIDTH = 320
IMAGE_HEIGHT = 240

# CLEVR-CoGenT: which colors each shape may take. Spheres take any color in both conditions.
_COGENT_A_CUBE = ("gray", "blue", "brown", "yellow")
_COGENT_A_CYLINDER = ("red", "green", "purple", "cyan")
COGENT_COLORS = {
    "A": {"cube": _COGENT_A_CUBE, "cylinder": _COGENT_A_CYLINDER, "sphere": COLORS},
    "B": {"cube": _COGENT_A_CYLINDER, "cylinder": _COGENT_A_CUBE, "sphere": COLORS},
}


def radius(shape: str, size: str) -> float:
    """The object's radius in the table plane (the cube's half diagonal), metres."""
    _check(shape, size)
    return LARGE_RADIUS_M * SIZE_SCALE[size]


def dimensions(shape: str, size: str) -> tuple[float, float, float]:
    """Full extents (x, y, z) in the object's own frame, metres."""
    r = radius(shape, size)
    if shape == "cube":
        edge = 2.0 * r / math.sqrt(2.0)
        return (edge, edge, edge)
    if shape == "sphere":
        return (2.0 * r, 2.0 * r, 2.0 * r)
    return (2.0 * r, 2.0 * r, LARGE_CYLINDER_HEIGHT_M * SIZE_SCALE[size])


def centre_height(shape: str, size: str) -> float:
    """z of the object's centre when it stands on the table."""
    return dimensions(shape, size)[2] / 2.0


def allowed_colors(shape: str, condition: str) -> tuple[str, ...]:
    """Colors a shape may take under CoGenT condition 'A' or 'B'."""
    if condition not in COGENT_COLORS:
        raise ValueError(f"unknown CoGenT condition {condition!r}; expected 'A' or 'B'")
    return COGENT_COLORS[condition][shape]


def canonical_yaw_deg(shape: str, yaw_deg: float) -> float:
    """The yaw the world can show: cubes modulo 90 degrees in [-45, 45), others 0."""
    if shape != "cube":
        return 0.0
    half = CUBE_SYMMETRY_DEG / 2.0
    return (yaw_deg + half) % CUBE_SYMMETRY_DEG - half


def camera_spherical(loc) -> tuple[float, float, float]:
    """(distance m, elevation deg above the table, azimuth deg from +x towards +y) of a camera position."""
    x, y, z = (float(v) for v in loc)
    distance = math.sqrt(x * x + y * y + z * z)
    return distance, math.degrees(math.asin(z / distance)), math.degrees(math.atan2(y, x))


def nominal_camera_azimuth_deg() -> float:
    return camera_spherical(CAMERA_NOMINAL_POSITION_M)[2]


def focal_length_px(width: int) -> float:
    return FOCAL_OVER_WIDTH * width


def _check(shape: str, size: str) -> None:
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
