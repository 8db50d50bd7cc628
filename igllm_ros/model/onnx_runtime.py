"""ONNX Runtime for decoding on a CPU in float32: whether it may be used, and graphs made
in memory from our own modules (torch.onnx's TorchScript exporter; nothing is written to
or read from disk, no third-party graph is ever loaded).

Where it is used: the frozen EfficientNet tower (vision/onnx_tower.py) and the decoder
layers' matmul work (onnx_llama.py). Both compute what their PyTorch paths compute, from
the same weights, equal to float rounding. Set IGLLM_ONNX_RUNTIME=0 to use PyTorch only.
"""
from __future__ import annotations

import io
import os
import warnings

import torch
from torch import nn

ENV_SWITCH = "IGLLM_ONNX_RUNTIME"  # "0": always PyTorch
OPSET = 17


def installed() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def enabled() -> bool:
    """onnxruntime is installed and IGLLM_ONNX_RUNTIME is not 0."""
    return os.environ.get(ENV_SWITCH, "1") != "0" and installed()


def cpu_float32(tensor: torch.Tensor) -> bool:
    return tensor.device.type == "cpu" and tensor.dtype == torch.float32


def session_for(module: nn.Module, example: tuple, inputs: list[str], outputs: list[str], dynamic: dict[str, list[int]]):
    """An ONNX Runtime session computing module(*example)'s graph, with the axes in
    `dynamic` (input or output name -> axis indices) left free; torch's thread count."""
    graph = io.BytesIO()
    axes = {name: {axis: f"{name}_{axis}" for axis in dims} for name, dims in dynamic.items()}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(module, example, graph, opset_version=OPSET, dynamo=False,
                          input_names=inputs, output_names=outputs, dynamic_axes=axes)
    return _session(graph.getvalue(), torch.get_num_threads())


def _session(graph: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    # No busy-waiting threads: the node shares its CPU with the camera driver and the decoder.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
