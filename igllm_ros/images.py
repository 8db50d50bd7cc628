"""Image pixels as the reconstructors read them: fitting an RGB image to a model's input
size, the brightness/contrast jitter both models train with, and the grayscale and
recoloured views of the colour-shortcut countermeasure."""
from __future__ import annotations

import numpy as np
from PIL import Image


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxWx3 uint8 RGB to (width, height) = size, bilinear (antialiased by PIL)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(tuple(size), Image.BILINEAR))


# BT.601 full-range RGB <-> (Y, Cb, Cr) without the 128 offsets: chroma is a 2-vector around gray
_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32)
_FROM_YCC = np.linalg.inv(_TO_YCC).astype(np.float32)
RECOLOUR_TINT = 40.0  # the largest chroma (of 8-bit units) added to an object: a gray cube can turn any hue


def grayscale(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB to its BT.601 luma, repeated on three channels (the towers read RGB)."""
    luma = np.asarray(image, dtype=np.float32) @ _TO_YCC[0]
    return np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def recolour_objects(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each object of `mask` (H, W) int, -1 background) in a random colour of its own.

    Per object: its chroma (Cb, Cr) rotated by a random hue angle, scaled by a random gain
    in [0.5, 1.5], plus a random tint of up to RECOLOUR_TINT (faded in the dark, so
    shadows stay shadows); luma, shading, highlights and the ground are kept. The mask is
    grown by one pixel into the background first, so the antialiased rims change too.
    Shapes then come in every colour, which no colour label names: the colour loss is
    masked on these views (IGLLM._token_nll)."""
    from scipy.ndimage import binary_dilation

    image = np.asarray(image)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match the image {image.shape[:2]}")
    ycc = image.astype(np.float32) @ _TO_YCC.T
    background = mask < 0
    for index in np.unique(mask[~background]):
        pixels = binary_dilation(mask == index) & (background | (mask == index))
        angle, gain = rng.uniform(0.0, 2.0 * np.pi), rng.uniform(0.5, 1.5)
        tint_angle, tint = rng.uniform(0.0, 2.0 * np.pi), rng.uniform(0.0, RECOLOUR_TINT)
        c, s = np.cos(angle), np.sin(angle)
        turn = gain * np.array([[c, -s], [s, c]], dtype=np.float32)
        luma = ycc[pixels, 0:1]
        fade = np.minimum(1.0, luma / 128.0)
        ycc[pixels, 1:] = ycc[pixels, 1:] @ turn.T + fade * tint * np.array([np.cos(tint_angle), np.sin(tint_angle)], np.float32)
    return np.clip(np.rint(ycc @ _FROM_YCC.T), 0, 255).astype(np.uint8)


def brightness_jitter(images, amount: float):
    """A uint8 batch (B, 3, H, W) with per-image gain and offset of up to +-amount.

    Brightness and contrast only: hue would change the colour labels, geometry the
    locations. Draws from torch's RNG, which DataLoader seeds differently in each worker.
    """
    import torch

    b = images.shape[0]
    gain = 1.0 + (torch.rand(b, 1, 1, 1) * 2 - 1) * amount
    offset = (torch.rand(b, 1, 1, 1) * 2 - 1) * amount * 255.0
    mean = images.float().mean(dim=(1, 2, 3), keepdim=True)
    return ((images.float() - mean) * gain + mean + offset).round().clamp(0, 255).to(torch.uint8)
