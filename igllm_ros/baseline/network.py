"""The baseline's network: CNN encoder + 2D sine positions + transformer encoder/decoder
with learned object queries and a camera query, and per-query heads (DETR, Carion et al. 2020).

Pure tensors in, tensors out; targets, matching and scenes live elsewhere.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from igllm_ros import world
from igllm_ros.baseline import targets
from igllm_ros.baseline.config import BaselineConfig
from igllm_ros.scene import Camera

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


def sine_embed(points: torch.Tensor, dim: int) -> torch.Tensor:
    """DETR's 2D sine encoding of points (..., 2) = (x, y) in [0, 1]: (..., dim), half the
    channels for y, half for x. Grid cells and anchor points share it, so a query's position
    and an image token's position are alike when they are near each other."""
    if dim % 4:
        raise ValueError(f"d_model {dim} must be divisible by 4 for the 2D sine encoding")
    quarter = dim // 4
    freq = 10000.0 ** (torch.arange(quarter, device=points.device, dtype=torch.float32) / quarter)
    angles = points.float()[..., None] * (2 * math.pi) / freq  # (..., 2, quarter)
    x, y = angles[..., 0, :], angles[..., 1, :]
    return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=-1)


def grid_centres(height: int, width: int, device) -> torch.Tensor:
    """(height * width, 2) cell centres as (x / width, y / height), in the token order."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(height * width, 2)


def sine_position_encoding(height: int, width: int, dim: int, device, dtype) -> torch.Tensor:
    """The encoding of every cell centre of a height x width grid, (height * width, dim)."""
    return sine_embed(grid_centres(height, width, device), dim).to(dtype)


class AnchorQueries(nn.Module):
    """Anchored object queries (after Conditional DETR, DAB-DETR, SMCA and Deformable DETR's
    iterative refinement), which is what makes a DETR converge in a small budget: plain
    queries start alike, so Hungarian matching hands them objects at random and they learn
    the average object for a long time before they specialise.

    Each object query owns a learned anchor point on the table (normalised x, y), spread over
    the table at the start. Every decoder layer refines a per-image reference point, starting
    at the anchor: the layer predicts x, y as an offset from the reference, and the next layer
    starts from that prediction. The reference, projected through the nominal camera into the
    image, gives the query its positional embedding (an MLP of the same sine encoding the
    image tokens carry) and a Gaussian bias on its cross-attention logits around that point,
    one width per head (0 = no bias: a global head).
    """

    def __init__(self, count: int, d: int, sigmas: tuple[float, ...]):
        super().__init__()
        golden = math.pi * (3.0 - math.sqrt(5.0))
        i = torch.arange(count, dtype=torch.float32)
        radius = 0.85 * torch.sqrt((i + 0.5) / count)  # a sunflower over the table
        self.points = nn.Parameter(torch.stack([radius * torch.cos(i * golden), radius * torch.sin(i * golden)], 1))
        self.pos_mlp = _mlp(d, d)
        # Plain arrays, not buffers: model.to(bfloat16) must not round the camera geometry.
        self._rotation, self._camera = Camera().table_from_optical()
        self.sigmas = tuple(float(v) for v in sigmas)
        self.d = d

    def image_points(self, xy: torch.Tensor) -> torch.Tensor:
        """Normalised table points (..., 2) on the table into the nominal camera's image:
        (..., 2) as (x / width, y / height)."""
        const = lambda a: torch.as_tensor(a, dtype=torch.float32, device=xy.device)  # noqa: E731
        xy = xy.float() * const(targets.LOC_SCALE[:2])
        table = torch.cat([xy, torch.full_like(xy[..., :1], targets.Z_CENTRE)], dim=-1)
        optical = (table - const(self._camera)) @ const(self._rotation)
        depth = optical[..., 2].clamp(min=1e-3)
        u = world.FOCAL_OVER_WIDTH * optical[..., 0] / depth + 0.5
        v = world.FOCAL_OVER_WIDTH * optical[..., 1] / depth * (world.IMAGE_WIDTH / world.IMAGE_HEIGHT) + 0.5
        return torch.stack([u, v], dim=-1)

    def query_pos(self, image_points: torch.Tensor, dtype) -> torch.Tensor:
        return self.pos_mlp(sine_embed(image_points, self.d).to(dtype))

    def attention_bias(self, image_points: torch.Tensor, grid: torch.Tensor, extra_queries: int, dtype) -> torch.Tensor:
        """Cross-attention logit bias (B * heads, Q + extra, K): -distance^2 / (2 sigma^2) in image
        widths around each reference; zero for the extra (camera) queries and sigma-0 heads."""
        aspect = world.IMAGE_HEIGHT / world.IMAGE_WIDTH
        delta = image_points[:, :, None, :] - grid[None, None, :, :]  # (B, Q, K, 2)
        dist2 = delta[..., 0] ** 2 + (delta[..., 1] * aspect) ** 2
        inv = torch.tensor([0.0 if s <= 0 else 0.5 / s**2 for s in self.sigmas], device=grid.device)
        bias = -dist2[:, None] * inv[None, :, None, None]  # (B, H, Q, K)
        bias = F.pad(bias, (0, 0, 0, extra_queries))
        return bias.flatten(0, 1).to(dtype)


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

    def __init__(self, d: int, heads: int, ffn: int, dropout: float, position_in_values: bool = True):
        super().__init__()
        self.position_in_values = position_in_values
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = _FeedForward(d, ffn, dropout)

    def forward(self, t, query_pos, memory, pos, cross_bias=None) -> torch.Tensor:
        h = self.norm1(t)
        t = t + self.self_attn(h + query_pos, h + query_pos, h, need_weights=False)[0]
        h = self.norm2(t)
        # Positions in the values too, so a query can read where what it attends to is.
        key = memory + pos
        value = key if self.position_in_values else memory
        t = t + self.cross_attn(h + query_pos, key, value, attn_mask=cross_bias, need_weights=False)[0]
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
            DecoderLayer(d, config.heads, config.ffn_dim, config.dropout, config.position_in_values)
            for _ in range(config.decoder_layers)
        )
        self.decoder_norm = nn.LayerNorm(d)
        # max_objects object queries, then one camera query (the camera is global to the image).
        self.anchors = AnchorQueries(config.max_objects, d, config.attention_sigmas) if config.anchors else None
        self.query_pos = nn.Embedding(1 if config.anchors else config.max_objects + 1, d)
        self.heads = Heads(d)
        self.camera_head = _mlp(d, 3)
        self.max_objects = config.max_objects
        self.refine_anchors = config.refine_anchors

    def forward(self, images: torch.Tensor, all_layers: bool = True) -> list[dict[str, torch.Tensor]]:
        features = self.input_proj(self.backbone(images))  # (B, d, h, w)
        b, d, h, w = features.shape
        memory = features.flatten(2).transpose(1, 2)  # (B, h*w, d)
        pos = sine_position_encoding(h, w, d, memory.device, memory.dtype)[None]
        for layer in self.encoder:
            memory = layer(memory, pos)
        memory = self.encoder_norm(memory)
        fixed_pos = self.query_pos.weight[None].expand(b, -1, -1)
        t = memory.new_zeros(b, self.max_objects + 1, d)
        reference = None
        if self.anchors is not None:
            reference = self.anchors.points[None].expand(b, -1, -1).float()
            grid = grid_centres(h, w, memory.device)
        outputs = []
        for i, layer in enumerate(self.decoder):
            if reference is None:
                t = layer(t, fixed_pos, memory, pos)
            else:
                image_points = self.anchors.image_points(reference.detach())
                query_pos = torch.cat([self.anchors.query_pos(image_points, t.dtype), fixed_pos], dim=1)
                bias = self.anchors.attention_bias(image_points, grid, 1, t.dtype)
                t = layer(t, query_pos, memory, pos, cross_bias=bias)
            last = i == len(self.decoder) - 1
            if not (all_layers or last or reference is not None):
                continue
            q = self.decoder_norm(t)
            out = self.heads(q[:, : self.max_objects])
            if reference is not None:  # x, y as offsets from this layer's reference
                xy = reference + out["loc"][..., :2].float()
                out["loc"] = torch.cat([xy.to(out["loc"].dtype), out["loc"][..., 2:]], dim=-1)
                if self.refine_anchors:
                    reference = xy.detach()  # the next layer refines it (Deformable DETR)
            if all_layers or last:
                out["camera"] = self.camera_head(q[:, self.max_objects])
                outputs.append(out)
        return outputs

