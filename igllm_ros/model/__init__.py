"""IG-LLM (Kulits et al. 2024): image -> CLIP vision tower -> projector -> causal LLM that
writes the scene program, numbers as digit tokens (char) or regressed by a numeric head
(float). Grammar-constrained, KV-cached, batched greedy decoding. See docs/model.md.

    model = build(ModelConfig(...))          # fresh (from scratch or local pretrained towers)
    model.save("models/x", card={...})       # config.json, model.safetensors, vocab, card
    model = load("models/x")                 # an IG-LLM directory (any kind: igllm_ros.model_kinds.load)
    model.reconstruct([rgb, ...])            # -> [igllm_ros.reconstruction.Reconstruction]
"""
from __future__ import annotations

from igllm_ros.model.loading import load
from igllm_ros.model.config import LLMConfig, LoraConfig, ModelConfig, VisionConfig, tiny_test_config
from igllm_ros.model.igllm import IGLLM, build
from igllm_ros.reconstruction import ModelLoadError

__all__ = [
    "IGLLM",
    "LLMConfig",
    "LoraConfig",
    "ModelConfig",
    "ModelLoadError",
    "VisionConfig",
    "build",
    "load",
    "tiny_test_config",
]
