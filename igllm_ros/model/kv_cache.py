"""A preallocated key/value cache for batched decoding: one (B, kv_heads, capacity,
head_dim) tensor pair per layer, written in place pass after pass, plus which slots hold a
real token (padded slots of a batch are masked out of attention forever).

All sequences of a batch share the write pointer (`length`): a pass appends the same
number of slots to every sequence, right-padded where a sequence's run is shorter, as the
generic decoder's attention mask does. Capacity grows by doubling when a pass would not
fit, so no bound on the program length is needed up front.
"""
from __future__ import annotations

import torch


class StaticKVCache:
    def __init__(self, layers: int, batch: int, kv_heads: int, head_dim: int, capacity: int, dtype: torch.dtype, device: torch.device):
        if min(layers, batch, kv_heads, head_dim, capacity) < 1:
            raise ValueError("StaticKVCache needs positive sizes")
        self.layers, self.batch, self.kv_heads, self.head_dim = layers, batch, kv_heads, head_dim
        self.dtype, self.device = dtype, device
        self.length = 0  # slots written so far (the same for every sequence)
        self.has_padding = False  # whether any written slot is a padded (masked) one
        self._allocate(capacity)

    @property
    def capacity(self) -> int:
        return self.valid.shape[1]

    def _allocate(self, capacity: int) -> None:
        shape = (self.batch, self.kv_heads, capacity, self.head_dim)
        # Uninitialised: attention reads only slots already written (padded ones included).
        keys = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
        values = [torch.empty(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
        valid = torch.zeros((self.batch, capacity), dtype=torch.bool, device=self.device)
        if self.length:  # growing: keep what was written
            n = self.length
            for new, old in zip(keys + values, self.keys + self.values):
                new[:, :, :n] = old[:, :, :n]
            valid[:, :n] = self.valid[:, :n]
        self.keys, self.values, self.valid = keys, values, valid
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
        """Write (B, kv_heads, T, head_dim) keys and values at slots start..start+T; return
        the layer's keys and values of every slot written so far (views, no copy)."""
        end = start + keys.shape[2]
        self.keys[layer][:, :, start:end] = keys
        self.values[layer][:, :, start:end] = values
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def mask(self, start: int, end: int, rows: int) -> torch.Tensor:
        """Boolean attention mask (B, 1, rows, end) for the last `rows` query slots of
        start..end: causal, and padded key slots excluded."""
        first = end - rows
        return self.valid[:, None, None, :end] & self.causal[first:end, :end]
