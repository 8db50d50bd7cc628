"""A DETR-style set predictor (Carion et al. 2020): the non-LLM yardstick for IG-LLM.

A reconstructor like igllm_ros.model.IGLLM (igllm_ros.reconstruction.Reconstructor:
collate, training_loss, param_groups, reconstruct, save), registered in
igllm_ros.model_kinds, so the training loop, igllm-eval and the node use it unchanged.
See docs/baseline.md.
"""
from __future__ import annotations

from igllm_ros.baseline.config import KIND, BaselineConfig
from igllm_ros.baseline.loading import load
from igllm_ros.baseline.model import DETRBaseline


def build(config: dict | BaselineConfig) -> DETRBaseline:
    """A fresh model from the `model:` section of a preset (or a BaselineConfig)."""
    if not isinstance(config, BaselineConfig):
        config = BaselineConfig.from_dict(dict(config))
    return DETRBaseline(config)


__all__ = ["KIND", "BaselineConfig", "DETRBaseline", "build", "load"]
