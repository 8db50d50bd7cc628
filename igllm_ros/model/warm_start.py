"""Start a new model from another model's weights where they fit (`model.init_from`).

A new vision tower does not need a new decoder: the LLM of a trained model already writes
the scene language, counts and regresses numbers. Every tensor whose name and shape match
is copied from the source model directory (safetensors only); the rest keeps its fresh
initialisation (for example the new tower's projector input layer).
"""
from __future__ import annotations

from pathlib import Path

import torch

from igllm_ros.reconstruction import WEIGHTS_FILE


class WarmStartError(ValueError):
    """The source model of model.init_from cannot be read."""


def load_matching(model: torch.nn.Module, source_dir) -> tuple[list[str], list[str]]:
    """Copy matching tensors from `source_dir`; returns (copied names, names left fresh)."""
    from safetensors.torch import load_file

    path = Path(source_dir).expanduser() / WEIGHTS_FILE
    if not path.is_file():
        raise WarmStartError(f"model.init_from: {str(path)!r} does not exist (a model directory with {WEIGHTS_FILE})")
    source = load_file(str(path))
    own = model.state_dict()
    # The LM head is tied to the input embeddings: a checkpoint stores whichever came first.
    if "llm.lm_head.weight" in own and "llm.lm_head.weight" not in source and "llm.model.embed_tokens.weight" in source:
        source["llm.lm_head.weight"] = source["llm.model.embed_tokens.weight"]
    copied = [n for n, t in own.items() if n in source and source[n].shape == t.shape]
    with torch.no_grad():
        for name in copied:
            own[name].copy_(source[name].to(own[name].dtype))
    fresh = [n for n in own if n not in set(copied)]
    return copied, fresh
