"""Which renderer draws a split's RGB image, made lazily once per process.

Scenes are always sampled, and labelled (mask, visibility), with the moderngl
SceneRenderer; a split whose rule says renderer="cycles" (val_cycles) draws its RGB image
with Blender Cycles (igllm_ros.data.cycles.CyclesRenderer) instead. Cycles costs seconds
per image, so one renderer is kept per process and size.
"""
from __future__ import annotations

import importlib
import os

from igllm_ros.data.splits import split_rule

CYCLES_MODULE = "igllm_ros.data.cycles"
_CYCLES: dict = {}


class RendererUnavailable(RuntimeError):
    """A split asks for a renderer that this installation does not have."""


def _cycles_class():
    try:
        module = importlib.import_module(CYCLES_MODULE)
    except ImportError as err:
        raise RendererUnavailable(
            f"this split renders with Blender Cycles, but {CYCLES_MODULE} cannot be imported ({err}); "
            "the Cycles renderer (igllm_ros/data/cycles.py) is needed for the Cycles splits (val_cycles, train_cycles)"
        ) from err
    if not hasattr(module, "CyclesRenderer"):
        raise RendererUnavailable(f"{CYCLES_MODULE} has no CyclesRenderer")
    return module.CyclesRenderer


def check_available(split: str) -> None:
    """Raises RendererUnavailable now (not after sampling) when the split's RGB renderer is missing."""
    if split_rule(split).renderer == "cycles":
        _cycles_class()


def cycles_renderer(width: int, height: int):
    """This process's CyclesRenderer of this size (a forked child makes its own)."""
    key = (os.getpid(), width, height)
    if key not in _CYCLES:
        module = importlib.import_module(CYCLES_MODULE)
        unavailable = getattr(module, "CyclesUnavailable", RendererUnavailable)
        try:
            _CYCLES[key] = _cycles_class()(width, height)
        except unavailable as err:  # e.g. its Blender environment could not be set up
            raise RendererUnavailable(f"the Cycles renderer could not start: {err}") from err
    return _CYCLES[key]


def release_all() -> None:
    for key in [k for k in _CYCLES if k[0] == os.getpid()]:
        _CYCLES.pop(key).release()
