"""A preallocated key/value cache for batched decoding: one (B, kv_heads, capacity,
head_dim) tensor pair per layer, written in place pass after pass, plus which slots hold a
real token (padded slots of a batch are masked out of attention forever).

All sequences of a batch share the write pointer (`length`): a pass appends the same
number of slots to every sequence, right-padded where a sequence's run is shorter, as the
generic decoder's attention mask does. Capacity grows by doubling when a pass would not
fit, so no bound on the program length is needed up front.

Two layouts of the same slots: "layers" (the default) keeps a (B, kv_heads, capacity,
head_dim) pair per layer, which PyTorch's attention reads as views; "slots" keeps one
(capacity, 2 * layers, B, kv_heads, head_dim) tensor, slot-major, so that every slot
written so far is one contiguous block: the ONNX Runtime pass (onnx_llama.py) takes it as
a single input with no copy and returns its new slots as a single output, where the
per-layer layout cost eight strided copies in and eight stores out per pass.
"""
from __future__ import annotations

import torch


LAYOUTS = ("layers", "slots")


class StaticKVCache:
    def __init__(self, layers: int, batch: int, kv_heads: int, head_dim: int, capacity: int, dtype: torch.dtype, device: torch.device,
                 layout: str = "layers"):
        if min(layers, batch, kv_heads, head_dim, capacity) < 1:
            raise ValueError("StaticKVCache needs positive sizes")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.layout = layout
        self.layers, self.batch, self.kv_heads, self.head_dim = layers, batch, kv_heads, head_dim
        self.dtype, self.device = dtype, device
        self.length = 0  # slots written so far (the same for every sequence)
        self.has_padding = False  # whether any written slot is a padded (masked) one
        self._allocate(capacity)

    @property
    def capacity(self) -> int:
        return self.valid.shape[1]

    def _allocate(self, capacity: int) -> None:
        # Uninitialised: attention reads only slots already written (padded ones included).
        n = self.length
        valid = torch.zeros((self.batch, capacity), dtype=torch.bool, device=self.device)
        if self.layout == "slots":
            shape = (capacity, 2 * self.layers, self.batch, self.kv_heads, self.head_dim)
            block = torch.empty(shape, dtype=self.dtype, device=self.device)
            if n:  # growing: keep what was written
                block[:n] = self.block[:n]
            self.block = block
        else:
            shape = (self.batch, self.kv_heads, capacity, self.head_dim)
            keys = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
            values = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
            if n:
                for new, old in zip(keys + values, self.keys + self.values):
                    new[:, :, :n] = old[:, :, :n]
            self.keys, self.values = keys, values
        if n:
            valid[:, :n] = self.valid[:, :n]
        self.valid = valid
        # causal[i, j]: slot i may attend to slot j (j <= i)
        self.causal = torch.ones((capacity, capacity), dtype=torch.bool, device=self.device).tril_()

    def reserve(self, end: int) -> None:
        """Make room for slots up to `end` (exclusive)."""
        if end > self.capacity:
            self._allocate(max(end, 2 * self.capacity))

    def append_slots(self, valid: torch.Tensor, padded: bool) -> tuple[int, int]:
        """Claim the next valid.shape[1] slots; valid (B, T) bool marks the real tokens.
        Returns (start, end) of the claimed slots; the layers write their keys and values
        there with `store`."""
        start, end = self.length, self.length + valid.shape[1]
        self.reserve(end)
        self.valid[:, start:end] = valid
        self.has_padding = self.has_padding or padded
        self.length = end
        return start, end

    def store(self, layer: int, start: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """"layers" layout: write (B, kv_heads, T, head_dim) keys and values at slots
        start..start+T; return the layer's keys and values of every slot written so far
        (views, no copy)."""
        end = start + keys.shape[2]
        self.keys[layer][:, :, start:end] = keys
        self.values[layer][:, :, start:end] = values
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def written_slots(self, end: int) -> torch.Tensor:
        """"slots" layout: slots 0..end of every layer, (end, 2 * layers, B, kv_heads,
        head_dim), layer i's keys at [:, 2i] and values at [:, 2i + 1]; a contiguous view."""
        return self.block[:end]

    def store_slots(self, start: int, new: torch.Tensor) -> None:
        """"slots" layout: write (T, 2 * layers, B, kv_heads, head_dim) at slots start..start+T."""
        self.block[start:start + new.shape[0]] = new

    def mask(self, start: int, end: int, rows: int) -> torch.Tensor:
        """Boolean attention mask (B, 1, rows, end) for the last `rows` query slots of
        start..end: causal, and padded key slots excluded."""
        first = end - rows
        return self.valid[:, None, None, :end] & self.causal[first:end, :end]
