"""bench/bench_domain_loss.py: the training objective on a split's images, no gradient.
Real shipped model, real rendered scenes."""
import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("bench_domain_loss")


@pytest.fixture(scope="module")
def setting(bench):
    from igllm_ros import model_kinds
    from igllm_ros.reconstruction import DEFAULT_MODEL

    model = model_kinds.load(ROOT / DEFAULT_MODEL, device="cpu", dtype=torch.float32)
    samples, _ = bench.split_samples("val_id", seed=1000, count=6, data=None)
    return model, samples


def test_it_is_the_training_loss_of_the_same_batch(bench, setting):
    model, samples = setting
    measured = bench.domain_loss(model, samples, batch_size=len(samples))
    with torch.no_grad():
        _, logs = model.training_loss(model.collate(samples, augment=False))
    assert measured["loss"] == pytest.approx(logs["loss"]) and measured["ce"] == pytest.approx(logs["ce"])
    vocabulary = model.llm.get_output_embeddings().weight.shape[0]
    assert 0 < measured["ce"] < 0.1 * math.log(vocabulary)  # far better than a uniform guess


def test_images_under_someone_elses_programs_cost_far_more(bench, setting):
    """The figure measures how well image and program agree, not the programs alone."""
    model, samples = setting
    swapped = [dataclasses.replace(s, scene=samples[(i + 1) % len(samples)].scene) for i, s in enumerate(samples)]
    own = bench.domain_loss(model, samples, batch_size=3)["loss"]
    assert bench.domain_loss(model, swapped, batch_size=3)["loss"] > 3 * own


def test_end_to_end_writes_every_split_and_model(bench, tmp_path, capsys):
    assert bench.main(["--count", "2", "--splits", "val_id", "val_param", "--models", "default",
                       "--batch-size", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "results.json").read_text())
    assert set(report["results"]) == {"val_id", "val_param"}
    assert all(math.isfinite(report["results"][s]["default"]["loss"]) for s in report["results"])
    assert "val_param" in capsys.readouterr().out
