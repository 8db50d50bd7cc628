"""The CLIP vision tower (transformers' CLIPVisionModel): from scratch, or from a local
pretrained directory (safetensors only), cut after `feature_layer`.

ClipTower subclasses CLIPVisionModel, so its state-dict keys are CLIP's own and older
checkpoints load unchanged.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

# CLIP's pixel statistics (the pretrained towers expect them; from scratch they do no harm).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipTower(CLIPVisionModel):
    kind = "clip"

    def _init_tower(self) -> "ClipTower":
        # Only patch tokens are used: the pooled output's layer norm would be an unused parameter.
        _inner(self).post_layernorm = nn.Identity()
        self.register_buffer("pixel_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255.0, persistent=False)
        return self

    @property
    def out_dim(self) -> int:
        return self.config.hidden_size

    @property
    def cacheable(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def grid(self, input_size: tuple[int, int]) -> tuple[int, int]:
        patch = self.config.patch_size
        w, h = input_size
        if w % patch or h % patch:
            raise ValueError(f"input size {tuple(input_size)} is not a multiple of the vision patch size {patch}")
        return w // patch, h // patch

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> patch tokens (B, P, hidden) of the feature layer (CLS dropped)."""
        dtype = self.pixel_mean.dtype
        x = (pixels.to(dtype) - self.pixel_mean) / self.pixel_std
        out = self(pixel_values=x.to(_inner(self).embeddings.patch_embedding.weight.dtype), interpolate_pos_encoding=True)
        return out.last_hidden_state[:, 1:]  # the tower ends at the feature layer

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def saved_config(self) -> dict:
        return {"kind": self.kind, "hf_config": self.config.to_dict()}


def build(config) -> ClipTower:
    """From ModelConfig.vision: a fresh tower, or a pretrained local directory."""
    v = config.vision
    if v.pretrained_path is not None:
        from igllm_ros.model.towers import TowerError, _existing_dir

        path = _existing_dir(v.pretrained_path, "model.vision.pretrained_path")
        try:
            # safetensors only: a directory holding only pickled weights is refused.
            # Load as transformers' own class (its checkpoint-key conversion, e.g. from a full
            # two-tower CLIPModel directory, is keyed on that class), then move into ClipTower.
            loaded = CLIPVisionModel.from_pretrained(str(path), dtype=torch.float32, use_safetensors=True)
        except (OSError, ValueError) as err:
            raise TowerError(f"cannot load a CLIP vision tower (safetensors) from {path}: {err}") from err
        model = ClipTower(loaded.config)
        model.load_state_dict(loaded.state_dict(), strict=True)
        encoder = _inner(model).encoder
        total = len(encoder.layers)
        if not -total <= v.feature_layer <= -1:
            raise TowerError(f"model.vision.feature_layer {v.feature_layer} outside -{total}..-1 for {path}")
        keep = total + 1 + v.feature_layer
        encoder.layers = encoder.layers[:keep]
        model.config.num_hidden_layers = keep
    else:
        keep = v.layers + 1 + v.feature_layer  # layers after the feature layer would never be used
        hf = CLIPVisionConfig(
            hidden_size=v.hidden,
            intermediate_size=v.intermediate,
            num_hidden_layers=keep,
            num_attention_heads=v.heads,
            image_size=max(config.input_size),  # a square position table, interpolated to the 4:3 grid
            patch_size=v.patch,
        )
        model = ClipTower(hf)
    model._init_tower()
    if v.freeze:
        model.requires_grad_(False)
    return model


def from_saved(saved: dict) -> ClipTower:
    return ClipTower(CLIPVisionConfig.from_dict(saved["hf_config"]))._init_tower()


def _inner(model: nn.Module) -> nn.Module:
    # transformers 5 flattened CLIPVisionModel; older versions wrap it in .vision_model.
    return getattr(model, "vision_model", model)
