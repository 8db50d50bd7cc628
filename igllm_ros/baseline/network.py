"""The baseline's network: CNN encoder + 2D sine positions + transformer encoder/decoder
with learned object queries and a camera query, and per-query heads (DETR, Carion et al. 2020).

Pure tensors in, tensors out; targets, matching and scenes live elsewhere.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from igllm_ros import world
from igllm_ros.baseline.config import BaselineConfig

# Head name -> number of outputs per query.
CLASS_HEADS = {name: len(values) for name, values in world.ATTRIBUTES.items()}
IMAGE_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics: only a fixed input normalisation
IMAGE_STD = (0.229, 0.224, 0.225)


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: no running statistics, so train and eval compute the same thing.
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ConvBackbone(nn.Module):
    """A stride-2 stem to channels[0], then one stride-2 residual stage per further entry."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels[0], 3, 2, 1, bias=False), _norm(channels[0]), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList()
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            self.stages.append(_Stage(c_in, c_out))
        self.stride = 2 ** len(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x


class _Stage(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), _norm(c_out), nn.ReLU(inplace=True))
        self.conv = nn.Sequential(nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), _norm(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return self.act(x + self.conv(x))


def sine_position_encoding(height: int, width: int, dim: int, device, dtype) -> torch.Tensor:
    """DETR's 2D sine encoding, (height * width, dim): half the channels for y, half for x,
    coordinates normalised to [0, 2 pi]."""
    if dim % 4:
        raise ValueError(f"d_model {dim} must be divisible by 4 for the 2D sine encoding")
    quarter = dim // 4
    freq = 10000.0 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 * math.pi
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 * math.pi
    ey = ys[:, None] / freq  # (H, quarter)
    ex = xs[:, None] / freq
    ey = torch.cat([ey.sin(), ey.cos()], dim=1)[:, None, :].expand(height, width, 2 * quarter)
    ex = torch.cat([ex.sin(), ex.cos()], dim=1)[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat([ey, ex], dim=2).reshape(height * width, dim).to(dtype)


class _FeedForward(nn.Sequential):
    def __init__(self, d: int, hidden: int, dropout: float):
        super().__init__(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, d))


class EncoderLayer(nn.Module):
    """Pre-norm self-attention; positions added to queries and keys at every layer (DETR)."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = _FeedForward(d, ffn, dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h + pos, h + pos, h, need_weights=False)[0]
        return x + self.ffn(self.norm2(x))


class DecoderLayer(nn.Module):
    """Pre-norm: query self-attention, cross-attention into the image, feed-forward."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = _FeedForward(d, ffn, dropout)

    def forward(self, t: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = self.norm1(t)
        t = t + self.self_attn(h + query_pos, h + query_pos, h, need_weights=False)[0]
        h = self.norm2(t)
        t = t + self.cross_attn(h + query_pos, memory + pos, memory, need_weights=False)[0]
        return t + self.ffn(self.norm3(t))


def _mlp(d: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, out))


class Heads(nn.Module):
    """Per-query outputs: existence logit, attribute logits, normalised loc, yaw (sin, cos)."""

    def __init__(self, d: int):
        super().__init__()
        self.exists = nn.Linear(d, 1)
        self.classes = nn.ModuleDict({name: nn.Linear(d, n) for name, n in CLASS_HEADS.items()})
        self.loc = _mlp(d, 3)
        self.yaw = _mlp(d, 2)

    def forward(self, q: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"exists": self.exists(q).squeeze(-1), "loc": self.loc(q), "yaw": self.yaw(q)}
        for name, head in self.classes.items():
            out[name] = head(q)
        return out


class DETRNetwork(nn.Module):
    """images (B, 3, H, W) normalised -> a list of per-decoder-layer output dicts (last = final)."""

    def __init__(self, config: BaselineConfig):
        super().__init__()
        d = config.d_model
        self.backbone = ConvBackbone(config.backbone_channels)
        self.input_proj = nn.Conv2d(config.backbone_channels[-1], d, 1)
        self.encoder = nn.ModuleList(
            EncoderLayer(d, config.heads, config.ffn_dim, config.dropout) for _ in range(config.encoder_layers)
        )
        self.encoder_norm = nn.LayerNorm(d)
        self.decoder = nn.ModuleList(
            DecoderLayer(d, config.heads, config.ffn_dim, config.dropout) for _ in range(config.decoder_layers)
        )
        self.decoder_norm = nn.LayerNorm(d)
        # max_objects object queries, then one camera query (the camera is global to the image).
        self.query_pos = nn.Embedding(config.max_objects + 1, d)
        self.heads = Heads(d)
        self.camera_head = _mlp(d, 3)
        self.max_objects = config.max_objects

    def forward(self, images: torch.Tensor, all_layers: bool = True) -> list[dict[str, torch.Tensor]]:
        features = self.input_proj(self.backbone(images))  # (B, d, h, w)
        b, d, h, w = features.shape
        memory = features.flatten(2).transpose(1, 2)  # (B, h*w, d)
        pos = sine_position_encoding(h, w, d, memory.device, memory.dtype)[None]
        for layer in self.encoder:
            memory = layer(memory, pos)
        memory = self.encoder_norm(memory)
        query_pos = self.query_pos.weight[None].expand(b, -1, -1)
        t = torch.zeros_like(query_pos)
        outputs = []
        for i, layer in enumerate(self.decoder):
            t = layer(t, query_pos, memory, pos)
            if all_layers or i == len(self.decoder) - 1:
                q = self.decoder_norm(t)
                out = self.heads(q[:, : self.max_objects])
                out["camera"] = self.camera_head(q[:, self.max_objects])
                outputs.append(out)
        return outputs
