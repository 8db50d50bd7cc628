"""Checkpoints: save/load gives identical outputs; every kind of broken directory gets a
clear ModelLoadError; baseline directories load through the same registry (model_kinds)."""
import json

import numpy as np
import pytest
import torch

from igllm_ros import model as igllm
from igllm_ros import model_kinds


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = igllm.build(igllm.tiny_test_config().replace(value_feedback=True)).eval()
    with torch.no_grad():
        for p in model.llm.parameters():
            p.normal_(0.0, 0.5)
    directory = tmp_path_factory.mktemp("ckpt") / "igllm-test"
    model.save(directory, card={"train_data": "4 scenes", "val_metrics": {"count_exact": 1.0, "bad": float("nan")}})
    return model, directory


def images(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(count)]


def test_save_writes_a_self_contained_directory(saved):
    _, directory = saved
    assert {p.name for p in directory.iterdir()} == {"config.json", "model.safetensors", "vocab.json", "card.md", "card.json"}
    config = json.loads((directory / "config.json").read_text())
    assert config["kind"] == "igllm" and config["value_feedback"] is True
    card = json.loads((directory / "card.json").read_text())
    assert card["train_data"] == "4 scenes" and card["val_metrics"]["bad"] is None and card["parameters"] > 0
    assert "float with value feedback" in (directory / "card.md").read_text()


def test_load_gives_identical_outputs(saved):
    model, directory = saved
    loaded = igllm.load(directory)
    assert isinstance(loaded, igllm.IGLLM) and not loaded.training
    assert loaded.config == model.config and loaded.input_size == model.input_size
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    batch = images(4)
    before, after = model.reconstruct(batch), loaded.reconstruct(batch)
    assert [r.program for r in before] == [r.program for r in after]
    for a, b in zip(before, after):
        assert [o.attribute_confidence for o in a.scene.objects] == [o.attribute_confidence for o in b.scene.objects]


def test_load_to_bfloat16_runs(saved):
    _, directory = saved
    loaded = igllm.load(directory, dtype=torch.bfloat16)
    assert loaded.dtype == torch.bfloat16
    assert len(loaded.reconstruct(images(2))) == 2


def _copy(directory, tmp_path):
    target = tmp_path / "copy"
    target.mkdir(parents=True)
    for p in directory.iterdir():
        (target / p.name).write_bytes(p.read_bytes())
    return target


def test_missing_directory_and_files(saved, tmp_path):
    _, directory = saved
    with pytest.raises(igllm.ModelLoadError, match="does not exist"):
        igllm.load(tmp_path / "nowhere")
    for name in ("config.json", "model.safetensors", "vocab.json"):
        copy = _copy(directory, tmp_path / name)
        (copy / name).unlink()
        with pytest.raises(igllm.ModelLoadError, match=f"no {name}"):
            igllm.load(copy)


def test_corrupt_config(saved, tmp_path):
    _, directory = saved
    copy = _copy(directory, tmp_path)
    (copy / "config.json").write_text("{not json")
    with pytest.raises(igllm.ModelLoadError, match="not readable JSON"):
        igllm.load(copy)
    (copy / "config.json").write_text(json.dumps({"kind": "resnet"}))
    with pytest.raises(igllm.ModelLoadError, match="kind 'resnet'"):
        igllm.load(copy)
    config = json.loads((directory / "config.json").read_text())
    config["numbers"] = "int"
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(igllm.ModelLoadError, match="not a valid IG-LLM config.*numbers"):
        igllm.load(copy)


def test_corrupt_weights(saved, tmp_path):
    _, directory = saved
    copy = _copy(directory, tmp_path)
    data = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(igllm.ModelLoadError, match="not a readable safetensors file"):
        igllm.load(copy)
    (copy / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(igllm.ModelLoadError, match="not a readable safetensors file"):
        igllm.load(copy)


def test_weights_that_do_not_fit_the_config(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    _, directory = saved
    copy = _copy(directory, tmp_path)
    state = load_file(str(directory / "model.safetensors"))
    name = next(k for k in state if k.startswith("projector"))
    wrong = dict(state)
    wrong[name] = torch.zeros(3, 3)
    save_file(wrong, str(copy / "model.safetensors"))
    with pytest.raises(igllm.ModelLoadError, match=rf"{name}: file \(3, 3\)"):
        igllm.load(copy)
    missing = {k: v for k, v in state.items() if k != name}
    save_file(missing, str(copy / "model.safetensors"))
    with pytest.raises(igllm.ModelLoadError, match="missing tensors"):
        igllm.load(copy)
    save_file({**state, "extra.weight": torch.zeros(1)}, str(copy / "model.safetensors"))
    with pytest.raises(igllm.ModelLoadError, match="unexpected tensors.*extra.weight"):
        igllm.load(copy)
    # A config whose LLM is wider than the weights it sits beside.
    save_file(state, str(copy / "model.safetensors"))
    config = json.loads((directory / "config.json").read_text())
    config["hf_llm_config"]["hidden_size"] = 96
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(igllm.ModelLoadError, match="does not match"):
        igllm.load(copy)


def test_baseline_directories_load_through_the_same_entry_point(tmp_path):
    from igllm_ros import baseline

    model = baseline.build({"input_size": [64, 48], "backbone_channels": [8, 16], "d_model": 32, "heads": 2,
                            "attention_sigmas": [0.1, 0.0], "encoder_layers": 1, "decoder_layers": 1, "ffn_dim": 64})
    model.save(tmp_path / "b")
    loaded = model_kinds.load(tmp_path / "b")
    assert type(loaded).__name__ == "DETRBaseline" and len(loaded.reconstruct(images(1))) == 1
    assert isinstance(loaded, model_kinds.Reconstructor)
    with pytest.raises(model_kinds.ModelLoadError, match="kind 'detr_baseline'"):
        igllm.load(tmp_path / "b")  # IG-LLM's own loader reads only its kind


def test_the_registry_loads_igllm_directories_and_names_unknown_kinds(saved, tmp_path):
    model, directory = saved
    loaded = model_kinds.load(directory)
    assert type(loaded) is type(model) and isinstance(loaded, model_kinds.Reconstructor)
    assert [r.program for r in loaded.reconstruct(images(2))] == [r.program for r in model.reconstruct(images(2))]
    copy = _copy(directory, tmp_path)
    (copy / "config.json").write_text(json.dumps({"kind": "resnet"}))
    with pytest.raises(model_kinds.ModelLoadError, match="kind 'resnet'; expected one of igllm, detr_baseline"):
        model_kinds.load(copy)
