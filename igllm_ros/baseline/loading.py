"""Reading a baseline checkpoint directory (written by igllm_ros.baseline.checkpoint) back
into a model."""
from __future__ import annotations

from pathlib import Path

import torch

from igllm_ros.baseline.config import KIND, BaselineConfig
from igllm_ros.baseline.model import DETRBaseline
from igllm_ros.model_files import read_config, state_mismatch
from igllm_ros.reconstruction import CONFIG_FILE, WEIGHTS_FILE, ModelLoadError


def load(path, device="cpu", dtype=torch.float32):
    """A baseline checkpoint directory -> the model in eval mode on `device`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(path)
    raw = read_config(directory, KIND)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ModelLoadError(f"baseline model {str(directory)!r} has no {WEIGHTS_FILE}")
    try:
        config = BaselineConfig.from_dict(raw)
    except (TypeError, ValueError) as err:
        raise ModelLoadError(f"{str(config_path)!r} is not a valid baseline config: {err}") from err
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(f"{str(weights_path)!r} is not a readable safetensors file: {err}") from err
    model = DETRBaseline(config)
    expected = model.state_dict()
    problem = state_mismatch(state, expected, sorted(set(expected) - set(state)))
    if problem:
        raise ModelLoadError(f"{str(weights_path)!r} does not match {str(config_path)!r}: {problem}")
    model.load_state_dict(state)
    return model.to(device=device, dtype=dtype).eval()
