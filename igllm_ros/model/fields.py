"""The numbers of a scene program: per field its precision, its valid range and the
normalisation the numeric head regresses, all derived from the pinned world (world.py).

Fields: camera cx, cy, cz (the camera line), then per object x, y, z, rotation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from igllm_ros import program, world
from igllm_ros.program import canonical_rotation  # noqa: F401  (the grammar's yaw, written once in program.py)


@dataclass(frozen=True)
class NumberField:
    name: str
    decimals: int
    lo: float  # smallest value the program may hold for this field (already on the grid)
    hi: float  # largest
    centre: float  # the numeric head regresses (v - centre) / scale, roughly in [-1, 1]
    scale: float

    @property
    def step(self) -> float:
        return 10.0 ** -self.decimals

    def normalise(self, value: float) -> float:
        return (value - self.centre) / self.scale

    def denormalise(self, value: float) -> float:
        return value * self.scale + self.centre

    def snap(self, value: float) -> float:
        """The nearest value the program can write inside the field's range."""
        if not math.isfinite(value):
            value = self.centre
        value = min(max(value, self.lo), self.hi)
        return round(value, self.decimals)

    def text(self, value: float) -> str:
        return program.format_number(self.snap(value), self.decimals)

    def all_texts(self) -> list[str]:
        """Every number this field can be written as (what the char-mode grammar allows)."""
        scale = 10**self.decimals
        k_lo, k_hi = round(self.lo * scale), round(self.hi * scale)
        return [program.format_number(k / scale, self.decimals) for k in range(k_lo, k_hi + 1)]

    def contains(self, value: float) -> bool:
        return self.lo - 1e-9 <= value <= self.hi + 1e-9


def _outward(lo: float, hi: float, decimals: int) -> tuple[float, float]:
    """[lo, hi] widened to the program's grid."""
    scale = 10**decimals
    return math.floor(lo * scale + 1e-9) / scale, math.ceil(hi * scale - 1e-9) / scale


def _field(name: str, decimals: int, lo: float, hi: float, centre: float, scale: float) -> NumberField:
    lo, hi = _outward(lo, hi, decimals)
    return NumberField(name, decimals, lo, hi, centre, scale)


_L = program.LOC_DECIMALS
_R = program.ROTATION_DECIMALS
_HALF = world.TABLE_HALF_EXTENT_M
_Z_MAX = max(world.centre_height(shape, size) for shape in world.SHAPES for size in world.SIZES)
_YAW_HALF = world.CUBE_SYMMETRY_DEG / 2.0
_J = world.CAMERA_JITTER_M
_C = world.CAMERA_NOMINAL_POSITION_M

FIELDS: dict[str, NumberField] = {
    "cx": _field("cx", _L, _C[0] - _J, _C[0] + _J, _C[0], _J),
    "cy": _field("cy", _L, _C[1] - _J, _C[1] + _J, _C[1], _J),
    "cz": _field("cz", _L, _C[2] - _J, _C[2] + _J, _C[2], _J),
    "x": _field("x", _L, -_HALF, _HALF, 0.0, _HALF),
    "y": _field("y", _L, -_HALF, _HALF, 0.0, _HALF),
    "z": _field("z", _L, 0.0, _Z_MAX, _Z_MAX / 2.0, _Z_MAX / 2.0),
    # Cube yaw in [-45, 45): the top of the range is one grid step below +45.
    "rotation": NumberField("rotation", _R, -_YAW_HALF, _YAW_HALF - 10.0**-_R, 0.0, _YAW_HALF),
}
CAMERA_FIELDS = ("cx", "cy", "cz")
OBJECT_LOC_FIELDS = ("x", "y", "z")



# ---- camera ranges -----------------------------------------------------------------------
# A model is trained for one camera range (ModelConfig.camera_range): "nominal", the pinned
# camera jittered per coordinate (the fields above), or "robot", any camera of the robot
# ranges in world.py (distance, elevation, azimuth around the nominal one) and the nominal
# box too. The range sets the camera numbers' bounds and normalisation, so it is part of a
# model's definition: models trained before it existed are "nominal".
CAMERA_RANGES = ("nominal", "robot")


def _robot_camera_box() -> tuple[tuple[float, float], ...]:
    d_lo, d_hi = world.ROBOT_CAMERA_DISTANCE_M
    e_lo, e_hi = world.ROBOT_CAMERA_ELEVATION_DEG
    az0, half = world.nominal_camera_azimuth_deg(), world.ROBOT_CAMERA_AZIMUTH_HALF_RANGE_DEG
    points = []
    for d in (d_lo, d_hi):
        for k in range(41):  # the box of a spherical patch: its extremes lie on the boundary
            e = math.radians(e_lo + (e_hi - e_lo) * k / 40)
            for j in range(41):
                a = math.radians(az0 - half + 2 * half * j / 40)
                points.append((d * math.cos(e) * math.cos(a), d * math.cos(e) * math.sin(a), d * math.sin(e)))
    box = []
    for axis in range(3):
        values = [p[axis] for p in points] + [_C[axis] - _J, _C[axis] + _J]
        box.append((min(values), max(values)))
    return tuple(box)


def number_fields(camera_range: str = "nominal") -> dict[str, NumberField]:
    """The number fields of a model trained for `camera_range`."""
    if camera_range == "nominal":
        return FIELDS
    if camera_range != "robot":
        raise ValueError(f"camera_range is {camera_range!r}; expected one of {CAMERA_RANGES}")
    fields = dict(FIELDS)
    for name, (lo, hi) in zip(CAMERA_FIELDS, _robot_camera_box()):
        fields[name] = _field(name, _L, lo, hi, (lo + hi) / 2.0, (hi - lo) / 2.0)
    return fields
