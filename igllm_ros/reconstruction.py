"""The contract every scene reconstructor keeps (IG-LLM in igllm_ros.model, the DETR-style
baseline in igllm_ros.baseline), so training, evaluation, benchmarks and the node treat
them alike: what it returns (Reconstruction), what it offers (Reconstructor), the files of
its checkpoint directory and the one error a failed load raises (ModelLoadError).

This module names no model kind; igllm_ros.model_kinds maps kinds to their builders and
loaders, and each kind's checkpoint module imports only this module of the contract.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from igllm_ros.scene import Scene

# The files of a model directory, for every kind (a kind may add its own, e.g. vocab.json).
CONFIG_FILE = "config.json"  # {"kind": ..., ...the kind's config...}
WEIGHTS_FILE = "model.safetensors"  # tensors only, never pickle
CARD_FILE = "card.md"
CARD_JSON = "card.json"

# The shipped models (relative to the repository root or the package's share directory).
# config/igllm.yaml, the launch files and the Makefile name the same default.
DEFAULT_MODEL = "models/igllm-lite0-cycles2"
PREVIOUS_MODEL = "models/igllm-lite0-fresh2"  # the default before it, kept for one release


class ModelLoadError(Exception):
    """A model directory cannot be loaded; the message says what and where."""


@dataclass(frozen=True)
class Reconstruction:
    scene: Scene  # table frame; objects carry confidence and attribute_confidence
    program: str  # the scene program (docs/scene_language.md) the model wrote
    steps: int = 0  # model forward passes spent on this image (decode statistics)


@runtime_checkable
class Reconstructor(Protocol):
    """What the training loop, igllm-eval, the benchmarks and the node use of a model."""

    name: str  # shown in Scene.model and in tables
    input_size: tuple[int, int]  # (width, height), 4:3: the image size it reads

    def collate(self, samples, augment: bool = False) -> dict:
        """Samples (.image HxWx3 uint8, .scene) to a batch of CPU tensors; runs in
        DataLoader workers, so it must be picklable with the model."""

    def training_loss(self, batch: dict) -> tuple:
        """(loss tensor, {name: float} logged as they are) for a batch on the model's device."""

    def param_groups(self, lr: float, head_lr: float, weight_decay: float, tower_lr: float | None = None) -> list[dict]:
        """AdamW parameter groups (the model decides what trains at head_lr and tower_lr, what decays)."""

    def reconstruct(self, images: list, max_objects: int = 10) -> list[Reconstruction]:
        """One Reconstruction per HxWx3 uint8 RGB image in the pinned camera model
        (docs/scene_world.md), any size (resized to input_size inside)."""

    def save(self, directory, card: dict | None = None) -> None:
        """A self-contained model directory (CONFIG_FILE with "kind", WEIGHTS_FILE, cards)."""
