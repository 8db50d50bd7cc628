"""Test doubles of a model, for the node's tests: a real model wrapped to be slow or to fail.

A double is a directory holding `test_double.json` ({"model": "<real model dir>",
"delay_ms": 300, "fail_on_white": true}); the test entry point (support.node_main) loads
the real model through the node's own ModelHost and wraps it. Nothing of this ships.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from igllm_ros.ros.model_host import ModelHost

SPEC = "test_double.json"


def make_double(directory, model_dir, delay_ms: int = 0, fail_on_white: bool = False) -> str:
    """A test-double model directory wrapping the real model in model_dir; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = {"model": str(Path(model_dir).resolve()), "delay_ms": delay_ms, "fail_on_white": fail_on_white}
    (directory / SPEC).write_text(json.dumps(spec))
    return str(directory)


class ModelDouble:
    """A loaded ModelHost that sleeps after each inference (a slower model) and/or raises on
    an all-white view (a model bug the node must survive)."""

    def __init__(self, host: ModelHost, delay_ms: int, fail_on_white: bool):
        self._host = host
        self._delay_s = delay_ms / 1000.0
        self._fail_on_white = fail_on_white

    def __getattr__(self, name):  # name, path, choice, input_size, load_s, close
        return getattr(self._host, name)

    def reconstruct(self, rgb, max_objects: int):
        if self._fail_on_white and int(np.min(rgb)) == 255:
            raise RuntimeError("test double: injected model fault on an all-white image")
        result = self._host.reconstruct(rgb, max_objects)
        time.sleep(self._delay_s)
        return result


def load(path: str, device: str = "auto", dtype: str = "auto", torch_threads: int = 0):
    """ModelHost.load, but a test-double directory gives its wrapped model."""
    spec_file = Path(path) / SPEC
    if not spec_file.is_file():
        return ModelHost.load(path, device, dtype, torch_threads)
    spec = json.loads(spec_file.read_text())
    host = ModelHost.load(spec["model"], device, dtype, torch_threads)
    return ModelDouble(host, int(spec.get("delay_ms", 0)), bool(spec.get("fail_on_white", False)))
