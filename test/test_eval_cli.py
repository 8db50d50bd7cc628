"""igllm-eval: the table, metrics.json with every metric, the grid PNG, clear errors."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from igllm_ros import metrics as scene_metrics
from igllm_ros.model import build, tiny_test_config
from igllm_ros.model.evaluate import TABLE_ROWS, evaluate_model, main, rank_scenes, run_evaluation
from igllm_ros.program import format_program
from igllm_ros.reconstruction import Reconstruction

ROOT = Path(__file__).resolve().parents[1]
SIZE = tuple(tiny_test_config().input_size)


@pytest.fixture(scope="module")
def val_data(tmp_path_factory):
    from igllm_ros.data.writer import generate

    return generate(tmp_path_factory.mktemp("data"), "val_id", 6, seed=0, width=SIZE[0], height=SIZE[1], progress=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "igllm-test"
    build(tiny_test_config()).save(path, card={"note": "random weights, for tests"})
    return path


def test_eval_writes_table_metrics_and_grid(tmp_path, val_data, model_dir, capsys):
    out = tmp_path / "eval"
    assert main(["--model", str(model_dir), "--data", str(val_data), "--out", str(out), "--grid", "2", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for _, label, _ in TABLE_ROWS:
        assert label in printed
    report = json.loads((out / "metrics.json").read_text())
    expected_keys = set(scene_metrics.evaluate([]).keys())
    assert expected_keys <= set(report["metrics"])
    assert report["metrics"]["scenes"] == 6 and report["data"]["count"] == 6
    assert report["metrics"]["steps_per_scene"] > 0 and report["metrics"]["seconds_per_scene"] > 0
    assert len(report["per_scene"]) == 6
    grid = Image.open(out / "grid.png")
    assert grid.width > 400 and grid.height > 200
    assert np.asarray(grid.convert("L")).std() > 5  # pictures, not a blank page


def test_eval_count_and_generator_data(tmp_path, model_dir, capsys):
    out = tmp_path / "gen"
    assert main(["--model", str(model_dir), "--data", "generator:val_cogent_b", "--count", "3", "--out", str(out), "--grid", "0"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["metrics"]["scenes"] == 3 and report["data"]["split"] == "val_cogent_b"
    assert report["data"]["size"] == list(SIZE)  # rendered at the model's input size
    assert not (out / "grid.png").exists()


@pytest.mark.parametrize(
    "model_arg, data_arg, message",
    [
        ("{tmp}/no-such-model", "{data}", "does not exist"),
        ("{bad}", "{data}", "cannot load model"),
        ("{model}", "{tmp}/no-such-data", "cannot read data"),
        ("{model}", "generator:val_nowhere", "cannot read data"),
    ],
)
def test_eval_errors_are_clear(tmp_path, val_data, model_dir, capsys, model_arg, data_arg, message):
    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    fill = dict(tmp=tmp_path, data=val_data, model=model_dir, bad=bad)
    assert main(["--model", model_arg.format(**fill), "--data", data_arg.format(**fill), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("igllm-eval: error:") and message in err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_bad_model_path_exits_nonzero_from_the_command_line(tmp_path, val_data):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "igllm_ros.model.evaluate", "--model", str(tmp_path / "missing"), "--data", str(val_data)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


class GroundTruthLookup:
    """A reconstructor that knows the answers (keyed by image bytes), optionally shifted:
    it pins down what evaluate_model computes from perfect and from known-bad outputs."""

    name = "ground-truth"
    input_size = SIZE

    def __init__(self, samples, shift_m=0.0, drop_last_object_of=()):
        self.answers = {s.image.tobytes(): s.scene for s in samples}
        self.shift, self.drop = shift_m, {samples[i].image.tobytes() for i in drop_last_object_of}

    def reconstruct(self, images, max_objects=10):
        results = []
        for image in images:
            scene = self.answers[image.tobytes()]
            objects = [replace(o, loc=(o.loc[0] + self.shift, o.loc[1], o.loc[2])) for o in scene.objects]
            if image.tobytes() in self.drop:
                objects = objects[:-1]
            scene = scene.with_objects(objects)
            results.append(Reconstruction(scene=scene, program=format_program(scene), steps=1))
        return results


def test_evaluate_model_scores_perfect_and_flawed_reconstructions(val_data):
    from igllm_ros.data.dataset import SceneDataset

    dataset = SceneDataset(val_data)
    samples = [dataset[i] for i in range(len(dataset))]
    perfect = evaluate_model(GroundTruthLookup(samples), samples, batch_size=4)
    assert perfect["scenes"] == 6 and perfect["count_exact"] == 1.0 and perfect["location_error_m"] == 0.0
    assert all(perfect[f"acc_{a}"] == 1.0 for a in ("shape", "color", "material", "size"))
    assert all(perfect[scene_metrics.ap_key(t)] == pytest.approx(1.0) for t in scene_metrics.AP_THRESHOLDS_M)
    shifted = evaluate_model(GroundTruthLookup(samples, shift_m=0.02), samples, batch_size=4)
    assert shifted["location_error_m"] == pytest.approx(0.02)
    assert shifted["ap_0.025m"] == pytest.approx(1.0) and shifted["ap_0.0125m"] == 0.0
    flawed = run_evaluation(GroundTruthLookup(samples, drop_last_object_of=(2,)), samples, batch_size=4)
    assert flawed.metrics["count_exact"] == pytest.approx(5 / 6)
    assert rank_scenes(flawed.per_scene)[0]["index"] == 2  # the worst scene comes first
