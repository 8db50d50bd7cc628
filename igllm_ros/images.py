"""Image pixels as the reconstructors read them: fitting an RGB image to a model's input
size, the brightness/contrast jitter both models train with, and the grayscale view of
the colour-shortcut countermeasure."""
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


def grayscale(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB to its BT.601 luma, repeated on three channels (the towers read RGB)."""
    luma = np.asarray(image, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


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
