"""A frozen CNN tower's features() through ONNX Runtime, for decoding on a CPU in float32.

Why: ONNX Runtime's convolution kernels (depthwise ones above all) ran EfficientNet-Lite0's
folded stages at 256x192 in 13-15 ms on one thread of this CPU against PyTorch's 19-23 ms
(docs/model.md, "Vision tower through ONNX Runtime").

The graph is exported in memory from the tower's own BatchNorm-folded copy (the same
weights, no file written or read), once per weight version (derived.py), with a dynamic
batch. Its outputs equal PyTorch's to float rounding (different kernels sum in another
order: measured max |difference| 3e-5 on features up to 28), not bit for bit; the decoded
programs are checked equal in test_vision_onnx_runtime.py.

Used only where it applies (`available`): onnxruntime installed, pixels on the CPU, a float32
tower, and IGLLM_ONNX_RUNTIME not set to 0. Else the tower's PyTorch path runs.
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np
import torch
from torch import nn

from igllm_ros.model.derived import derived, new_cache

ENV_SWITCH = "IGLLM_ONNX_RUNTIME"  # "0": always PyTorch
OPSET = 17

_SESSIONS = new_cache()  # per tower: (torch threads, session)


def installed() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def available(tower: nn.Module, pixels: torch.Tensor) -> bool:
    """Whether features(pixels) may run through ONNX Runtime."""
    return (
        os.environ.get(ENV_SWITCH, "1") != "0"
        and pixels.device.type == "cpu"
        and next(tower.parameters()).dtype == torch.float32
        and installed()
    )


def features(tower: nn.Module, weights: list[torch.Tensor], folded: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """folded.features(pixels) computed by ONNX Runtime (uint8 (B, 3, H, W) -> (B, P, C)).
    `folded` is the tower's folded copy; the session is made again when one of the tower's
    `weights` changes."""
    threads = torch.get_num_threads()
    cached = derived(_SESSIONS, tower, weights, lambda: {})
    session = cached.get(threads)
    if session is None:
        session = cached[threads] = _session(folded, pixels, threads)
    (out,) = session.run(None, {"pixels": np.ascontiguousarray(pixels.numpy())})
    return torch.from_numpy(out)


class _Features(nn.Module):
    def __init__(self, folded: nn.Module):
        super().__init__()
        self.folded = folded

    def forward(self, pixels):
        return self.folded.features(pixels)


def _session(folded: nn.Module, example: torch.Tensor, threads: int):
    import onnxruntime as ort

    graph = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            _Features(folded), (example[:1].contiguous(),), graph, opset_version=OPSET, dynamo=False,
            input_names=["pixels"], output_names=["tokens"],
            dynamic_axes={"pixels": {0: "batch"}, "tokens": {0: "batch"}},
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    # No busy-waiting threads: the node shares its CPU with the camera driver and the decoder.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(graph.getvalue(), options, providers=["CPUExecutionProvider"])
