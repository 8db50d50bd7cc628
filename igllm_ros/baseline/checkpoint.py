"""Baseline checkpoints: one directory with config.json ("kind": "detr_baseline"),
model.safetensors (tensors only, never pickle) and card.md."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from igllm_ros.model_files import card_markdown, state_mismatch

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.md"


def _error(message: str, fallback: type[Exception] = ValueError) -> Exception:
    """igllm_ros.model.ModelLoadError where the model package provides it (the node and
    igllm-eval catch that), else `fallback`."""
    try:
        from igllm_ros.model import ModelLoadError
    except ImportError:
        return fallback(message)
    return ModelLoadError(message)


def save(model, directory, card: dict | None = None) -> None:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"kind": model.config.kind})
    config = model.config.to_dict()
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (directory / CARD_FILE).write_text(_card(model, card or {}))


def _card(model, card: dict) -> str:
    lines = [
        f"# {model.name}",
        "",
        "A DETR-style set predictor (igllm_ros.baseline): the non-LLM yardstick for IG-LLM.",
        "CNN encoder + 2D sine positions + transformer encoder/decoder with "
        f"{model.config.max_objects} {'anchored ' if model.config.anchors else ''}object queries "
        "and a camera query; Hungarian-matched loss.",
        "See docs/baseline.md.",
        "",
        f"- parameters: {model.num_parameters():,}",
        f"- input size (w, h): {model.input_size[0]} x {model.input_size[1]}",
        f"- files: {CONFIG_FILE}, {WEIGHTS_FILE} (safetensors)",
    ]
    return card_markdown(lines, card)


def load(path, device="cpu", dtype=torch.float32):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from igllm_ros.baseline.config import KIND, BaselineConfig
    from igllm_ros.baseline.model import DETRBaseline

    directory = Path(path)
    if not directory.is_dir():
        raise _error(f"baseline model directory {str(directory)!r} does not exist", FileNotFoundError)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise _error(f"baseline model {str(directory)!r} has no {needed.name}", FileNotFoundError)
    try:
        raw = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _error(f"{str(config_path)!r} is not readable JSON: {err}") from err
    if not isinstance(raw, dict) or raw.get("kind") != KIND:
        kind = raw.get("kind") if isinstance(raw, dict) else None
        raise _error(f"{str(config_path)!r} has kind {kind!r}; the baseline loads only kind {KIND!r}")
    try:
        config = BaselineConfig.from_dict(raw)
    except (TypeError, ValueError) as err:
        raise _error(f"{str(config_path)!r} is not a valid baseline config: {err}") from err
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise _error(f"{str(weights_path)!r} is not a readable safetensors file: {err}") from err
    model = DETRBaseline(config)
    expected = model.state_dict()
    problem = state_mismatch(state, expected, sorted(set(expected) - set(state)))
    if problem:
        raise _error(f"{str(weights_path)!r} does not match {str(config_path)!r}: {problem}")
    model.load_state_dict(state)
    return model.to(device=device, dtype=dtype).eval()
