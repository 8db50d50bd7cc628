"""bench/bench_accuracy.py: budgets read from the shipped cards, one real end-to-end run."""
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_accuracy", ROOT / "bench" / "bench_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_budgets_come_from_the_shipped_cards(bench):
    default = bench.Budget.read(ROOT / "models/igllm-tiny-float")  # card.json
    assert (default.steps, default.total_steps, default.batch_size, default.samples_seen) == (3200, 3600, 128, 409600)
    baseline = bench.Budget.read(ROOT / "models/compare/detr-baseline")  # card.md only
    assert (baseline.steps, baseline.total_steps, baseline.batch_size, baseline.samples_seen) == (1990, 2392, 64, 127360)
    assert "1990 of 2392 planned steps x batch 64 = 127k scenes" in baseline.describe()
    char = bench.Budget.read(ROOT / "models/compare/igllm-tiny-char")
    assert char.describe().startswith("2392 steps x batch 64 = 153k scenes")


def test_unknown_model_is_a_clear_error(bench, tmp_path):
    with pytest.raises(SystemExit, match="neither one of"):
        bench.main(["--models", str(tmp_path / "nowhere"), "--out", str(tmp_path)])


def test_end_to_end_on_rendered_scenes(bench, tmp_path, capsys):
    markdown = tmp_path / "table.md"
    assert bench.main(["--count", "3", "--splits", "val_id", "val_param", "--models", "baseline",
                       "--out", str(tmp_path), "--markdown", str(markdown)]) == 0
    report = json.loads((tmp_path / "results.json").read_text())
    assert set(report["results"]) == {"val_id", "val_param"}
    for split in ("val_id", "val_param"):
        metrics = report["results"][split]["baseline"]
        assert metrics["scenes"] == 3
        assert 0.0 <= metrics["ap_inf"] <= 1.0 and metrics["seconds_per_scene"] > 0
    assert report["models"]["baseline"]["budget"]["steps"] == 1990
    table = markdown.read_text()
    assert "| val_param | DETR baseline |" in table and "1990 of 2392 planned steps" in table
    assert re.search(r"^val_id +DETR baseline +\d", capsys.readouterr().out, re.MULTILINE)
