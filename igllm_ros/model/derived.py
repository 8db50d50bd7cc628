"""Copies derived from a module's weights (fast_llama's fused projections, an
EfficientNet tower with its BatchNorms folded), cached weakly per owning module, so
nothing is added to the model, and made again when one of the weights changes: in place
(its version), or replaced by .to() / .half() (its storage, dtype or device)."""
from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

import torch
from torch import nn

def new_cache() -> "weakref.WeakKeyDictionary[nn.Module, tuple]":
    return weakref.WeakKeyDictionary()


def derived(cache, owner: nn.Module, tensors: Iterable[torch.Tensor], make: Callable[[], object]):
    """make()'s result for `owner`, from the cache while none of `tensors` has changed."""
    key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
    hit = cache.get(owner)
    if hit is None or hit[0] != key:
        hit = (key, make())
        cache[owner] = hit
    return hit[1]
