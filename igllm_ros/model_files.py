"""Small pieces every reconstructor (IG-LLM and the baseline) shares: fitting an input
image to the model's size, and the markdown of a checkpoint's card."""
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


def card_markdown(header: list[str], card: dict) -> str:
    """A model card: the model's own header lines, then the training facts in `card`
    (nested dicts become sections)."""
    lines = list(header)
    for key, value in card.items():
        if isinstance(value, dict):
            lines += ["", f"## {key}", ""] + [f"- {k}: {v}" for k, v in value.items()]
        else:
            lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"


def state_mismatch(state: dict, expected: dict, missing: list[str]) -> str:
    """Why a checkpoint's tensors do not fit a model ('' when they do): the `missing` names
    (the caller knows which tied names may be absent), unexpected names, wrong shapes."""
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    parts = []
    if missing:
        parts.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        parts.append(f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    parts += [f"{k}: file {tuple(state[k].shape)} vs config {tuple(expected[k].shape)}" for k in wrong[:5]]
    return "; ".join(parts)
