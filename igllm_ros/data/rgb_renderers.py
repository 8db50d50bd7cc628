"""Which renderer draws a split's RGB image, made lazily once per process.

Scenes are always sampled, and labelled (mask, visibility), with the moderngl
SceneRenderer; a split whose rule names a Blender renderer draws its RGB image with
igllm_ros.data.cycles.CyclesRenderer instead: renderer="cycles" (val_cycles, train_cycles)
path-traces with Cycles, renderer="eevee" (val_eevee) rasterizes with EEVEE. Either costs
seconds per image, so one renderer is kept per process, engine and size.
"""
from __future__ import annotations

import importlib
import os

from igllm_ros.data.splits import split_rule

CYCLES_MODULE = "igllm_ros.data.cycles"
BLENDER_RENDERERS = ("cycles", "eevee")  # the split renderers that run in Blender (.venv-cycles)
_BLENDER: dict = {}


class RendererUnavailable(RuntimeError):
    """A split asks for a renderer that this installation does not have."""


def _cycles_class():
    try:
        module = importlib.import_module(CYCLES_MODULE)
    except ImportError as err:
        raise RendererUnavailable(
            f"this split renders with Blender (Cycles or EEVEE), but {CYCLES_MODULE} cannot be imported ({err}); "
            "the Blender renderer (igllm_ros/data/cycles.py) is needed for the Blender splits (val_cycles, train_cycles, val_eevee)"
        ) from err
    if not hasattr(module, "CyclesRenderer"):
        raise RendererUnavailable(f"{CYCLES_MODULE} has no CyclesRenderer")
    return module.CyclesRenderer


def check_available(split: str) -> None:
    """Raises RendererUnavailable now (not after sampling) when the split's RGB renderer is missing."""
    if split_rule(split).renderer in BLENDER_RENDERERS:
        _cycles_class()


def blender_renderer(engine: str, width: int, height: int):
    """This process's Blender renderer of this engine ("cycles" or "eevee") and size (a forked child makes its own)."""
    key = (os.getpid(), engine, width, height)
    if key not in _BLENDER:
        module = importlib.import_module(CYCLES_MODULE)
        unavailable = getattr(module, "CyclesUnavailable", RendererUnavailable)
        try:
            _BLENDER[key] = _cycles_class()(width, height, engine=engine)
        except unavailable as err:  # e.g. its Blender environment could not be set up
            raise RendererUnavailable(f"the Blender {engine} renderer could not start: {err}") from err
    return _BLENDER[key]


def release_all() -> None:
    for key in [k for k in _BLENDER if k[0] == os.getpid()]:
        _BLENDER.pop(key).release()
