"""A lean Llama forward for decoding: the transformers model's own weights (it stays
their one definition; training never sees this path), a preallocated KV cache
(kv_cache.py) and only the tensor ops the computation needs, instead of transformers'
generic forward and DynamicCache, whose per-call overhead weighed on every decoding pass
of the small LLMs used here.

The ops follow transformers' Llama (modeling_llama.py) one for one: RMSNorm in float32,
RoPE from the model's inv_freq, scaled_dot_product_attention with the same masks (none
and is_causal for an unpadded prefill, none for one unpadded query, else a boolean mask),
SwiGLU MLP. One computation is left out: in the last layer, the image tokens of the
prefill need only their keys and values (their outputs are never read), so their
attention output and MLP are not computed. The q/k/v projections run as one matmul, and
so do the MLP's gate and up projections, over concatenated copies of those weights (a
matmul's output columns do not depend on its other columns; the copies are rebuilt when
a weight changes, e.g. by a training step).

On a CPU in float32 the same computation runs through ONNX Runtime (onnx_llama.py), one
graph per pass (the prefill's last layer then computes its image tokens in full); the KV
cache stays here. IGLLM_ONNX_RUNTIME=0 keeps everything in PyTorch.

`unsupported_reason(llm)` says why an LLM cannot take this path (peft/LoRA wrappers,
other architectures, RoPE scaling, biases, ...); decode.py then uses the generic one.
"""
from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from igllm_ros.model import onnx_llama
from igllm_ros.model.derived import derived, new_cache
from igllm_ros.model.kv_cache import StaticKVCache

NAME = "fast-llama"

# Per rotary module: (inv_freq, device, dtype) -> cos and sin tables by position.
_ROPE_TABLES: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
# Per attention or MLP module: its weights' concatenation (derived.py).
_FUSED = new_cache()


def unsupported_reason(llm: nn.Module) -> str | None:
    """None when the fast path computes exactly what transformers' forward does for this
    LLM, else a short reason."""
    try:
        from transformers import LlamaForCausalLM
    except ImportError:
        return "transformers has no Llama"
    if hasattr(llm, "get_base_model"):
        return "peft-wrapped LLM"
    if type(llm) is not LlamaForCausalLM:
        return f"{type(llm).__name__} is not a plain LlamaForCausalLM"
    config = llm.config
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    checks = {
        "activation": config.hidden_act == "silu",
        "no attention bias": not getattr(config, "attention_bias", False),
        "no MLP bias": not getattr(config, "mlp_bias", False),
        "pretraining_tp 1": getattr(config, "pretraining_tp", 1) == 1,
        "default RoPE": rope.get("rope_type", "default") == "default",
        "RoPE scaling 1": float(getattr(llm.model.rotary_emb, "attention_scaling", 1.0)) == 1.0,
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        return "needs " + ", ".join(failed)
    for layer in llm.model.layers[: config.num_hidden_layers]:
        attn, mlp = layer.self_attn, layer.mlp
        linears = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
        if any(type(m) is not nn.Linear or m.bias is not None for m in linears):
            return "a layer's projections are not plain bias-free nn.Linear"
    return None


class _Layer:
    """One decoder layer's weights: the module's parameters, q/k/v and gate/up fused."""

    def __init__(self, layer: nn.Module):
        attn, mlp = layer.self_attn, layer.mlp
        self.weights = (attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.o_proj.weight, mlp.gate_proj.weight,
                        mlp.up_proj.weight, mlp.down_proj.weight, layer.input_layernorm.weight, layer.post_attention_layernorm.weight)
        self.qkv = _fused(attn, attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight)
        self.q_size, self.kv_size = attn.q_proj.weight.shape[0], attn.k_proj.weight.shape[0]
        self.o = attn.o_proj.weight
        self.gate_up = _fused(mlp, mlp.gate_proj.weight, mlp.up_proj.weight)
        self.down = mlp.down_proj.weight
        self.norm1, self.eps1 = layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon
        self.norm2, self.eps2 = layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon


class FastLlama:
    """The lean forward over a LlamaForCausalLM's weights; start() opens a decoding
    session (its KV cache) for one batch of images."""

    name = NAME

    def __init__(self, llm: nn.Module, checked: bool = False, readout=None):
        """checked: unsupported_reason(llm) was None just now (decode.py asks it first).
        readout: the IGLLM whose decode_heads() step() applies to the final states (on the
        ONNX Runtime path inside the pass's graph, so they cost no PyTorch calls)."""
        reason = None if checked else unsupported_reason(llm)
        if reason is not None:
            raise ValueError(f"the fast Llama path does not support this LLM: {reason}")
        config, inner = llm.config, llm.model
        self.layers = [_Layer(layer) for layer in inner.layers[: config.num_hidden_layers]]
        self.norm, self.eps = inner.norm.weight, inner.norm.variance_epsilon
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        attn = inner.layers[0].self_attn
        self.head_dim, self.scaling = attn.head_dim, attn.scaling
        self.rotary = inner.rotary_emb
        self.max_positions = config.max_position_embeddings
        # On a CPU in float32 the layers run through ONNX Runtime (onnx_llama.py).
        self.onnx = onnx_llama.available(self.norm)
        self.readout, self._inner = readout, inner
        self.whole_pass = self.pass_with_heads = None  # made on first use: decoding needs only the second
        if self.onnx and readout is not None:
            self.pass_with_heads = onnx_llama.pass_graph(inner, self, readout)
        elif self.onnx:
            self.whole_pass = onnx_llama.pass_graph(inner, self)

    def start(self, image: torch.Tensor) -> "FastLlamaSession":
        return FastLlamaSession(self, image)

    def rope(self, positions: torch.Tensor, size: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin (B, T, 1, head_dim) at `positions` (B, T), every position < size,
        from a table computed as transformers computes them (float32, then cast)."""
        inv_freq = self.rotary.inv_freq
        key = (inv_freq.data_ptr(), inv_freq._version, inv_freq.device, dtype)
        cached = _ROPE_TABLES.get(self.rotary)
        if cached is None or cached[0] != key or cached[1].shape[0] < size:
            table = torch.arange(max(size, self.max_positions), device=inv_freq.device).float()
            freqs = table[:, None] * inv_freq.float()
            emb = torch.cat((freqs, freqs), dim=-1)
            cached = (key, emb.cos().to(dtype), emb.sin().to(dtype))
            _ROPE_TABLES[self.rotary] = cached
        return cached[1][positions].unsqueeze(2), cached[2][positions].unsqueeze(2)

    def step(self, cache: StaticKVCache, x: torch.Tensor, valid: torch.Tensor, positions: torch.Tensor, rows: int, padded: bool,
             last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward(), then the readout's decode_heads() on the last `rows` states: (logits
        after state `last` (B,) of those rows (B, V), numeric values (B, rows))."""
        if self.pass_with_heads is not None:  # made only on the ONNX Runtime path
            start, end = cache.append_slots(valid, padded)
            cos, sin = self.rope(positions, end, x.dtype)
            skipped = x.shape[1] - rows  # the prefill's image tokens
            mask = cache.mask(start, end, x.shape[1])
            logits, values, new = self.pass_with_heads.run_heads(x, cos, sin, mask, cache.written_slots(start), last + skipped)
            cache.store_slots(start, new)
            return logits, values[:, skipped:]
        return self.readout.decode_heads(self.forward(cache, x, valid, positions, rows, padded), last)

    def forward(self, cache: StaticKVCache, x: torch.Tensor, valid: torch.Tensor, positions: torch.Tensor, rows: int, padded: bool) -> torch.Tensor:
        """x (B, T, hidden) at `positions`, valid (B, T) bool -> the final (normed) hidden
        states of the last `rows` tokens (B, rows, hidden); keys and values go to the cache."""
        start, end = cache.append_slots(valid, padded)
        cos, sin = self.rope(positions, end, x.dtype)
        length = x.shape[1]
        if self.onnx:  # one graph per pass; the prefill's image tokens are computed in full
            return self._onnx_pass(cache, x, cos, sin, start, end)[:, -rows:]
        full = _attention_mask(cache, start, end, length)
        last = _attention_mask(cache, start, end, rows) if rows < length else full
        for index, layer in enumerate(self.layers):
            is_last = index == len(self.layers) - 1
            x = self._layer(layer, index, cache, x, cos, sin, start, last if is_last else full, rows if is_last else length)
        return _rms_norm(x, self.norm, self.eps)

    def _layer(self, w: _Layer, index: int, cache: StaticKVCache, x, cos, sin, start: int, mask: tuple, rows: int):
        batch, length, _ = x.shape
        heads, kv, dim = self.heads, self.kv_heads, self.head_dim
        h = _rms_norm(x, w.norm1, w.eps1)
        if rows < length:  # only the last rows' outputs are needed: the others get k and v only
            k_v = F.linear(h, w.qkv[w.q_size:]).view(batch, length, 2 * kv, dim)
            k, v = _rotate(k_v[:, :, :kv], cos, sin), k_v[:, :, kv:]
            q = _rotate(F.linear(h[:, -rows:], w.qkv[: w.q_size]).view(batch, rows, heads, dim), cos[:, -rows:], sin[:, -rows:])
            x = x[:, -rows:]
        else:  # q and k rotated together (the same elementwise ops)
            qkv = F.linear(h, w.qkv).view(batch, length, heads + 2 * kv, dim)
            qk = _rotate(qkv[:, :, : heads + kv], cos, sin)
            q, k, v = qk[:, :, :heads], qk[:, :, heads:], qkv[:, :, heads + kv:]
        keys, values = cache.store(index, start, k.transpose(1, 2), v.transpose(1, 2))
        if heads != kv:
            keys, values = keys.repeat_interleave(heads // kv, dim=1), values.repeat_interleave(heads // kv, dim=1)
        attn = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask[0], is_causal=mask[1], scale=self.scaling)
        x = x + F.linear(attn.transpose(1, 2).reshape(batch, rows, -1), w.o)
        gate, up = F.linear(_rms_norm(x, w.norm2, w.eps2), w.gate_up).chunk(2, dim=-1)
        return x + F.linear(F.silu(gate) * up, w.down)

    def _onnx_pass(self, cache: StaticKVCache, x, cos, sin, start: int, end: int) -> torch.Tensor:
        """A whole pass as one ONNX Runtime graph (onnx_llama.OnnxPass): the cached keys and
        values go in (none for the prefill), the pass's new ones come back into the cache."""
        if self.whole_pass is None:
            self.whole_pass = onnx_llama.pass_graph(self._inner, self)
        hidden, new = self.whole_pass.run(x, cos, sin, cache.mask(start, end, x.shape[1]), cache.written_slots(start))
        cache.store_slots(start, new)
        return hidden


class FastLlamaSession:
    """One batch's decoding: the first forward is the prefill (the image tokens, then the
    first run), each later one appends a run."""

    def __init__(self, runner: FastLlama, image: torch.Tensor):
        self.runner = runner
        self.image = image
        batch, prefix, _ = image.shape
        self.cache = StaticKVCache(len(runner.layers), batch, runner.kv_heads, runner.head_dim, prefix + 128, image.dtype, image.device,
                                   layout="slots" if runner.onnx else "layers")

    def forward(self, embeds: torch.Tensor, valid: torch.Tensor, positions: torch.Tensor, padded: bool) -> torch.Tensor:
        """embeds (B, W, hidden), valid (B, W) bool, positions (B, W) -> (B, W, hidden)."""
        rows = embeds.shape[1]
        embeds, valid, positions = self._with_image(embeds, valid, positions)
        return self.runner.forward(self.cache, embeds, valid, positions, rows, padded)

    def step(self, embeds: torch.Tensor, valid: torch.Tensor, positions: torch.Tensor, padded: bool,
             last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward() read out by the runner's readout: (logits after embeds' state `last`
        (B,) (B, V), numeric values (B, W)), float32."""
        rows = embeds.shape[1]
        embeds, valid, positions = self._with_image(embeds, valid, positions)
        return self.runner.step(self.cache, embeds, valid, positions, rows, padded, last)

    def _with_image(self, embeds, valid, positions):
        """The first pass (the prefill) feeds the image tokens before the run."""
        if self.image is None:
            return embeds, valid, positions
        image, self.image = self.image, None
        batch, prefix, _ = image.shape
        embeds = torch.cat([image, embeds], dim=1)
        image_positions = torch.arange(prefix, device=positions.device).expand(batch, prefix)
        positions = torch.cat([image_positions, positions], dim=1)
        valid = torch.cat([torch.ones((batch, prefix), dtype=torch.bool, device=valid.device), valid], dim=1)
        return embeds, valid, positions


def _attention_mask(cache: StaticKVCache, start: int, end: int, rows: int) -> tuple[torch.Tensor | None, bool]:
    """(mask, is_causal) as transformers' sdpa path chooses them: no mask where nothing
    is padded and causality is implicit (a whole prefill) or trivial (one query)."""
    if not cache.has_padding:
        if start == 0 and rows == end:
            return None, True
        if rows == 1:
            return None, False
    return cache.mask(start, end, rows), False


def _fused(owner: nn.Module, *weights: torch.Tensor) -> torch.Tensor:
    """The weights concatenated along their output rows, cached per owning module (weakly:
    nothing is added to the model) until one of them changes."""
    return derived(_FUSED, owner, weights, lambda: torch.cat([w.detach() for w in weights]))


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if x.dtype == torch.float32 and weight.dtype == torch.float32:
        return F.rms_norm(x, weight.shape, weight, eps)  # fused; bit-identical here in float32
    # LlamaRMSNorm: in float32, then back to the input dtype.
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin
