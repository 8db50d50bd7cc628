"""The scene language: what the model writes, with its formatter and parser.

A program is one `camera(...)` line followed by one `add(...)` line per object:

    camera(loc=(+0.374, -0.326, +0.267))
    add(shape='cube', color='red', material='metal', size='large', loc=(+0.012, -0.034, +0.025), rotation=+12.5)

All numbers are in the table frame (metres; rotation is yaw about the table normal in
degrees). The camera line gives the camera position; with the pinned look-at camera
(world.py) that fixes its full pose, so every object can be published in the camera's
optical frame. Numbers are written with fixed precision, so format/parse round-trips.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from igllm_ros import world
from igllm_ros.scene import ATTRIBUTE_NAMES, Camera, Scene, SceneObject

LOC_DECIMALS = 3  # millimetres
ROTATION_DECIMALS = 1  # tenths of a degree

# An `add(...)` line lists the attributes (scene.ATTRIBUTE_NAMES), then loc and rotation.
ATTRIBUTE_FIELDS = ATTRIBUTE_NAMES

_NUMBER = r"[+-]?\d+(?:\.\d+)?"
_CAMERA_RE = re.compile(rf"^camera\(loc=\(({_NUMBER}), ({_NUMBER}), ({_NUMBER})\)\)$")
_ADD_RE = re.compile(
    r"^add\(shape='(?P<shape>[a-z]+)', color='(?P<color>[a-z]+)', "
    r"material='(?P<material>[a-z]+)', size='(?P<size>[a-z]+)', "
    rf"loc=\((?P<x>{_NUMBER}), (?P<y>{_NUMBER}), (?P<z>{_NUMBER})\), rotation=(?P<rotation>{_NUMBER})\)$"
)


@dataclass(frozen=True)
class ProgramError:
    line_number: int  # 1-based
    line: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.message}: {self.line!r}"


class ProgramParseError(ValueError):
    def __init__(self, errors: list[ProgramError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def format_number(value: float, decimals: int) -> str:
    text = f"{value:+.{decimals}f}"
    return "+" + text[1:] if text.startswith("-") and float(text) == 0.0 else text  # no "-0.000"


def format_camera(camera: Camera) -> str:
    x, y, z = (format_number(v, LOC_DECIMALS) for v in camera.loc)
    return f"camera(loc=({x}, {y}, {z}))"


def format_object(obj: SceneObject) -> str:
    x, y, z = (format_number(v, LOC_DECIMALS) for v in obj.loc)
    rotation = format_number(obj.rotation, ROTATION_DECIMALS)
    return (
        f"add(shape='{obj.shape}', color='{obj.color}', material='{obj.material}', "
        f"size='{obj.size}', loc=({x}, {y}, {z}), rotation={rotation})"
    )


def format_program(scene: Scene) -> str:
    return "\n".join([format_camera(scene.camera)] + [format_object(o) for o in scene.objects])


def quantize(scene: Scene) -> Scene:
    """The scene as the program writes it (numbers rounded to the program's precision)."""
    return parse_program(format_program(scene), strict=True)[0]


def parse_program(text: str, strict: bool = False) -> tuple[Scene, list[ProgramError]]:
    """Parse a program into a Scene and a list of errors, one per malformed line.

    Well-formed lines are kept even when others are malformed; a missing camera line
    leaves the nominal camera. With strict=True any error raises ProgramParseError.
    """
    objects: list[SceneObject] = []
    camera: Camera | None = None
    errors: list[ProgramError] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            if line.startswith("camera("):
                parsed_camera = _parse_camera(line)
                if camera is not None:
                    raise ValueError("a second camera line")
                camera = parsed_camera
            elif line.startswith("add("):
                objects.append(_parse_object(line))
            else:
                raise ValueError("expected a line starting with 'camera(' or 'add('")
        except ValueError as err:
            errors.append(ProgramError(number, raw, str(err)))
    if len(objects) > world.MAX_OBJECTS:
        errors.append(ProgramError(0, "", f"{len(objects)} objects; at most {world.MAX_OBJECTS}"))
    if strict and errors:
        raise ProgramParseError(errors)
    return Scene(objects=tuple(objects), camera=camera or Camera()), errors


def _parse_camera(line: str) -> Camera:
    match = _CAMERA_RE.match(line)
    if not match:
        raise ValueError("malformed camera line; expected camera(loc=(X, Y, Z))")
    return Camera(loc=tuple(float(v) for v in match.groups()))


def _parse_object(line: str) -> SceneObject:
    match = _ADD_RE.match(line)
    if not match:
        raise ValueError(
            "malformed add line; expected add(shape='..', color='..', material='..', "
            "size='..', loc=(X, Y, Z), rotation=R)"
        )
    fields = match.groupdict()
    for name in ATTRIBUTE_FIELDS:
        allowed = world.ATTRIBUTES[name]
        if fields[name] not in allowed:
            raise ValueError(f"unknown {name} {fields[name]!r}; expected one of {', '.join(allowed)}")
    return SceneObject(
        shape=fields["shape"],
        color=fields["color"],
        material=fields["material"],
        size=fields["size"],
        loc=(float(fields["x"]), float(fields["y"]), float(fields["z"])),
        rotation=float(fields["rotation"]),
    )


def canonical_rotation(shape: str, yaw_deg: float) -> float:
    """The yaw a program writes: cubes modulo 90 in [-45, 45) on the 0.1 degree grid (a
    value that rounds up to +45.0 wraps to -45.0), other shapes 0."""
    if shape != "cube":
        return 0.0
    snapped = round(world.canonical_yaw_deg(shape, yaw_deg), ROTATION_DECIMALS)
    return round(world.canonical_yaw_deg(shape, snapped), ROTATION_DECIMALS)


def with_confidences(obj: SceneObject, attribute_confidence: dict[str, float]) -> SceneObject:
    """A copy of obj carrying per-attribute confidences and their product as overall."""
    overall = 1.0
    for value in attribute_confidence.values():
        overall *= value
    return replace(obj, confidence=overall, attribute_confidence=dict(attribute_confidence))
