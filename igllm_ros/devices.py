"""Device and precision choice, one rule for training, evaluation, benchmarks and the node:
CUDA when present (bf16, or fp16 where bf16 is unsupported), otherwise the CPU in float32
(half precision on a CPU is slower and less accurate). An explicit request is honoured or
refused with a ValueError that says why; the node turns that into ModelUnavailable."""
from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """auto: CUDA when available, else CPU. An explicit CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__}); use auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}; expected auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on CUDA (fp16 where bf16 is unsupported), float32 on CPU."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected auto or one of {sorted(DTYPES)}")
    return DTYPES[name]


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cpu", "cuda", "cuda:1"
    dtype: str  # "float32", "float16", "bfloat16"
    reason: str  # why, in words (the node logs it once)


def choose_device(device: str = "auto", dtype: str = "auto") -> DeviceChoice:
    """resolve_device and resolve_dtype, with the reason for the choice."""
    resolved = resolve_device(device)
    if device == "auto":
        if resolved.type == "cuda":
            why = f"CUDA is available ({torch.cuda.get_device_name(0)})"
        else:
            built = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            why = f"CUDA is not available ({built})"
    else:
        why = f"device={device!r} was requested"
    chosen = str(resolve_dtype(dtype, resolved)).replace("torch.", "")
    why += f"; dtype {chosen} is the default there" if dtype == "auto" else f"; dtype={dtype!r} was requested"
    return DeviceChoice(device if device != "auto" else resolved.type, chosen, why)
