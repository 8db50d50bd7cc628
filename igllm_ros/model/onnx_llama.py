"""fast_llama's decoder work through ONNX Runtime, for decoding on a CPU in float32.

Why: a decoding pass feeds about 10 tokens, and PyTorch's sgemm with that few rows is slow
on this CPU; ONNX Runtime's kernels (which pre-pack constant weights) ran the same 4-layer
projections and MLPs 2.8x faster at 1 and 10 rows (docs/model.md, "ONNX Runtime: the
vision tower and the decoder layers").

One graph per decoding pass (`OnnxPass`), exported in memory from the fused weights
fast_llama already keeps (nothing is written or read): every layer (RMSNorm, the fused
q/k/v matmul, RoPE, attention over the cached keys and values given as inputs, the o
projection, the SwiGLU MLP) and the final norm; the pass's new keys and values are
returned. The KV cache itself stays fast_llama's (kv_cache.py, slot-major "slots" layout:
one contiguous input, one output per pass), so its logic is the one already tested; the
prefill passes an empty cache. Unlike fast_llama's PyTorch path, the
prefill's last layer computes its image tokens in full (their outputs are dropped), which
one graph for every pass is worth. Outputs equal PyTorch's to float rounding, not bit for
bit (other kernels, other summation order); test_model_onnx_runtime.py and
test_model_fast_decode.py check them.

Used where it applies (`available`): onnxruntime installed, an LLM on the CPU in float32,
and IGLLM_ONNX_RUNTIME not set to 0. The graphs are made on first use and again when a
weight changes (derived.py), under a second for a 4-layer model.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from igllm_ros.model import onnx_runtime
from igllm_ros.model.derived import derived, new_cache

_PASSES = new_cache()  # per LLM decoder module: torch threads -> OnnxPass
_PASSES_WITH_HEADS = new_cache()  # per IGLLM (the readout): torch threads -> OnnxPass with its heads


def available(weight: torch.Tensor) -> bool:
    """Whether an LLM with this weight's device and dtype may take this path."""
    return onnx_runtime.enabled() and onnx_runtime.cpu_float32(weight)


class _Before(nn.Module):
    def __init__(self, layer, heads: int, kv_heads: int, head_dim: int):
        super().__init__()
        self.norm, self.eps, self.qkv = layer.norm1.detach(), layer.eps1, layer.qkv.detach()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim

    def forward(self, x, cos, sin):
        batch, length, _ = x.shape
        h = _rms_norm(x, self.norm, self.eps)
        qkv = F.linear(h, self.qkv).view(batch, length, self.heads + 2 * self.kv_heads, self.head_dim)
        qk = _rotate(qkv[:, :, : self.heads + self.kv_heads], cos, sin)
        return qk[:, :, : self.heads], qk[:, :, self.heads:], qkv[:, :, self.heads + self.kv_heads:]


class _After(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.o, self.norm, self.eps = layer.o.detach(), layer.norm2.detach(), layer.eps2
        self.gate_up, self.down = layer.gate_up.detach(), layer.down.detach()

    def forward(self, x, attn):
        x = x + F.linear(attn, self.o)
        gate, up = F.linear(_rms_norm(x, self.norm, self.eps), self.gate_up).chunk(2, dim=-1)
        return x + F.linear(F.silu(gate) * up, self.down)


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy())


def _rms_norm(x, weight, eps):
    # Written out, not fast_llama's F.rms_norm: opset 17 has no export for aten::rms_norm.
    h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h


def _rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class _Pass(nn.Module):
    """A whole decoding pass: every layer (attention over the cached keys and values
    included) and the final norm, for T new tokens."""

    def __init__(self, layers, norm, eps, heads: int, kv_heads: int, head_dim: int, scaling: float):
        super().__init__()
        self.before = nn.ModuleList([_Before(layer, heads, kv_heads, head_dim) for layer in layers])
        self.after = nn.ModuleList([_After(layer) for layer in layers])
        self.norm, self.eps = norm.detach(), eps
        self.repeat, self.scaling = heads // kv_heads, scaling

    def forward(self, x, cos, sin, mask, past):
        """past: the cache's written slots, (S, 2 * layers, B, kv, dim) (kv_cache.py's
        "slots" layout) -> (normed hidden (B, T, hidden), new slots (T, 2 * layers, B, kv, dim))."""
        batch, length, _ = x.shape
        new = []
        for index, (before, after) in enumerate(zip(self.before, self.after)):
            q, k, v = before(x, cos, sin)  # k, v: (B, T, kv, dim)
            new += [k.transpose(0, 1), v.transpose(0, 1)]
            keys = torch.cat([past[:, 2 * index].permute(1, 2, 0, 3), k.transpose(1, 2)], dim=2)
            values = torch.cat([past[:, 2 * index + 1].permute(1, 2, 0, 3), v.transpose(1, 2)], dim=2)
            if self.repeat > 1:
                keys, values = keys.repeat_interleave(self.repeat, dim=1), values.repeat_interleave(self.repeat, dim=1)
            attn = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask, scale=self.scaling)
            x = after(x, attn.transpose(1, 2).reshape(batch, length, -1))
        return _rms_norm(x, self.norm, self.eps), torch.stack(new, dim=1)


class _PassWithHeads(_Pass):
    """_Pass, then the readout's decode_heads (IGLLM: logits after state `last`, numeric
    values at every state): what decoding reads, without a PyTorch call per pass."""

    def __init__(self, readout, *args):
        super().__init__(*args)
        self.read = readout.frozen_decode_heads()

    def forward(self, x, cos, sin, mask, past, last):
        hidden, new = super().forward(x, cos, sin, mask, past)
        logits, values = self.read(hidden, last)
        return logits, values, new


class OnnxPass:
    """_Pass through one ONNX Runtime session; the KV cache stays fast_llama's (in its
    "slots" layout: the written slots go in as one contiguous block, no copy)."""

    def __init__(self, runner, readout=None):
        """readout: an IGLLM whose decode_heads() the graph applies (run_heads), else the
        graph returns the hidden states (run)."""
        self.layers = len(runner.layers)
        hidden, dim, kv = runner.layers[0].o.shape[0], runner.head_dim, runner.kv_heads
        t, past = 2, 3
        x, cos = torch.zeros(1, t, hidden), torch.zeros(1, t, 1, dim)
        mask = torch.ones(1, 1, t, past + t, dtype=torch.bool)
        slots = torch.zeros(past, 2 * self.layers, 1, kv, dim)
        dynamic = {"x": [0, 1], "cos": [0, 1], "sin": [0, 1], "mask": [0, 2, 3], "past": [0, 2], "new": [0, 2]}
        layers = (runner.layers, runner.norm, runner.eps, runner.heads, kv, dim, runner.scaling)
        inputs = ["x", "cos", "sin", "mask", "past"]
        if readout is None:
            module, example, outputs = _Pass(*layers), (x, cos, cos, mask, slots), ["hidden", "new"]
        else:
            module, example = _PassWithHeads(readout, *layers), (x, cos, cos, mask, slots, torch.ones(1, dtype=torch.long))
            inputs, outputs = inputs + ["last"], ["logits", "values", "new"]
            dynamic.update({"last": [0], "logits": [0], "values": [0, 1]})
        self._session = onnx_runtime.session_for(module, example, inputs, outputs, dynamic)

    def run(self, x, cos, sin, mask, past: torch.Tensor):
        """-> (normed hidden states (B, T, hidden), new slots (T, 2 * layers, B, kv, dim))."""
        feeds = {"x": _np(x), "cos": _np(cos), "sin": _np(sin), "mask": _np(mask), "past": _np(past)}
        hidden, new = self._session.run(None, feeds)
        return torch.from_numpy(hidden), torch.from_numpy(new)

    def run_heads(self, x, cos, sin, mask, past: torch.Tensor, last: torch.Tensor):
        """-> (logits after state `last` (B, V), numeric values (B, T), new slots)."""
        feeds = {"x": _np(x), "cos": _np(cos), "sin": _np(sin), "mask": _np(mask), "past": _np(past), "last": _np(last)}
        logits, values, new = self._session.run(None, feeds)
        return torch.from_numpy(logits), torch.from_numpy(values), torch.from_numpy(new)


def pass_graph(owner: nn.Module, runner, readout=None) -> OnnxPass:
    """The OnnxPass of a FastLlama runner over `owner` (its decoder module), with the
    readout's heads when given, cached until one of the weights it reads changes."""
    weights = [w for layer in runner.layers for w in layer.weights] + [runner.norm]
    cache, key_owner = (_PASSES, owner) if readout is None else (_PASSES_WITH_HEADS, readout)
    if readout is not None:
        weights += readout.decode_head_weights()
    threads = torch.get_num_threads()
    by_threads = derived(cache, key_owner, weights, lambda: {})
    graph = by_threads.get(threads)
    if graph is None:
        graph = by_threads[threads] = OnnxPass(runner, readout)
    return graph
