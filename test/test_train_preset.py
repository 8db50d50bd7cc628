"""Presets, overrides, data specs and the learning-rate schedule of igllm-train."""
from pathlib import Path

import pytest

from igllm_ros.model.samples import DataSpec
from igllm_ros.model.training.preset import TRAIN_DEFAULTS, PresetError, load_preset
from igllm_ros.model.training.schedule import lr_factor

PRESETS = Path(__file__).resolve().parents[1] / "config" / "train"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_shipped_presets_load_and_share_budgets():
    names = {p.stem for p in PRESETS.glob("*.yaml")}
    assert {"tiny", "tiny-char", "tiny-feedback", "smollm2", "paper"} <= names
    presets = {name: load_preset(PRESETS / f"{name}.yaml") for name in names}
    tiny = presets["tiny"]
    assert tiny.kind == "igllm" and tiny.model["numbers"] == "float"
    # The fair comparison: char and feedback variants differ from tiny only in the model's number handling.
    assert presets["tiny-char"].model["numbers"] == "char"
    assert presets["tiny-feedback"].model.get("value_feedback") is True
    for name in ("tiny-char", "tiny-feedback"):
        assert presets[name].train == tiny.train
        assert presets[name].train_data == tiny.train_data and presets[name].val_data == tiny.val_data
    assert presets["paper"].model["lora"]["r"] == 128 and presets["paper"].model["lora"]["alpha"] == 256
    if "baseline" in presets:  # written by the baseline's author; same budget as tiny
        assert presets["baseline"].kind == "detr_baseline"
    from igllm_ros.model import ModelConfig

    for name, preset in presets.items():  # every IG-LLM model section is a valid ModelConfig
        if preset.kind == "igllm":
            ModelConfig.from_dict(preset.model)


def test_overrides_coerce_types_and_reach_nested_keys(tmp_path):
    preset_file = write(tmp_path / "p.yaml", "model: {numbers: float}\ndata: {train: data/train}\ntrain: {lr: 3e-4}\n")
    preset = load_preset(preset_file, ["train.steps=77", "model.numbers=char", "model.vision.hidden=64", "train.bf16=false"])
    assert preset.train["steps"] == 77 and preset.train["bf16"] is False
    assert preset.train["lr"] == pytest.approx(3e-4)  # YAML reads 3e-4 as a string; coerced
    assert preset.model == {"numbers": "char", "vision": {"hidden": 64}}
    assert preset.train["batch_size"] == TRAIN_DEFAULTS["batch_size"]
    assert preset.name == "p"


def test_base_and_dotted_keys(tmp_path):
    write(tmp_path / "base.yaml", "model: {numbers: float, layers: 4}\ndata: {train: data/train, val: data/val_id}\ntrain: {steps: 10}\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\nmodel.numbers: char\ntrain: {batch_size: 4}\n")
    preset = load_preset(child)
    assert preset.model == {"numbers": "char", "layers": 4}
    assert preset.train["steps"] == 10 and preset.train["batch_size"] == 4
    assert preset.val_data == DataSpec("dataset", path="data/val_id")


@pytest.mark.parametrize(
    "text, override, message",
    [
        ("data: {train: d}\ntrain: {stepz: 3}\n", None, "unknown keys in train"),
        ("data: {train: d}\ntrain: {steps: many}\n", None, "train.steps"),
        ("data: {train: d}\ntrain: {steps: 0}\n", None, "must be >= 1"),
        ("train: {steps: 3}\n", None, "data.train"),
        ("data: {train: d}\nmodel: {kind: resnet}\n", None, "model.kind"),
        ("data: {train: d}\n", "train.steps", "KEY.PATH=VALUE"),
        ("data: {train: d}\n", "train.steps=[1, 2", "not valid YAML"),
        ("data: {train: {source: generator}}\n", None, "needs `split`"),
        ("data: [1, 2\n", None, "not valid YAML"),
    ],
)
def test_bad_presets_say_what_is_wrong(tmp_path, text, override, message):
    preset_file = write(tmp_path / "bad.yaml", text)
    with pytest.raises(PresetError, match=message):
        load_preset(preset_file, [override] if override else [])


def test_missing_preset_file(tmp_path):
    with pytest.raises(PresetError, match="cannot read preset"):
        load_preset(tmp_path / "nope.yaml")


def test_data_spec_forms():
    assert DataSpec.parse("generator:val_cogent_b") == DataSpec("generator", split="val_cogent_b")
    assert DataSpec.parse("data/val_id") == DataSpec("dataset", path="data/val_id")
    spec = DataSpec.parse({"split": "train", "seed": 3, "size": [160, 120], "count": 5})
    assert spec == DataSpec("generator", split="train", seed=3, size=(160, 120), count=5)
    assert DataSpec.parse(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="name a split"):
        DataSpec.parse("generator:")
    with pytest.raises(ValueError, match="size"):
        DataSpec.parse({"split": "train", "size": [160]})


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    total, warmup = 100, 10
    factors = [lr_factor(s, total, warmup, min_ratio=0.1) for s in range(total)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(factors[:10], factors[1:10]))
    assert all(b <= a for a, b in zip(factors[10:], factors[11:]))
    assert factors[55] == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert lr_factor(total, total, warmup, 0.1) == pytest.approx(0.1)
    assert lr_factor(0, 5, 0) == pytest.approx(1.0)
