"""DETR's set loss: Hungarian matching of queries to true objects, then per-pair losses.

Matching cost per (query, object): -cost_class x (p(exists) + sum over attributes of the
probability of the true value) + cost_loc x L1 of the normalised location. Matched queries
learn existence = 1, the true attributes (cross-entropy), location (L1) and, for cubes,
yaw (L1 on sin/cos of 4 x yaw); every other query learns existence = 0 at weight
no_object_weight. The loss does not depend on the order of the true objects.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from igllm_ros.baseline.config import BaselineConfig
from igllm_ros.baseline.targets import ATTRIBUTE_NAMES

CUBE = 0  # index of "cube" in world.SHAPES
assert ATTRIBUTE_NAMES[0] == "shape"


@torch.no_grad()
def hungarian_match(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], config: BaselineConfig):
    """(batch index, query index, object index) long tensors of the matched pairs."""
    labels, mask = batch["labels"], batch["mask"]  # (B, N, 4), (B, N)
    n = labels.shape[1]
    q = out["exists"].shape[1]
    prob = out["exists"].float().sigmoid()[:, :, None].expand(-1, -1, n)  # (B, Q, N)
    for j, name in enumerate(ATTRIBUTE_NAMES):
        p = out[name].float().softmax(-1)  # (B, Q, C)
        index = labels[:, :, j].clamp(min=0)[:, None, :].expand(-1, q, -1)
        prob = prob + p.gather(2, index)
    l1 = torch.cdist(out["loc"].float(), batch["loc"].float(), p=1)  # (B, Q, N)
    cost = (config.cost_loc * l1 - config.cost_class * prob).cpu().numpy()
    counts = mask.sum(1).tolist()
    b_idx, q_idx, o_idx = [], [], []
    for b, count in enumerate(counts):
        if count == 0:
            continue
        rows, cols = linear_sum_assignment(cost[b, :, :count])  # true objects come first (padded after)
        b_idx.append(np.full(len(rows), b))
        q_idx.append(rows)
        o_idx.append(cols)
    device = out["exists"].device
    if not b_idx:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, empty
    return tuple(torch.as_tensor(np.concatenate(x), dtype=torch.long, device=device) for x in (b_idx, q_idx, o_idx))


def set_loss(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], config: BaselineConfig):
    """(loss, logs) for one decoder layer's outputs."""
    b_idx, q_idx, o_idx = hungarian_match(out, batch, config)
    exists_logit = out["exists"].float()
    target = torch.zeros_like(exists_logit)
    target[b_idx, q_idx] = 1.0
    weight = torch.full_like(exists_logit, config.no_object_weight)
    weight[b_idx, q_idx] = 1.0
    loss_exists = (F.binary_cross_entropy_with_logits(exists_logit, target, reduction="none") * weight).sum() / weight.sum()

    num = max(len(b_idx), 1)
    labels = batch["labels"][b_idx, o_idx]  # (M, 4)
    loss_class = exists_logit.new_zeros(())
    correct = []
    for j, name in enumerate(ATTRIBUTE_NAMES):
        logits = out[name][b_idx, q_idx].float()
        loss_class = loss_class + F.cross_entropy(logits, labels[:, j], reduction="sum") / num
        correct.append((logits.argmax(-1) == labels[:, j]).float())
    loc_error = (out["loc"][b_idx, q_idx].float() - batch["loc"][b_idx, o_idx].float()).abs()
    loss_loc = loc_error.sum() / num
    cubes = labels[:, 0] == CUBE
    yaw_error = (out["yaw"][b_idx, q_idx].float() - batch["yaw"][b_idx, o_idx].float()).abs().sum(-1)
    loss_yaw = (yaw_error * cubes).sum() / max(int(cubes.sum()), 1)
    loss_camera = (out["camera"].float() - batch["camera"].float()).abs().sum(-1).mean()

    loss = (
        config.loss_exists * loss_exists
        + config.loss_class * loss_class
        + config.loss_loc * loss_loc
        + config.loss_yaw * loss_yaw
        + config.loss_camera * loss_camera
    )
    logs = {
        "exists": float(loss_exists.detach()),
        "class": float(loss_class.detach()),
        "loc": float(loss_loc.detach()),
        "yaw": float(loss_yaw.detach()),
        "camera": float(loss_camera.detach()),
        "attr_acc": float(torch.cat(correct).mean()) if len(b_idx) else 1.0,
    }
    return loss, logs
