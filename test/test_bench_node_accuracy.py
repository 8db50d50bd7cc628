"""bench/bench_node_accuracy.py: scoring, skipping, and one real run through igllm_node over DDS."""
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
from std_msgs.msg import Header  # noqa: E402

from igllm_ros.ros.conversions import scene_to_msg  # noqa: E402
from igllm_ros.scene import Camera, Scene, SceneObject  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRUTH = Scene(
    objects=(SceneObject("cube", "red", "metal", "large", (0.05, -0.02, 0.0248), 20.0, 0.9),
             SceneObject("sphere", "cyan", "rubber", "small", (-0.08, 0.06, 0.0175), 0.0, 0.8)),
    camera=Camera(loc=(0.39, -0.31, 0.28)),
)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_node_accuracy", ROOT / "bench" / "bench_node_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_score_counts_lost_frames_and_scores_the_answered(bench):
    msg = scene_to_msg(TRUTH, Header(frame_id="cam"), model="m")  # a perfect answer, through the message
    msg.latency_ms, msg.inference_time_ms, msg.preprocess_time_ms = 120.0, 100.0, 2.0
    frames = [(bench.FrameResult(msg, 1, 130.0), TRUTH), (bench.FrameResult(None, 3, math.nan), TRUTH)]
    result = bench.score(frames)
    assert (result["frames"], result["answered"], result["lost"], result["resent"]) == (2, 1, 1, 1)
    assert result["scenes"] == 1 and result["count_exact"] == 1.0 and result["location_error_m"] < 1e-6
    assert result["acc_color"] == 1.0 and result["yaw_error_deg"] < 1e-3
    assert result["latency_ms_p50"] == pytest.approx(120.0) and result["inference_ms_p50"] == pytest.approx(100.0)


def test_cycles_split_is_skipped_unless_asked(bench, tmp_path, capsys):
    assert bench.split_dataset(tmp_path, "val_cycles", 3, render_cycles=False, workers=1) is None
    assert "--render-cycles" in capsys.readouterr().out
    assert not (tmp_path / "val_cycles").exists()  # nothing rendered


def test_bad_model_directory_is_a_clear_error(bench, tmp_path, capsys):
    assert bench.main(["--models", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "is not a model directory" in capsys.readouterr().err


def test_default_models_are_the_shipped_default_and_the_previous_one_if_present(bench):
    from igllm_ros.reconstruction import DEFAULT_MODEL, PREVIOUS_MODEL

    models = bench.default_models()
    assert models[0] == DEFAULT_MODEL == "models/igllm-lite0-cycles2"
    assert models[1:] == ([PREVIOUS_MODEL] if (ROOT / PREVIOUS_MODEL).is_dir() else [])
    assert bench.model_label(ROOT / "models/compare/igllm-tiny-float") == "compare/igllm-tiny-float"


@pytest.mark.ros
def test_end_to_end_through_the_node_over_dds(bench, tmp_path, capsys):
    """The shipped default, 3 freshly rendered val_id images, sent as an outside client."""
    markdown = tmp_path / "table.md"
    out = tmp_path / "out"
    assert bench.main(["--models", "models/igllm-tiny-float", "--splits", "val_id", "--count", "3",
                       "--data", str(tmp_path / "data"), "--out", str(out), "--markdown", str(markdown),
                       "--startup-timeout", "120"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert set(report) >= {"command", "data", "skipped", "node", "models", "results"}
    assert report["node"]["device"] == "cpu" and report["node"]["torch_threads"] == 1
    assert report["data"]["val_id"]["used"] == 3 and report["models"]["igllm-tiny-float"]["budget"]["steps"] == 3200
    result = report["results"]["val_id"]["igllm-tiny-float"]
    assert (result["frames"], result["answered"], result["lost"]) == (3, 3, 0), "every frame answered"
    assert result["scenes"] == 3 and result["node_model"] == "igllm-tiny-float"
    assert 0.0 <= result["count_exact"] <= 1.0
    assert 0.0 < result["location_error_m"] < 0.2  # metres: the shipped model is within centimetres
    for key in ("acc_shape", "acc_color", "acc_material", "acc_size", "ap_0.0125m"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["yaw_error_deg"] is None or 0.0 <= result["yaw_error_deg"] <= 45.0  # None: no true cube
    assert 0.0 < result["inference_ms_p50"] <= result["latency_ms_p50"] <= result["latency_ms_p95"]
    assert "| val_id | igllm-tiny-float |" in markdown.read_text()
    assert re.search(r"^val_id +igllm-tiny-float +\d", capsys.readouterr().out, re.MULTILINE)
    assert (out / "node_igllm-tiny-float.log").is_file()
