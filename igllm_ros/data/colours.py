"""The world's colours as the renderers' linear albedo (one home: render.py and
randomization.py both need it, and render.py imports randomization)."""
from __future__ import annotations

from igllm_ros import world


def srgb_to_linear(rgb255) -> tuple[float, float, float]:
    return tuple(float((c / 255.0) ** 2.2) for c in rgb255)


def base_colour(name: str, convention: str = "srgb") -> tuple[float, float, float]:
    """Linear albedo of a world colour: CLEVR's RGB decoded as sRGB (ours) or taken as linear (CLEVR's)."""
    rgb255 = world.COLORS_RGB[name]
    if convention == "srgb":
        return srgb_to_linear(rgb255)
    if convention == "linear":
        return tuple(c / 255.0 for c in rgb255)
    raise ValueError(f"unknown colour convention {convention!r}; expected 'srgb' or 'linear'")
