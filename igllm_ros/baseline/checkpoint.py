"""Baseline checkpoints: one directory with config.json ("kind": "detr_baseline"),
model.safetensors (tensors only, never pickle) and card.md. Written here; read back by
igllm_ros.baseline.loading (which needs the model class, whose save() needs this module)."""
from __future__ import annotations

import json
from pathlib import Path

from igllm_ros.baseline.config import KIND
from igllm_ros.model_files import card_markdown
from igllm_ros.reconstruction import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE


def save(model, directory, card: dict | None = None) -> None:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"kind": KIND})
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
