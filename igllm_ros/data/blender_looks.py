"""Randomized looks for Blender Cycles renders (train_cycles_looks): the stage's light levels,
ambient, floor and exposure, drawn per scene.

moderngl's domain randomization lives in randomization.py; this is its counterpart for the
Cycles stage of cycles_worker.py, which otherwise always draws CLEVR's nominal rig. Held-out
renderers (val_eevee) light the same stage differently (darker objects, flatter contrast),
so a model that has seen the Cycles stage at one light level only misses dark objects there.
Lamp colours stay CLEVR's (only their power changes), so every object keeps its colour name;
masks do not depend on the look. Stored in the sample's record, so the image re-renders exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from igllm_ros.data.lighting import flat_from_dict


@dataclass(frozen=True)
class BlenderLook:
    """A Cycles render's stage factors; BlenderLook() is cycles_worker's nominal stage."""

    key_gain: float = 1.0  # multiplies CLEVR's lamp power
    fill_gain: float = 1.0
    back_gain: float = 1.0
    sun_gain: float = 1.0
    ambient: float = 0.05  # world colour (cycles_worker.AMBIENT)
    floor_albedo: float = 0.33  # linear grey (cycles_worker.FLOOR_ALBEDO)
    exposure_stops: float = 1.0  # view exposure (cycles_worker.EXPOSURE_STOPS)
    lamp_jitter_seed: int | None = None  # CLEVR's +-1 unit lamp jitter, drawn from this seed

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "BlenderLook":
        return flat_from_dict(cls, data, "blender look")


NOMINAL_BLENDER_LOOK = BlenderLook()


@dataclass(frozen=True)
class BlenderLookRanges:
    """Uniform (low, high) ranges; gains are drawn log-uniform (a factor of 2 either way is as likely)."""

    nominal_fraction: float = 0.15  # draws that keep CLEVR's stage exactly (lamps jittered)
    lamp_gain: tuple[float, float] = (0.35, 1.6)  # each of key, fill, back on its own: the rig's ratios change
    sun_gain: tuple[float, float] = (0.0, 3.0)
    ambient: tuple[float, float] = (0.01, 0.3)
    floor_albedo: tuple[float, float] = (0.12, 0.6)
    exposure_stops: tuple[float, float] = (-0.2, 1.4)  # nominal 1.0: darker more than brighter (EEVEE draws darker)


DEFAULT_BLENDER_RANGES = BlenderLookRanges()


def _log_uniform(rng: np.random.Generator, bounds) -> float:
    lo, hi = bounds
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def sample_blender_look(rng: np.random.Generator, ranges: BlenderLookRanges = DEFAULT_BLENDER_RANGES) -> BlenderLook:
    jitter_seed = int(rng.integers(0, 2**31 - 1))
    if rng.random() < ranges.nominal_fraction:
        return BlenderLook(lamp_jitter_seed=jitter_seed)
    return BlenderLook(
        key_gain=_log_uniform(rng, ranges.lamp_gain),
        fill_gain=_log_uniform(rng, ranges.lamp_gain),
        back_gain=_log_uniform(rng, ranges.lamp_gain),
        sun_gain=float(rng.uniform(*ranges.sun_gain)),
        ambient=float(rng.uniform(*ranges.ambient)),
        floor_albedo=float(rng.uniform(*ranges.floor_albedo)),
        exposure_stops=float(rng.uniform(*ranges.exposure_stops)),
        lamp_jitter_seed=jitter_seed,
    )
