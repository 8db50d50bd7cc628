"""The registry of model kinds: the one place that knows which reconstructors exist.

    model = model_kinds.build(preset.model)       # a fresh model from a preset's `model:`
    model = model_kinds.load("models/x")          # any saved model directory, by its kind

A kind is the `kind` string a preset's `model:` section and a saved config.json carry; it
maps to a builder and a loader. Every kind's model keeps the contract in
igllm_ros.reconstruction (Reconstructor, its files, ModelLoadError), so the training loop,
igllm-eval, the benchmarks and the node go through this module and nothing else.
Adding a kind: write its package (build(section), load(directory, device, dtype), a KIND
constant) and add one line to KINDS. Kind packages never import this module.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from igllm_ros import baseline
from igllm_ros import model as igllm
from igllm_ros.model.config import KIND as IGLLM_KIND
from igllm_ros.model_files import read_config
from igllm_ros.reconstruction import CONFIG_FILE, ModelLoadError, Reconstructor


@dataclass(frozen=True)
class ModelKind:
    build: Callable[[dict], Reconstructor]  # a preset's `model:` section -> a fresh model
    load: Callable[..., Reconstructor]  # (directory, device=, dtype=) -> the saved model, eval mode
    about: str  # one line for error messages and docs


KINDS: dict[str, ModelKind] = {
    IGLLM_KIND: ModelKind(igllm.build, igllm.load, "IG-LLM: vision tower, projector, LLM (docs/model.md)"),
    baseline.KIND: ModelKind(baseline.build, baseline.load, "DETR-style set predictor (docs/baseline.md)"),
}
DEFAULT_KIND = IGLLM_KIND  # a preset's `model:` without `kind`


def kind_of(section: dict) -> str:
    """The registered kind a `model:` section names (DEFAULT_KIND when it names none)."""
    kind = section.get("kind", DEFAULT_KIND)
    if kind not in KINDS:
        raise ValueError(f"model.kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def build(section: dict) -> Reconstructor:
    """A fresh model of the section's kind; a bad section raises ValueError naming the key."""
    return KINDS[kind_of(section)].build(dict(section))


def load(path, device="cpu", dtype=torch.float32) -> Reconstructor:
    """The model saved in directory `path`, by the kind its config.json names, in eval mode
    on `device`. Every problem is a ModelLoadError that says what and where."""
    directory = Path(path)
    kind = read_config(directory).get("kind")
    if kind not in KINDS:
        raise ModelLoadError(
            f"{str(directory / CONFIG_FILE)!r} has kind {kind!r}; expected one of {', '.join(KINDS)}"
        )
    return KINDS[kind].load(directory, device=device, dtype=dtype)


__all__ = ["DEFAULT_KIND", "KINDS", "ModelKind", "ModelLoadError", "Reconstructor", "build", "kind_of", "load"]
