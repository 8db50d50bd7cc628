"""A frozen EfficientNet tower's features() through ONNX Runtime (model/onnx_runtime.py),
for decoding on a CPU in float32.

Why: ONNX Runtime's convolution kernels (depthwise ones above all) ran EfficientNet-Lite0's
folded stages at 256x192 in 17 ms per image on one thread of this CPU against PyTorch's
24 ms, and 17 against 29 ms per image at batch 8 (docs/model.md, "Vision tower through
ONNX Runtime").

The graph comes from the tower's own BatchNorm-folded copy (the same weights), once per
weight version (derived.py), with a dynamic batch. Its outputs equal PyTorch's to float
rounding (different kernels sum in another order: measured max |difference| 3e-5 on
features up to 28), not bit for bit; test_vision_onnx_runtime.py checks features and
decoded programs.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from igllm_ros.model import onnx_runtime
from igllm_ros.model.derived import derived, new_cache

_SESSIONS = new_cache()  # per folded copy (made again when a tower weight changes): torch threads -> session


def available(folded: nn.Module, pixels: torch.Tensor) -> bool:
    """Whether the folded tower's features(pixels) may run through ONNX Runtime."""
    return onnx_runtime.enabled() and pixels.device.type == "cpu" and onnx_runtime.cpu_float32(next(folded.parameters()))


def features(folded: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """folded.features(pixels) computed by ONNX Runtime (uint8 (B, 3, H, W) -> (B, P, C)).
    `folded` is the tower's BatchNorm-folded copy, which efficientnet.py makes again when a
    weight changes, so one session per copy (and thread count) is enough."""
    threads = torch.get_num_threads()
    by_threads = derived(_SESSIONS, folded, (), lambda: {})
    session = by_threads.get(threads)
    if session is None:
        example = (pixels[:1].contiguous(),)
        session = by_threads[threads] = onnx_runtime.session_for(
            _Features(folded), example, ["pixels"], ["tokens"], {"pixels": [0], "tokens": [0]})
    (out,) = session.run(None, {"pixels": np.ascontiguousarray(pixels.numpy())})
    return torch.from_numpy(out)


class _Features(nn.Module):
    def __init__(self, folded: nn.Module):
        super().__init__()
        self.folded = folded

    def forward(self, pixels):
        return self.folded.features(pixels)
