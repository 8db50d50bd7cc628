"""Training state (what resuming needs) in a checkpoint: safetensors + JSON, no pickle,
swapped in atomically.

`<out>/checkpoint/` is a loadable model directory (model.save: config, weights, card) with
a `trainer/` folder beside the model files holding what resuming needs:
- weights.safetensors: the trainable parameters and persistent buffers exactly as
  trained (LoRA adapters unmerged); frozen weights are rebuilt from the preset;
- optimizer.safetensors + state.json: AdamW moments and param groups;
- rng.safetensors + state.json: torch (CPU, CUDA), numpy and Python RNG states;
- state.json: step, samples seen, wall time so far, the preset.
A checkpoint is written to `checkpoint.tmp/` and renamed into place, so an interruption
leaves either the old or the new checkpoint, never half of one.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 1
TRAINER_DIR = "trainer"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not fit the model; the message says why."""


def save_checkpoint(directory: Path, model, optimizer, state: dict, card: dict | None = None) -> None:
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp, card=card)
    trainer = tmp / TRAINER_DIR
    trainer.mkdir()
    save_file(trainable_state(model), trainer / "weights.safetensors")
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    opt_meta["param_names"] = _group_names(model, optimizer)
    save_file(opt_tensors, trainer / "optimizer.safetensors")
    rng_tensors, rng_meta = capture_rng()
    save_file(rng_tensors, trainer / "rng.safetensors")
    document = {"format": FORMAT_VERSION, "state": state, "optimizer": opt_meta, "rng": rng_meta}
    (trainer / "state.json").write_text(json.dumps(document, indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory: Path) -> Path | None:
    """The checkpoint to resume from: `directory`, or its `.old` twin when an interruption
    fell between the two renames of save_checkpoint."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / TRAINER_DIR / "state.json").is_file():
            return candidate
    return None


def read_state(directory: Path) -> dict:
    """The checkpoint's `state` (step, samples seen, wall time, preset) without loading it."""
    return _read_document(Path(directory) / TRAINER_DIR)["state"]


def _read_document(trainer: Path) -> dict:
    try:
        document = json.loads((trainer / "state.json").read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {trainer / 'state.json'}: {err}") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        found = document.get("format") if isinstance(document, dict) else None
        raise CheckpointError(f"{trainer}: checkpoint format {found}, expected {FORMAT_VERSION}")
    return document


def load_checkpoint(directory: Path, model, optimizer) -> dict:
    """Restore weights, optimizer and RNG from a checkpoint; returns its `state`."""
    trainer = Path(directory) / TRAINER_DIR
    document = _read_document(trainer)
    weights = _load_tensors(trainer / "weights.safetensors")
    current = model.state_dict()
    expected = set(trainable_state(model))
    reshaped = sorted(k for k in expected & set(weights) if tuple(weights[k].shape) != tuple(current[k].shape))
    if set(weights) != expected or reshaped:
        missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise CheckpointError(
            f"{trainer}: checkpoint does not fit the model built from the preset "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, other shapes {reshaped[:5]}); was the preset changed?"
        )
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise CheckpointError(f"{trainer}: unexpected weights {result.unexpected_keys[:5]}")
    opt_meta = document["optimizer"]
    if opt_meta.get("param_names") != _group_names(model, optimizer):
        raise CheckpointError(f"{trainer}: optimizer parameter groups differ from the model's; was the preset changed?")
    try:
        optimizer.load_state_dict(_unflatten_optimizer(_load_tensors(trainer / "optimizer.safetensors"), opt_meta))
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{trainer}: optimizer state does not fit: {err}") from err
    restore_rng(_load_tensors(trainer / "rng.safetensors"), document["rng"])
    return document["state"]


def trainable_state(model) -> dict[str, torch.Tensor]:
    """Trainable parameters + persistent buffers, as independent contiguous CPU tensors."""
    params = dict(model.named_parameters())
    all_param_names = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    result = {name: p for name, p in params.items() if p.requires_grad}
    for name, value in model.state_dict().items():
        if name not in all_param_names and isinstance(value, torch.Tensor):
            result[name] = value
    return {name: t.detach().to("cpu", copy=True).contiguous() for name, t in result.items()}


def capture_rng() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, python_state, gauss_next = random.getstate()
    meta = {
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [version, list(python_state), gauss_next],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = sorted(k for k in tensors if k.startswith("torch_cuda_"))
    if cuda and torch.cuda.is_available():
        states = [tensors[k] for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, python_state, gauss_next = meta["python"]
    random.setstate((version, tuple(python_state), gauss_next))


def _group_names(model, optimizer) -> list[list[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [[names.get(id(p), "?") for p in group["params"]] for group in optimizer.param_groups]


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, values = {}, {}
    for index, entry in state_dict["state"].items():
        plain = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                plain[key] = value
        values[str(index)] = plain
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state_dict["param_groups"]]
    return tensors, {"values": values, "param_groups": groups}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {int(i): dict(plain) for i, plain in meta["values"].items()}
    for name, tensor in tensors.items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = tensor
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint file missing: {path}") from err
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"checkpoint file {path} is corrupt or unreadable: {err}") from err
