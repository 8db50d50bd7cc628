"""What every scene reconstructor returns (IG-LLM in igllm_ros.model, the DETR-style
baseline in igllm_ros.baseline), so evaluation, benchmarks and the node treat them alike.

A reconstructor is any object with:
    name: str                      # shown in Scene.model and in tables
    input_size: tuple[int, int]    # (width, height), 4:3: the image size it wants
    reconstruct(images: list[np.ndarray], max_objects: int = 10) -> list[Reconstruction]
        images are HxWx3 uint8 RGB in the pinned camera model (docs/scene_world.md),
        any size (resized to input_size inside).
"""
from __future__ import annotations

from dataclasses import dataclass

from igllm_ros.scene import Scene


@dataclass(frozen=True)
class Reconstruction:
    scene: Scene  # table frame; objects carry confidence and attribute_confidence
    program: str  # the scene program (docs/scene_language.md) the model wrote
    steps: int = 0  # model forward passes spent on this image (decode statistics)
