"""igllm-train end to end on tiny rendered datasets: outputs, learning, exact resume."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from igllm_ros.model import load, tiny_test_config
from igllm_ros.model.train import main
from igllm_ros.model.training.log import read_log

ROOT = Path(__file__).resolve().parents[1]
SIZE = tuple(tiny_test_config().input_size)  # render at what the test model reads


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from igllm_ros.data.writer import generate

    root = tmp_path_factory.mktemp("data")
    generate(root, "train", 16, seed=0, width=SIZE[0], height=SIZE[1], progress=False)
    generate(root, "val_id", 4, seed=0, width=SIZE[0], height=SIZE[1], progress=False)
    return root


def write_preset(path: Path, data: Path, **train) -> Path:
    preset = {
        "model": tiny_test_config().to_dict(),
        "data": {"train": str(data / "train"), "val": {"path": str(data / "val_id"), "count": 4}},
        "train": {
            "steps": 40, "batch_size": 4, "lr": 2e-3, "head_lr": 4e-3, "warmup_steps": 4,
            "log_interval": 4, "eval_interval": 20, "checkpoint_interval": 10,
            "workers": 0, "device": "cpu", "threads": 1, **train,
        },
    }
    path.write_text(yaml.safe_dump(preset))
    return path


def test_short_run_writes_every_output_and_learns(tmp_path, data, capsys):
    preset = write_preset(tmp_path / "tiny-test.yaml", data)
    out = tmp_path / "run"
    assert main(["--config", str(preset), "--out", str(out), "--no-progress"]) == 0
    for name in ("log.jsonl", "curves.png", "checkpoint/model.safetensors", "checkpoint/trainer/state.json",
                 "checkpoint/trainer/optimizer.safetensors", "checkpoint/trainer/rng.safetensors",
                 "final/config.json", "final/model.safetensors", "final/card.json"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = read_log(out / "log.jsonl")
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val" in r]
    assert [r["step"] for r in train] == list(range(4, 41, 4))
    assert [r["step"] for r in val] == [20, 40]
    for r in train:
        assert {"ce", "lr", "samples_per_s", "samples_seen", "elapsed_s"} <= set(r) and r["samples_per_s"] > 0
    assert train[-1]["samples_seen"] == 40 * 4
    assert sum(r["loss"] for r in train[-2:]) < 0.7 * sum(r["loss"] for r in train[:2])  # it learns
    assert {"count_exact", "location_error_m", "acc_color", "ap_inf"} <= set(val[-1]["val"])
    card = json.loads((out / "final" / "card.json").read_text())
    assert card["steps"] == 40 and card["samples_seen"] == 160 and card["preset"] == "tiny-test"
    assert card["val_metrics"]["scenes"] == 4 and card["train_data"] == str(data / "train")
    model = load(out / "final")
    images = [load_val_image(data)]
    assert model.reconstruct(images)[0].program.startswith("camera(")
    assert "val @ 40" in capsys.readouterr().out


def load_val_image(data: Path):
    from igllm_ros.data.dataset import SceneDataset

    return SceneDataset(data / "val_id")[0].image


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, data):
    # Augmentation on: collate draws from the RNGs the checkpoint restores.
    preset = write_preset(tmp_path / "p.yaml", data, steps=12, eval_interval=0, checkpoint_interval=5, augment=True)
    preset_args = ["--config", str(preset), "--no-progress", "--set", "data.val=null"]
    assert main(preset_args + ["--out", str(tmp_path / "whole")]) == 0
    assert main(preset_args + ["--out", str(tmp_path / "split"), "--stop-at", "7"]) == 0
    assert not (tmp_path / "split" / "final").exists()
    assert json.loads((tmp_path / "split/checkpoint/trainer/state.json").read_text())["state"]["step"] == 7
    assert main(preset_args + ["--out", str(tmp_path / "split"), "--resume"]) == 0
    whole = load_file(str(tmp_path / "whole/final/model.safetensors"))
    split = load_file(str(tmp_path / "split/final/model.safetensors"))
    assert whole.keys() == split.keys()
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    losses = lambda run: [r["loss"] for r in read_log(tmp_path / run / "log.jsonl") if r["step"] % 4 == 0]  # noqa: E731
    assert losses("whole") == losses("split")
    # The optimizer's moments went on too, not only the weights.
    a = load_file(str(tmp_path / "whole/checkpoint/trainer/optimizer.safetensors"))
    b = load_file(str(tmp_path / "split/checkpoint/trainer/optimizer.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_refuses_to_overwrite_a_run_and_reports_bad_presets(tmp_path, data, capsys):
    preset = write_preset(tmp_path / "p.yaml", data, steps=2, eval_interval=0)
    args = ["--config", str(preset), "--out", str(tmp_path / "run"), "--no-progress", "--set", "data.val=null"]
    assert main(args) == 0
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0  # already finished: nothing to do, no error
    assert main(["--config", str(preset), "--out", str(tmp_path / "r2"), "--set", "train.lr=fast"]) == 2
    assert "train.lr" in capsys.readouterr().err
    assert main(["--config", str(preset), "--out", str(tmp_path / "r3"), "--set", "data.train=" + str(tmp_path / "nothing")]) == 2
    assert "training data" in capsys.readouterr().err
    assert main(["--config", str(preset), "--out", str(tmp_path / "r4"), "--set", "model.numbers=octal"]) == 2
    assert "model.numbers" in capsys.readouterr().err


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path, data, capsys):
    preset = write_preset(tmp_path / "p.yaml", data, steps=4, eval_interval=0)
    args = ["--config", str(preset), "--out", str(tmp_path / "run"), "--no-progress", "--set", "data.val=null"]
    assert main(args + ["--stop-at", "2"]) == 0
    assert main(args + ["--resume", "--set", "model.llm.hidden=32"]) == 2
    assert "does not fit" in capsys.readouterr().err


@pytest.mark.slow
def test_generator_training_in_worker_processes_and_resume(tmp_path, data):
    """On-the-fly rendering in two DataLoader workers (the GPU-box setup), in a fresh
    process as igllm-train runs; then a resume continues the stream."""
    preset = write_preset(tmp_path / "p.yaml", data, steps=4, eval_interval=0, checkpoint_interval=0, workers=2)
    out = tmp_path / "run"
    base = [sys.executable, "-m", "igllm_ros.model.train", "--config", str(preset), "--out", str(out), "--no-progress",
            "--set", "data.train=generator:train", "--set", "data.val={split: val_id, count: 2}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    first = subprocess.run(base + ["--stop-at", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    second = subprocess.run(base + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    records = read_log(out / "log.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [2, 4]
    assert records[-1]["val"]["scenes"] == 2
    assert (out / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_ctrl_c_stops_after_the_step_with_a_checkpoint(tmp_path, data):
    """Ctrl-C in a terminal signals the whole process group (the loader's workers too)."""
    import signal
    import time

    preset = write_preset(tmp_path / "p.yaml", data, steps=100000, eval_interval=0, checkpoint_interval=0, workers=1, log_interval=1)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "igllm_ros.model.train", "--config", str(preset), "--out", str(out), "--no-progress",
         "--set", "data.val=null"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(read_log(out / "log.jsonl")) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    assert "stop requested" in stderr
    step = json.loads((out / "checkpoint/trainer/state.json").read_text())["state"]["step"]
    assert step >= 3 and step == read_log(out / "log.jsonl")[-1]["step"]
    assert not (out / "final").exists()
