"""Sensor effects on a rendered 8-bit image: vignetting, blur, noise, JPEG compression.

Applied after rendering (randomized looks only), in that order, seeded by the look's own
noise_seed so the image re-renders exactly from its record.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from igllm_ros.data.randomization import Look


NOISE_BANK_SIZE = 512  # noise comes from crops of one fixed Gaussian tile: far cheaper than fresh draws
BLUR_TAPS = 5  # the separable kernel's width: enough for sigma <= 1 px


@lru_cache(maxsize=8)
def _radius_squared(width: int, height: int) -> np.ndarray:
    """Squared distance from the image centre, 1 at the corners, (H, W, 1) float32."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((u + 0.5 - width / 2) ** 2 + (v + 0.5 - height / 2) ** 2) / ((width / 2) ** 2 + (height / 2) ** 2)
    return r2[..., None]


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed (N, N, 3) standard-normal tile, the same in every process."""
    return np.random.default_rng(20241201).standard_normal((NOISE_BANK_SIZE, NOISE_BANK_SIZE, 3), dtype=np.float32)


def _noise(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Standard-normal noise of `shape`: a crop of the bank at a seeded offset, seeded flips."""
    bank = _noise_bank()
    h, w = shape[:2]
    if h > bank.shape[0] or w > bank.shape[1]:
        return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    rng = np.random.default_rng(seed)
    y, x = int(rng.integers(0, bank.shape[0] - h + 1)), int(rng.integers(0, bank.shape[1] - w + 1))
    crop = bank[y : y + h, x : x + w]
    return crop[::-1] if rng.integers(2) else crop


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a float32 (H, W, 3) image, edges extended."""
    offsets = np.arange(BLUR_TAPS) - BLUR_TAPS // 2
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2).astype(np.float32)
    kernel /= kernel.sum()
    img = ndimage.convolve1d(img, kernel, axis=0, mode="nearest")
    return ndimage.convolve1d(img, kernel, axis=1, mode="nearest")


def apply_sensor(rgb: np.ndarray, look: Look | None) -> np.ndarray:
    """The image as the randomized sensor records it; unchanged when look is None or has no effects."""
    if look is None:
        return rgb
    height, width = rgb.shape[:2]
    if look.vignetting > 0.0 or look.blur_sigma_px > 0.0 or look.noise_sigma > 0.0:
        img = rgb.astype(np.float32)
        if look.vignetting > 0.0:
            img *= 1.0 - look.vignetting * _radius_squared(width, height)
        if look.blur_sigma_px > 0.0:  # the optics blur before the sensor adds its noise
            img = _blur(img, look.blur_sigma_px)
        if look.noise_sigma > 0.0:
            img += look.noise_sigma * _noise(img.shape, look.noise_seed)
        rgb = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if look.jpeg_quality > 0:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(look.jpeg_quality))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            rgb = np.array(decoded.convert("RGB"))
    return np.ascontiguousarray(rgb)
