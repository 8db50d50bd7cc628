"""The files of a model directory, shared by every kind (IG-LLM and the baseline): reading
and checking config.json, describing tensors that do not fit, writing the card.

The file names and ModelLoadError are part of the reconstructor contract
(igllm_ros.reconstruction); which kind loads a directory is igllm_ros.model_kinds' job.
"""
from __future__ import annotations

import json
from pathlib import Path

from igllm_ros.reconstruction import CONFIG_FILE, ModelLoadError


def read_config(directory: Path, kind: str | None = None) -> dict:
    """The JSON object in `directory`/config.json; with `kind`, it must be of that kind.
    Every problem is a ModelLoadError that names the directory or file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(f"model directory {str(directory)!r} does not exist")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelLoadError(f"model directory {str(directory)!r} has no {CONFIG_FILE}")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{str(path)!r} is not readable JSON: {err}") from err
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{str(path)!r} does not hold a JSON object")
    if kind is not None and raw.get("kind") != kind:
        raise ModelLoadError(f"{str(path)!r} has kind {raw.get('kind')!r}; this loader reads only kind {kind!r}")
    return raw


def card_markdown(header: list[str], card: dict) -> str:
    """A model card: the model's own header lines, then the training facts in `card`
    (nested dicts become sections)."""
    lines = list(header)
    for key, value in card.items():
        if isinstance(value, dict):
            lines += ["", f"## {key}", ""] + [f"- {k}: {v}" for k, v in value.items()]
        else:
            lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"


def state_mismatch(state: dict, expected: dict, missing: list[str]) -> str:
    """Why a checkpoint's tensors do not fit a model ('' when they do): the `missing` names
    (the caller knows which tied names may be absent), unexpected names, wrong shapes."""
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    parts = []
    if missing:
        parts.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        parts.append(f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    parts += [f"{k}: file {tuple(state[k].shape)} vs config {tuple(expected[k].shape)}" for k in wrong[:5]]
    return "; ".join(parts)
