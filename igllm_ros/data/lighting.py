"""How a scene is lit and what the ground looks like: CLEVR's three-point setup.

Directions are given in the table frame as azimuth (degrees from +x towards +y) and
elevation (degrees above the table); a light shines *from* that direction. The nominal
directions are CLEVR's key, fill and back lamp positions seen from the table origin.
Colours are linear RGB. Everything here is stored with each sample so it re-renders
exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Lighting:
    key_azimuth_deg: float = -24.0
    key_elevation_deg: float = 40.0
    key_intensity: float = 1.0
    key_color: RGB = (1.0, 1.0, 1.0)
    fill_azimuth_deg: float = -151.0
    fill_elevation_deg: float = 31.0
    fill_intensity: float = 0.3
    fill_color: RGB = (1.0, 1.0, 1.0)
    back_azimuth_deg: float = 114.0
    back_elevation_deg: float = 63.0
    back_intensity: float = 0.35
    back_color: RGB = (1.0, 1.0, 1.0)
    ambient_intensity: float = 0.18
    ambient_color: RGB = (1.0, 1.0, 1.0)
    ground_color: RGB = (0.19, 0.19, 0.19)  # linear albedo of the ground plane
    horizon_color: RGB = (0.15, 0.15, 0.15)  # what the ground fades to far away (linear, lit)

    def direction(self, which: str) -> np.ndarray:
        """Unit vector (table frame) pointing from the scene towards light `which`."""
        az = math.radians(getattr(self, f"{which}_azimuth_deg"))
        el = math.radians(getattr(self, f"{which}_elevation_deg"))
        return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # flat: no deep copy needed

    @classmethod
    def from_dict(cls, data: dict) -> "Lighting":
        return flat_from_dict(cls, data, "lighting")


def flat_from_dict(cls, data: dict, what: str):
    """A flat dataclass from its JSON record: unknown keys refused, lists back to tuples."""
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {what} fields {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


NOMINAL = Lighting()

# The visual-domain shift of val_visual: warm key, cool fill, sand ground, more ambient.
VISUAL_SHIFT = Lighting(
    key_color=(1.0, 0.72, 0.42),
    key_intensity=1.6,
    fill_color=(0.45, 0.6, 1.0),
    fill_intensity=0.55,
    back_color=(1.0, 0.85, 0.7),
    ambient_intensity=0.42,
    ambient_color=(0.95, 0.9, 1.0),
    ground_color=(0.42, 0.30, 0.17),
    horizon_color=(0.20, 0.17, 0.14),
)

AZIMUTH_JITTER_DEG = 10.0
ELEVATION_JITTER_DEG = 6.0
INTENSITY_JITTER = 0.12  # relative
GROUND_JITTER = 0.04  # absolute, linear albedo, all channels together


def sample_lighting(rng: np.random.Generator, visual_shift: bool = False) -> Lighting:
    """The nominal (or shifted) lights with CLEVR-like jitter of directions and strengths."""
    base = VISUAL_SHIFT if visual_shift else NOMINAL
    jittered = {}
    for which in ("key", "fill", "back"):
        jittered[f"{which}_azimuth_deg"] = getattr(base, f"{which}_azimuth_deg") + rng.uniform(-1, 1) * AZIMUTH_JITTER_DEG
        jittered[f"{which}_elevation_deg"] = getattr(base, f"{which}_elevation_deg") + rng.uniform(-1, 1) * ELEVATION_JITTER_DEG
        jittered[f"{which}_intensity"] = getattr(base, f"{which}_intensity") * (1.0 + rng.uniform(-1, 1) * INTENSITY_JITTER)
    jittered["ambient_intensity"] = base.ambient_intensity * (1.0 + rng.uniform(-1, 1) * INTENSITY_JITTER)
    g = rng.uniform(-1, 1) * GROUND_JITTER
    jittered["ground_color"] = tuple(float(max(0.0, c + g)) for c in base.ground_color)
    return replace(base, **{k: float(v) if not isinstance(v, tuple) else v for k, v in jittered.items()})
