"""Training presets: YAML files with `model:`, `data:` and `train:` sections.

A preset may name a `base:` preset (a path relative to itself) that it extends, and may
use dotted keys (`model.numbers: char`), the same form as `igllm-train --set`. The
`train:` section is checked against TRAIN_DEFAULTS (unknown keys are errors, values are
coerced to the default's type, so `lr: 3e-4`, which YAML reads as a string, works).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from igllm_ros import model_kinds
from igllm_ros.model.samples import DataSpec

TRAIN_DEFAULTS = {
    "seed": 0,
    "steps": 20000,
    "batch_size": 32,
    "grad_accum": 1,  # micro-batches per optimizer step
    "lr": 3e-4,
    "head_lr": 1e-3,  # numeric head / value embedding (IG-LLM float mode), the baseline's heads
    "tower_lr": 0.0,  # a trainable vision tower's peak lr (IG-LLM); 0: the same as lr
    "weight_decay": 0.01,
    "warmup_steps": 500,
    "min_lr_ratio": 0.0,  # the cosine ends at lr * min_lr_ratio
    "grad_clip": 1.0,  # max global grad norm; 0 disables
    "augment": True,  # model.collate(..., augment=True): the paper's text augmentation
    "log_interval": 10,
    "eval_interval": 1000,  # 0: validate only at the end
    "checkpoint_interval": 500,
    "workers": 2,  # DataLoader worker processes (0: load in the training process)
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "bf16": True,  # bf16 autocast, on CUDA only
    "threads": 0,  # torch.set_num_threads on CPU; 0 leaves torch's default
    "val_batch_size": 16,
    "max_objects": 10,  # reconstruct(..., max_objects) during validation
}

_SECTIONS = ("model", "data", "train")


class PresetError(ValueError):
    """A preset or an override is malformed; the message says where."""


@dataclass
class Preset:
    name: str  # the preset file's stem, e.g. "tiny"
    model: dict  # passed to igllm_ros.model_kinds.build (model.kind selects the kind)
    train: dict  # TRAIN_DEFAULTS filled in and type-checked
    train_data: DataSpec
    val_data: DataSpec | None
    raw: dict  # the merged YAML (after base + overrides), recorded in the card

    @property
    def kind(self) -> str:
        return model_kinds.kind_of(self.model)


def load_preset(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Preset:
    """Read a preset file, apply `key.path=value` overrides, validate."""
    path = Path(path)
    raw = _read_with_base(path, seen=())
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PresetError(f"override {item!r}: expected KEY.PATH=VALUE, e.g. train.steps=2000")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as err:
            raise PresetError(f"override {item!r}: value is not valid YAML: {err}") from err
        set_dotted(raw, key.strip(), parsed)
    return preset_from_dict(raw, name=path.stem)


def preset_from_dict(raw: dict, name: str = "preset") -> Preset:
    raw = copy.deepcopy(raw)
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        raise PresetError(f"preset {name}: unknown top-level keys {sorted(unknown)}; expected {list(_SECTIONS)}")
    model = raw.get("model") or {}
    if not isinstance(model, dict):
        raise PresetError(f"preset {name}: `model:` must be a mapping")
    try:
        model_kinds.kind_of(model)
    except ValueError as err:
        raise PresetError(f"preset {name}: {err}") from err
    train = _check_train(raw.get("train") or {}, name)
    data = raw.get("data") or {}
    if not isinstance(data, dict) or "train" not in data:
        raise PresetError(f"preset {name}: `data.train` is required (a dataset directory or generator:SPLIT)")
    unknown = set(data) - {"train", "val"}
    if unknown:
        raise PresetError(f"preset {name}: unknown keys in data: {sorted(unknown)}; expected train, val")
    try:
        train_data = DataSpec.parse(data["train"])
        val_data = DataSpec.parse(data["val"]) if data.get("val") else None
    except ValueError as err:
        raise PresetError(f"preset {name}: data: {err}") from err
    return Preset(name=name, model=model, train=train, train_data=train_data, val_data=val_data, raw=raw)


def set_dotted(tree: dict, key: str, value) -> None:
    """tree["a"]["b"] = value for key "a.b", creating mappings on the way."""
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise PresetError(f"{key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _read_with_base(path: Path, seen: tuple) -> dict:
    if path in seen:
        raise PresetError(f"preset {path}: `base:` chain loops back to itself")
    try:
        text = path.read_text()
    except OSError as err:
        raise PresetError(f"cannot read preset {path}: {err.strerror or err}") from err
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise PresetError(f"preset {path} is not valid YAML: {err}") from err
    if not isinstance(loaded, dict):
        raise PresetError(f"preset {path}: expected a mapping at the top level")
    base = loaded.pop("base", None)
    tree = _read_with_base(path.parent / base, seen + (path,)) if base else {}
    # Nested sections merge into the base; dotted keys apply after them, like --set.
    dotted = {k: v for k, v in loaded.items() if "." in str(k)}
    for key, value in loaded.items():
        if key not in dotted:
            _merge(tree, {key: value})
    for key, value in dotted.items():
        set_dotted(tree, key, value)
    return tree


def _merge(into: dict, other: dict) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _check_train(section: dict, name: str) -> dict:
    if not isinstance(section, dict):
        raise PresetError(f"preset {name}: `train:` must be a mapping")
    unknown = set(section) - set(TRAIN_DEFAULTS)
    if unknown:
        raise PresetError(f"preset {name}: unknown keys in train: {sorted(unknown)}; known: {sorted(TRAIN_DEFAULTS)}")
    result = dict(TRAIN_DEFAULTS)
    for key, value in section.items():
        default = TRAIN_DEFAULTS[key]
        try:
            result[key] = _coerce(value, type(default))
        except (TypeError, ValueError):
            raise PresetError(
                f"preset {name}: train.{key} = {value!r} is not a {type(default).__name__}"
            ) from None
    for key in ("steps", "batch_size", "grad_accum"):
        if result[key] < 1:
            raise PresetError(f"preset {name}: train.{key} must be >= 1, got {result[key]}")
    for key in ("warmup_steps", "workers", "eval_interval", "checkpoint_interval", "threads"):
        if result[key] < 0:
            raise PresetError(f"preset {name}: train.{key} must be >= 0, got {result[key]}")
    if result["log_interval"] < 1:
        raise PresetError(f"preset {name}: train.log_interval must be >= 1")
    return result


def _coerce(value, kind: type):
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(float(value)) if isinstance(value, str) else int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if not isinstance(value, kind):
        raise TypeError(value)
    return value
