"""Vision towers: one registry of tower kinds, one interface (docs/vision_towers.md).

Every tower is an nn.Module with
    features(pixels uint8 (B, 3, H, W)) -> (B, P, C)   the part that may be frozen (cacheable)
    adapt(features) -> (B, P, C)                        the part that always trains (may be identity)
    grid(input_size) -> (grid_w, grid_h);  out_dim;  cacheable;  saved_config() -> dict
Pixel normalisation is the tower's own business. Adding a kind: a module with
`build(config)` and `from_saved(saved)`, and one line in KINDS.
"""
from __future__ import annotations

from torch import nn

from igllm_ros.model.config import VISION_KINDS
from igllm_ros.model.vision import clip, dinov2, efficientnet


def _efficientnet(kind: str):
    def build(config):
        v = config.vision
        tower = efficientnet.EfficientNetTower(kind, config.input_size, v.token_stride, v.trainable_stages)
        if v.pretrained:
            tower.load_pretrained()
        return tower

    def from_saved(saved: dict):
        return efficientnet.EfficientNetTower(kind, tuple(saved["input_size"]), saved["token_stride"])

    return build, from_saved


KINDS = {
    "clip": (clip.build, clip.from_saved),
    **{kind: _efficientnet(kind) for kind in efficientnet.SOURCES},
    "dinov2_small": (dinov2.build, dinov2.from_saved),
}
assert set(KINDS) == set(VISION_KINDS), "model.config.VISION_KINDS must list the registry's kinds"


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"model.vision.kind is {kind!r}; expected one of {sorted(KINDS)}")


def build_tower(config) -> nn.Module:
    """A tower from ModelConfig: fresh, or with pretrained weights (package or local dir)."""
    check_kind(config.vision.kind)
    return KINDS[config.vision.kind][0](config)


def tower_from_saved(saved: dict, config) -> nn.Module:
    """The architecture a checkpoint recorded (weights come from its safetensors); the
    trainable parts are set as the checkpoint's config says."""
    kind = saved.get("kind")
    check_kind(kind)
    tower = KINDS[kind][1](saved)
    v = config.vision
    if hasattr(tower, "set_trainable"):  # CNN kinds: frozen stages, BatchNorm in eval mode
        tower.set_trainable(v.trainable_stages)
    elif v.freeze:
        tower.requires_grad_(False)
    return tower


def saved_config(tower: nn.Module) -> dict:
    return tower.saved_config()


def legacy_saved(hf_vision_config: dict) -> dict:
    """Checkpoints written before tower kinds stored the CLIP config alone."""
    return {"kind": "clip", "hf_config": hf_vision_config}
