"""Sensor effects on a rendered 8-bit image: vignetting, blur, noise, JPEG compression.

Applied after rendering (randomized looks only), in that order, seeded by the look's own
noise_seed so the image re-renders exactly from its record.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from igllm_ros.data.randomization import Look


@lru_cache(maxsize=8)
def _radius_squared(width: int, height: int) -> np.ndarray:
    """Squared distance from the image centre, 1 at the corners, (H, W, 1) float32."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((u + 0.5 - width / 2) ** 2 + (v + 0.5 - height / 2) ** 2) / ((width / 2) ** 2 + (height / 2) ** 2)
    return r2[..., None]


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def apply_sensor(rgb: np.ndarray, look: Look | None) -> np.ndarray:
    """The image as the randomized sensor records it; unchanged when look is None or has no effects."""
    if look is None:
        return rgb
    height, width = rgb.shape[:2]
    if look.vignetting > 0.0:
        rgb = _to_uint8(rgb * (1.0 - look.vignetting * _radius_squared(width, height)))
    if look.blur_sigma_px > 0.0:  # the optics blur before the sensor adds its noise
        rgb = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(look.blur_sigma_px)))
    if look.noise_sigma > 0.0:
        noise = np.random.default_rng(look.noise_seed).standard_normal(rgb.shape, dtype=np.float32)
        rgb = _to_uint8(rgb + look.noise_sigma * noise)
    if look.jpeg_quality > 0:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(look.jpeg_quality))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            rgb = np.array(decoded.convert("RGB"))
    return np.ascontiguousarray(rgb)
