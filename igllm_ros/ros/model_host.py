"""Loads the model for the node: finds the files, picks the device and precision, runs it.

Kept apart from the node so the ROS code never touches torch directly, and so the device
choice (and its reason, logged once) can be tested without ROS.
"""
from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from igllm_ros import world
from igllm_ros.ros.share import share_path

if TYPE_CHECKING:  # torch stays unimported until a model loads
    from igllm_ros.devices import DeviceChoice


class ModelUnavailable(RuntimeError):
    """The model cannot be loaded; the message says why and what to do."""


def choose_device(device: str = "auto", dtype: str = "auto") -> "DeviceChoice":
    """igllm_ros.devices.choose_device (the one rule, with its reason); a request it
    refuses makes the model unavailable."""
    from igllm_ros import devices

    try:
        return devices.choose_device(device, dtype)
    except ValueError as err:
        raise ModelUnavailable(f"{err} (node parameters device, dtype)") from err


def resolve_model_path(path: str) -> Path:
    """The model directory: as given (absolute or from the working directory), else from the
    package's share (the source tree, or the install where CMake puts models/)."""
    if not path:
        raise ModelUnavailable("model_path is empty; set it to a model directory (e.g. models/igllm-lite0-cycles2)")
    candidate = Path(path).expanduser()
    if candidate.exists():
        return candidate
    if candidate.is_absolute():
        raise ModelUnavailable(f"model not found: {path!r} does not exist")
    try:
        return share_path(*candidate.parts)
    except FileNotFoundError as err:
        raise ModelUnavailable(f"model not found: {path!r} (not in {candidate.resolve()}; {err})") from err


def _model_input_size(model) -> tuple[int, int]:
    """(width, height) to feed the model: its own size when it is a 4:3 pair, else the world's."""
    size = getattr(model, "input_size", None)
    if isinstance(size, (tuple, list)) and len(size) == 2 and size[0] * 3 == size[1] * 4:
        return int(size[0]), int(size[1])
    return world.IMAGE_WIDTH, world.IMAGE_HEIGHT


class ModelHost:
    """A loaded model plus the facts the node reports about it."""

    def __init__(self, model, path: Path, choice: DeviceChoice, load_s: float):
        self.model = model
        self.path = path
        self.choice = choice
        self.load_s = load_s
        self.name = getattr(model, "name", None) or path.name
        self.input_size = _model_input_size(model)

    @classmethod
    def load(cls, path: str, device: str = "auto", dtype: str = "auto", torch_threads: int = 0) -> "ModelHost":
        import torch

        from igllm_ros import model_kinds

        if torch_threads > 0:
            torch.set_num_threads(torch_threads)
        resolved = resolve_model_path(path)
        choice = choose_device(device, dtype)
        start = time.perf_counter()
        try:
            model = model_kinds.load(resolved, device=choice.device, dtype=getattr(torch, choice.dtype))
        except model_kinds.ModelLoadError as err:
            raise ModelUnavailable(f"cannot load model {os.fspath(resolved)!r}: {err}") from err
        except (OSError, ValueError, RuntimeError, KeyError) as err:  # a loader bug, but say where
            raise ModelUnavailable(f"cannot load model {os.fspath(resolved)!r}: {type(err).__name__}: {err}") from err
        host = cls(model, resolved, choice, time.perf_counter() - start)
        host.warm_up()
        return host

    def warm_up(self) -> None:
        """One decode of a blank frame, so the first camera frame does not also pay for
        lazy set-up (the tower's ONNX Runtime session is built on first use: about 1 s on
        a CPU; CUDA kernels likewise)."""
        import numpy as np

        width, height = self.input_size
        self.reconstruct(np.zeros((height, width, 3), np.uint8), max_objects=1)

    def reconstruct(self, rgb, max_objects: int):
        """One Reconstruction for one RGB image already in the pinned camera model."""
        return self.model.reconstruct([rgb], max_objects=max_objects)[0]

    def close(self) -> None:
        device = self.choice.device
        self.model = None
        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
