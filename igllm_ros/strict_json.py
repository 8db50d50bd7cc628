"""Strict JSON for every file the toolkit writes (cards, metrics.json, log.jsonl, benchmark
results): NaN and infinities become null, so other tools can read them."""
from __future__ import annotations

import math

import numpy as np


def json_ready(value):
    """`value` with NaN/inf as None, numpy scalars as Python numbers, tuples as lists,
    mapping keys as strings and anything else JSON cannot hold as its str()."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
