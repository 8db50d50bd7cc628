"""Domain randomization: every factor of the look, its range, and one seeded draw per scene.

`RandomizationRanges` holds every range (documented in docs/data.md); `sample_look(rng)`
draws a scene's `Lighting` (the three lamps, ambient, ground, horizon) and a `Look` (all
the rest: sun, shadow softness, floor texture and horizon fade, colour convention,
materials, exposure, white balance, sensor effects). Both are stored in the sample's
record, so the image re-renders exactly. A fraction of draws keep the nominal look
(`Look` None: the jittered three-point rig of `train`, no sensor effects), so the nominal
domain stays covered.

Labels stay true: the lamps' colours are white-balanced by the "camera", and a draw is
kept only if every world colour lit by any one lamp stays nearest its own name
(`colour_names_hold`); highlight strength is tied to shininess so broad highlights stay
dim; the linear colour convention is CLEVR's own. Masks do not depend on the look.
test/test_data_randomization.py checks, on rendered images, that every object's colour
stays nearest its own name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from igllm_ros import world
from igllm_ros.data.lighting import NOMINAL, Lighting, flat_from_dict, sample_lighting

RGB = tuple[float, float, float]
RIGS = ("three_point", "clevr_sun", "random")
COLOR_CONVENTIONS = ("srgb", "linear")  # CLEVR RGB/255 decoded as sRGB (ours), or used as linear (CLEVR's)


@dataclass(frozen=True)
class RandomizationRanges:
    """Every randomized factor: (low, high) ranges, uniform unless said otherwise."""

    nominal_fraction: float = 0.2  # draws that keep the nominal look exactly
    # lighting
    rig_weights: tuple[float, float, float] = (0.4, 0.35, 0.25)  # three_point, clevr_sun, random
    lamp_azimuth_jitter_deg: float = 25.0  # three_point and clevr_sun: around the nominal directions
    lamp_elevation_jitter_deg: float = 12.0
    random_elevation_deg: tuple[float, float] = (15.0, 75.0)  # random rig: any azimuth
    key_intensity: tuple[float, float] = (0.6, 1.5)
    fill_intensity: tuple[float, float] = (0.1, 0.6)
    back_intensity: tuple[float, float] = (0.1, 0.6)
    sun_intensity: tuple[float, float] = (0.4, 1.1)  # clevr_sun rig only
    sun_elevation_deg: tuple[float, float] = (30.0, 75.0)
    color_temperature_k: tuple[float, float] = (3500.0, 9000.0)  # the scene's light (uniform in mired)
    lamp_mired_spread: float = 40.0  # each lamp, the ambient and the sun: +- this around the scene's (mired)
    ambient_intensity: tuple[float, float] = (0.08, 0.45)
    shadow_softness: tuple[float, float] = (0.4, 4.0)  # PCF radius in shadow-map texels (nominal 1.5)
    # floor and background
    ground_albedo: tuple[float, float] = (0.07, 0.42)  # linear grey level (nominal 0.19)
    ground_tint: float = 0.25  # per-channel relative deviation of the ground's albedo
    horizon_level: tuple[float, float] = (0.4, 1.4)  # horizon colour / ground albedo (nominal 0.79)
    horizon_fade_start_m: tuple[float, float] = (0.2, 0.6)  # nominal 0.25
    horizon_fade_end_m: tuple[float, float] = (0.9, 3.0)  # nominal 1.6
    texture_amplitude: tuple[float, float] = (0.0, 0.18)  # relative albedo modulation of the floor
    texture_scale_m: tuple[float, float] = (0.008, 0.08)  # feature size of the floor's value noise
    # appearance
    linear_color_probability: float = 0.5
    # Highlights: shininess (the lobe's sharpness: roughness) and a strength relative to a lobe
    # of the same energy as the nominal one (peak ~ shininess), so broad highlights stay dim
    # and never wash an object's colour out.
    rubber_shininess: tuple[float, float] = (6.0, 40.0)  # nominal 12
    rubber_specular_scale: tuple[float, float] = (0.0, 1.2)  # x 0.06 x shininess / 12
    metal_shininess: tuple[float, float] = (250.0, 900.0)  # nominal 400
    metal_specular_scale: tuple[float, float] = (0.6, 1.2)  # x 8 x shininess / 400
    metal_reflection: tuple[float, float] = (0.95, 1.5)  # environment gain, nominal 1.25
    auto_exposure: float = 0.8  # share (log) of the light level's change from nominal that the camera's exposure undoes
    exposure: tuple[float, float] = (0.75, 1.15)  # then this factor on top
    linear_exposure_scale: float = 0.7  # linear-convention albedos are 1.5-3.6x brighter: expose less
    white_balance_correction: tuple[float, float] = (0.6, 1.0)  # share (log gains) of the lamps' mean cast removed
    white_balance_residual: float = 0.06  # per-channel gain jitter after correction
    # sensor (post-process on the 8-bit image)
    noise_sigma: tuple[float, float] = (0.0, 4.0)  # 8-bit levels, Gaussian
    blur_probability: float = 0.5
    blur_sigma_px: tuple[float, float] = (0.2, 0.8)
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (55, 95)
    vignetting: tuple[float, float] = (0.0, 0.35)  # darkening at the image corners


DEFAULT_RANGES = RandomizationRanges()
LIGHT_TRIES = 50  # draws of lamp colours + white balance before falling back to white light
NAME_MARGIN = 0.6  # colour_names_hold: a tinted colour must stay clearly nearest its own name


@dataclass(frozen=True)
class Look:
    """What a randomized image adds to `Lighting`. NOMINAL_LOOK draws exactly the nominal image."""

    rig: str = "three_point"
    sun_azimuth_deg: float = 0.0
    sun_elevation_deg: float = 60.0
    sun_intensity: float = 0.0
    sun_color: RGB = (1.0, 1.0, 1.0)
    shadow_light: str = "key"  # the lamp that casts the shadow map: "key" or "sun"
    shadow_softness: float = 1.5
    horizon_fade_m: tuple[float, float] = (0.25, 1.6)
    texture_amplitude: float = 0.0
    texture_scale_m: float = 0.03
    texture_offset_m: tuple[float, float] = (0.0, 0.0)
    color_convention: str = "srgb"
    rubber_specular: float = 0.06
    rubber_shininess: float = 12.0
    metal_specular: float = 8.0
    metal_shininess: float = 400.0
    metal_reflection: float = 1.25
    exposure: float = 1.0
    white_balance: RGB = (1.0, 1.0, 1.0)
    noise_sigma: float = 0.0
    noise_seed: int = 0
    blur_sigma_px: float = 0.0
    jpeg_quality: int = 0  # 0: no JPEG round trip
    vignetting: float = 0.0

    def sun_direction(self) -> np.ndarray:
        az, el = math.radians(self.sun_azimuth_deg), math.radians(self.sun_elevation_deg)
        return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])

    def to_dict(self) -> dict:
        return {f.name: list(v) if isinstance(v, tuple) else v for f in fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, data: dict) -> "Look":
        return flat_from_dict(cls, data, "look")


NOMINAL_LOOK = Look()


def kelvin_to_rgb(kelvin: float) -> RGB:
    """Linear RGB of a black body at `kelvin` (Tanner Helland's fit), unit luminance (6600 K ~ white)."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    lin = [(min(max(c, 0.0), 255.0) / 255.0) ** 2.2 for c in (r, g, b)]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return tuple(float(c / lum) for c in lin)


def _u(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def sample_look(rng: np.random.Generator, ranges: RandomizationRanges = DEFAULT_RANGES) -> tuple[Lighting, Look | None]:
    """(Lighting, Look) of one randomized scene; Look None for the nominal fraction."""
    if rng.uniform() < ranges.nominal_fraction:
        return sample_lighting(rng), None
    rig = RIGS[int(rng.choice(len(RIGS), p=np.asarray(ranges.rig_weights) / sum(ranges.rig_weights)))]
    convention = "linear" if rng.uniform() < ranges.linear_color_probability else "srgb"
    for _ in range(LIGHT_TRIES):  # lamp colours and white balance that keep every colour name
        lighting, look = _sample_lights(rng, ranges, rig, convention)
        if colour_names_hold(lighting, look):
            break
    else:  # practically never: fall back to white lamps, no cast
        lighting = replace(lighting, **{f"{w}_color": (1.0, 1.0, 1.0) for w in ("key", "fill", "back", "ambient")})
        look = replace(look, sun_color=(1.0, 1.0, 1.0), white_balance=(1.0, 1.0, 1.0))
    lighting = _sample_floor(rng, ranges, lighting)
    fade_start = _u(rng, ranges.horizon_fade_start_m)
    rubber_shininess, metal_shininess = _u(rng, ranges.rubber_shininess), _u(rng, ranges.metal_shininess)
    look = replace(
        look,
        shadow_softness=_u(rng, ranges.shadow_softness),
        horizon_fade_m=(fade_start, max(fade_start + 0.3, _u(rng, ranges.horizon_fade_end_m))),
        texture_amplitude=_u(rng, ranges.texture_amplitude),
        texture_scale_m=_u(rng, ranges.texture_scale_m),
        texture_offset_m=(_u(rng, (0.0, 100.0)), _u(rng, (0.0, 100.0))),
        rubber_shininess=rubber_shininess,
        rubber_specular=NOMINAL_LOOK.rubber_specular * rubber_shininess / NOMINAL_LOOK.rubber_shininess * _u(rng, ranges.rubber_specular_scale),
        metal_shininess=metal_shininess,
        metal_specular=NOMINAL_LOOK.metal_specular * metal_shininess / NOMINAL_LOOK.metal_shininess * _u(rng, ranges.metal_specular_scale),
        metal_reflection=_u(rng, ranges.metal_reflection),
        exposure=auto_exposure(lighting, look, ranges)
        * _u(rng, ranges.exposure)
        * (ranges.linear_exposure_scale if convention == "linear" else 1.0),
    )
    return lighting, _sample_sensor(rng, ranges, look)


def _sample_lights(rng: np.random.Generator, ranges: RandomizationRanges, rig: str, convention: str) -> tuple[Lighting, Look]:
    """The lamps (and sun) of the rig, and the camera's white balance for them."""
    scene_mired = _scene_mired(rng, ranges)
    lighting = _sample_lamps(rng, ranges, rig, scene_mired)
    look = Look(rig=rig, color_convention=convention)
    if rig == "clevr_sun":
        look = replace(
            look,
            sun_azimuth_deg=_u(rng, (-180.0, 180.0)),
            sun_elevation_deg=_u(rng, ranges.sun_elevation_deg),
            sun_intensity=_u(rng, ranges.sun_intensity),
            sun_color=_lamp_colour(rng, ranges, scene_mired),
        )
        look = replace(look, shadow_light="sun" if look.sun_intensity > lighting.key_intensity else "key")
    return lighting, replace(look, white_balance=_white_balance(rng, ranges, lighting, look))


def light_level(lighting: Lighting, look: Look) -> float:
    """Irradiance of an upward-facing surface: ambient plus every lamp's share from above."""
    level = lighting.ambient_intensity
    for which in ("key", "fill", "back"):
        level += getattr(lighting, f"{which}_intensity") * max(float(lighting.direction(which)[2]), 0.0)
    return level + look.sun_intensity * max(float(look.sun_direction()[2]), 0.0)


def auto_exposure(lighting: Lighting, look: Look, ranges: RandomizationRanges = DEFAULT_RANGES) -> float:
    """The camera's exposure for this light level: a sun on top of three lamps is not 2x brighter."""
    return (light_level(NOMINAL, NOMINAL_LOOK) / light_level(lighting, look)) ** ranges.auto_exposure


def _chromaticity(linear_rgb: np.ndarray) -> np.ndarray:
    return linear_rgb[..., :2] / np.maximum(linear_rgb.sum(-1, keepdims=True), 1e-9)


def colour_names_hold(lighting: Lighting, look: Look, margin: float = NAME_MARGIN) -> bool:
    """Whether every world colour, lit by any one of the lamps through the white balance, stays
    nearest its own name (rg chromaticity of linear RGB, the names' albedos under white light
    as references) by `margin`: own distance <= margin x the nearest other name's distance."""
    from igllm_ros.data.colours import base_colour

    albedos = np.array([base_colour(c, look.color_convention) for c in world.COLORS])
    refs = _chromaticity(albedos)
    lamps = [getattr(lighting, f"{w}_color") for w in ("key", "fill", "back", "ambient")]
    if look.sun_intensity > 0.0:
        lamps.append(look.sun_color)
    for lamp in lamps:
        seen = _chromaticity(albedos * np.asarray(lamp) * np.asarray(look.white_balance))
        d = np.linalg.norm(seen[:, None, :] - refs[None, :, :], axis=-1)  # [seen colour, reference]
        own = np.diag(d).copy()
        np.fill_diagonal(d, np.inf)
        if np.any(own > margin * d.min(axis=1)):
            return False
    return True


def _lamp_colour(rng: np.random.Generator, ranges: RandomizationRanges, scene_mired: float) -> RGB:
    return kelvin_to_rgb(1e6 / (scene_mired + _u(rng, (-1.0, 1.0)) * ranges.lamp_mired_spread))


def _scene_mired(rng: np.random.Generator, ranges: RandomizationRanges) -> float:
    lo, hi = ranges.color_temperature_k
    return _u(rng, (1e6 / hi, 1e6 / lo))


def _sample_lamps(rng: np.random.Generator, ranges: RandomizationRanges, rig: str, scene_mired: float) -> Lighting:
    values = {}
    for which in ("key", "fill", "back"):
        if rig == "random":
            az, el = _u(rng, (-180.0, 180.0)), _u(rng, ranges.random_elevation_deg)
        else:
            az = getattr(NOMINAL, f"{which}_azimuth_deg") + _u(rng, (-1.0, 1.0)) * ranges.lamp_azimuth_jitter_deg
            el = getattr(NOMINAL, f"{which}_elevation_deg") + _u(rng, (-1.0, 1.0)) * ranges.lamp_elevation_jitter_deg
        values[f"{which}_azimuth_deg"] = az
        values[f"{which}_elevation_deg"] = min(max(el, 8.0), 85.0)
        values[f"{which}_intensity"] = _u(rng, getattr(ranges, f"{which}_intensity"))
        values[f"{which}_color"] = _lamp_colour(rng, ranges, scene_mired)
    values["ambient_intensity"] = _u(rng, ranges.ambient_intensity)
    values["ambient_color"] = _lamp_colour(rng, ranges, scene_mired)
    return replace(NOMINAL, **values)


def _sample_floor(rng: np.random.Generator, ranges: RandomizationRanges, lighting: Lighting) -> Lighting:
    level = _u(rng, ranges.ground_albedo)
    tint = rng.uniform(-1.0, 1.0, size=3) * ranges.ground_tint
    ground = tuple(float(level * (1.0 + t)) for t in tint)
    horizon_level = _u(rng, ranges.horizon_level)
    horizon_tint = 1.0 + rng.uniform(-1.0, 1.0, size=3) * ranges.ground_tint * 0.5
    horizon = tuple(float(min(0.9, g * horizon_level * t)) for g, t in zip(ground, horizon_tint))
    return replace(lighting, ground_color=ground, horizon_color=horizon)


def _white_balance(rng: np.random.Generator, ranges: RandomizationRanges, lighting: Lighting, look: Look) -> RGB:
    """Camera gains that remove most of the lamps' mean colour cast, plus a small residual."""
    lamps = [(np.asarray(getattr(lighting, f"{w}_color")), getattr(lighting, f"{w}_intensity")) for w in ("key", "fill", "back")]
    lamps += [(np.asarray(lighting.ambient_color), lighting.ambient_intensity), (np.asarray(look.sun_color), look.sun_intensity)]
    mean = sum(c * i for c, i in lamps) / sum(i for _, i in lamps)
    gains = (1.0 / np.maximum(mean, 1e-3)) ** _u(rng, ranges.white_balance_correction)
    gains *= 1.0 + rng.uniform(-1.0, 1.0, size=3) * ranges.white_balance_residual
    gains /= gains @ np.array([0.2126, 0.7152, 0.0722])  # keep the luminance: exposure sets brightness
    return tuple(float(g) for g in gains)


def _sample_sensor(rng: np.random.Generator, ranges: RandomizationRanges, look: Look) -> Look:
    blur = _u(rng, ranges.blur_sigma_px) if rng.uniform() < ranges.blur_probability else 0.0
    jpeg = int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1)) if rng.uniform() < ranges.jpeg_probability else 0
    return replace(
        look,
        noise_sigma=_u(rng, ranges.noise_sigma),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
        blur_sigma_px=blur,
        jpeg_quality=jpeg,
        vignetting=_u(rng, ranges.vignetting),
    )
