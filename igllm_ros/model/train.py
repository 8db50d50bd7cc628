"""igllm-train: the one training loop for IG-LLM and the DETR-style baseline.

    igllm-train --config config/train/tiny.yaml --out runs/tiny [--set train.steps=2000 ...] [--resume]

Any model with the training protocol works (collate, training_loss, param_groups,
reconstruct, save; see docs/training.md). AdamW with linear warm-up and cosine decay,
gradient accumulation and clipping, bf16 autocast on CUDA, periodic validation with
igllm_ros.metrics on reconstruct() outputs, atomic checkpoints with exact resume, a tqdm
bar, `<out>/log.jsonl`, `<out>/curves.png` and `<out>/final/` (model.save with a card).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import random
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from igllm_ros import model_kinds
from igllm_ros.devices import describe_device, resolve_device
from igllm_ros.metrics import format_value
from igllm_ros.model.samples import load_samples
from igllm_ros.model.training import state as ckpt
from igllm_ros.model.training.data import collate_fn, to_device, train_batches
from igllm_ros.model.training.log import JsonlLog, plot_curves
from igllm_ros.model.training.preset import Preset, PresetError, load_preset
from igllm_ros.model.training.schedule import apply_lr, lr_factor
from igllm_ros.reconstruction import Reconstructor
from igllm_ros.strict_json import json_ready


class TrainError(RuntimeError):
    """Training cannot start or go on; the message says why."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _StopRequest:
    """SIGINT/SIGTERM ask the loop to stop after the step in progress and checkpoint;
    a second SIGINT interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class Run:
    """Everything a training run holds between steps (setup() makes it, step() advances it)."""

    preset: Preset
    out: Path
    device: torch.device
    model: Reconstructor
    optimizer: torch.optim.Optimizer
    batches: Iterator[dict]
    val_samples: list
    log: JsonlLog
    step: int = 0
    samples_seen: int = 0
    elapsed_before: float = 0.0  # wall time of earlier sessions (resume)
    started: float = field(default_factory=time.perf_counter)
    last_val: dict = field(default_factory=dict)

    @property
    def cfg(self) -> dict:
        return self.preset.train

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoint"

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def state(self) -> dict:
        return {"step": self.step, "samples_seen": self.samples_seen, "elapsed_s": self.elapsed()}


def setup(preset: Preset, out: str | Path, resume: bool = False) -> Run:
    """Device, model, data, optimizer and log of a run; on --resume, restored from its
    checkpoint so that the next step is the one an uninterrupted run would take."""
    out = Path(out)
    cfg = preset.train
    found = ckpt.find_checkpoint(out / "checkpoint")
    if found is not None and not resume:
        raise TrainError(f"{out} already holds a checkpoint; pass --resume to continue it, or choose another --out")
    device = _training_device(cfg)
    resumed = _read_resume_state(found, out) if resume else None
    state = resumed or {"step": 0, "samples_seen": 0, "elapsed_s": 0.0}

    seed_everything(cfg["seed"])
    try:
        model = model_kinds.build(preset.model)
    except (ValueError, KeyError) as err:
        raise TrainError(f"preset {preset.name}: cannot build the model from `model:`: {err}") from err
    # The loader forks its workers here, while this process has neither CUDA nor an
    # OpenGL context (Mesa's and the driver's threads do not survive a fork).
    batches = _open_batches(preset, model, state, device)
    model = model.to(device)
    model.train()
    optimizer = _optimizer(model, cfg)
    if resumed is not None:
        try:
            state = ckpt.load_checkpoint(found, model, optimizer)
        except ckpt.CheckpointError as err:
            raise TrainError(str(err)) from err
        _warn_preset_changes(state.get("preset"), preset.raw)
        print(f"igllm-train: resuming {found} at step {state['step']} ({state['samples_seen']} samples seen)", file=sys.stderr)
    if state["step"] >= cfg["steps"]:
        print(f"igllm-train: {out} already trained {state['step']} of {cfg['steps']} steps", file=sys.stderr)
    try:
        val_samples = [] if preset.val_data is None else load_samples(preset.val_data, default_size=tuple(model.input_size))
    except (OSError, ValueError, KeyError) as err:
        raise TrainError(f"cannot read validation data: {type(err).__name__}: {err}") from err
    log = JsonlLog(out / "log.jsonl", resume_step=state["step"] if resume else None)
    return Run(preset, out, device, model, optimizer, batches, val_samples, log,
               step=state["step"], samples_seen=state["samples_seen"], elapsed_before=state["elapsed_s"])


def _training_device(cfg: dict) -> torch.device:
    try:
        device = resolve_device(cfg["device"])
    except ValueError as err:
        raise TrainError(str(err)) from err
    if device.type == "cpu" and cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _read_resume_state(found: Path | None, out: Path) -> dict | None:
    """The checkpoint's step and samples seen (where the data stream continues)."""
    if found is None:
        print(f"igllm-train: no checkpoint in {out}; starting from step 0", file=sys.stderr)
        return None
    try:
        return ckpt.read_state(found)
    except ckpt.CheckpointError as err:
        raise TrainError(str(err)) from err


def _open_batches(preset: Preset, model, state: dict, device: torch.device) -> Iterator[dict]:
    cfg = preset.train
    try:
        return train_batches(
            preset.train_data,
            collate_fn(model, cfg["augment"]),
            batch_size=cfg["batch_size"],
            workers=cfg["workers"],
            seed=cfg["seed"],
            start_sample=state["samples_seen"],
            start_step=state["step"],
            default_size=tuple(model.input_size),
            pin_memory=device.type == "cuda",
            model=model,
        )
    except (OSError, ValueError, KeyError) as err:
        raise TrainError(f"cannot read training data: {type(err).__name__}: {err}") from err


def _optimizer(model, cfg: dict) -> torch.optim.AdamW:
    groups = model.param_groups(cfg["lr"], cfg["head_lr"], cfg["weight_decay"], tower_lr=cfg["tower_lr"] or None)
    for group in groups:
        group["peak_lr"] = group["lr"]  # apply_lr scales from here
    return torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"])


def step(run: Run) -> dict:
    """One optimizer step: the scheduled learning rate, grad_accum micro-batches, clipping.
    Returns its logs (loss, the model's parts, grad_norm, lr)."""
    cfg = run.cfg
    accum = cfg["grad_accum"]
    apply_lr(run.optimizer, lr_factor(run.step, cfg["steps"], cfg["warmup_steps"], cfg["min_lr_ratio"]))
    loss_total, parts = 0.0, {}
    for _ in range(accum):
        batch = to_device(next(run.batches), run.device)
        with _autocast(run):
            loss, logs = run.model.training_loss(batch)
        if not torch.isfinite(loss):
            raise TrainError(f"loss is {loss.item()} at step {run.step}; lower train.lr or check the data")
        (loss / accum).backward()
        loss_total += loss.item() / accum
        for key, value in logs.items():
            parts[key] = parts.get(key, 0.0) + float(value) / accum
    trainable = [p for g in run.optimizer.param_groups for p in g["params"]]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, cfg["grad_clip"])) if cfg["grad_clip"] > 0 else math.nan
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    run.samples_seen += cfg["batch_size"] * accum
    return {**parts, "loss": loss_total, "grad_norm": grad_norm, "lr": run.optimizer.param_groups[0]["lr"]}


def _autocast(run: Run):
    if run.device.type == "cuda" and run.cfg["bf16"]:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Throughput:
    """Samples per second since the last training log record, and a smoothed loss."""

    def __init__(self):
        self.samples, self.seconds, self.smoothed = 0, 0.0, None

    def add(self, samples: int, seconds: float, loss: float) -> float:
        self.samples += samples
        self.seconds += seconds
        self.smoothed = loss if self.smoothed is None else 0.9 * self.smoothed + 0.1 * loss
        return self.rate()

    def rate(self) -> float:
        return self.samples / max(self.seconds, 1e-9)

    def reset(self) -> None:
        self.samples, self.seconds = 0, 0.0


# ---- hooks: what happens between steps --------------------------------------------------
def log_step(run: Run, logs: dict, rate: float) -> None:
    run.log.write({"step": run.step, **logs, "samples_per_s": rate, "samples_seen": run.samples_seen, "elapsed_s": run.elapsed()})


def validate(run: Run, write=print) -> dict:
    """Metrics of reconstruct() on the validation samples, logged and written as one line."""
    from igllm_ros.model.evaluate import evaluate_model

    if not run.val_samples:
        return {}
    with torch.inference_mode():
        metrics = evaluate_model(run.model, run.val_samples, batch_size=run.cfg["val_batch_size"], max_objects=run.cfg["max_objects"])
    run.log.write({"step": run.step, "val": metrics, "elapsed_s": run.elapsed()})
    write(_val_line(run.step, metrics))
    run.last_val = metrics
    return metrics


def save_checkpoint(run: Run) -> None:
    state = {**run.state(), "preset": run.preset.raw, "preset_name": run.preset.name}
    note = f"checkpoint at step {run.step} of {run.cfg['steps']}"
    ckpt.save_checkpoint(run.checkpoint_dir, run.model, run.optimizer, state, card=_card(run, note))


def plot(run: Run) -> None:
    plot_curves(run.out / "log.jsonl", run.out / "curves.png", title=_curve_title(run.preset, run.out))


def train(preset: Preset, out: str | Path, resume: bool = False, stop_at: int | None = None, progress: bool = True) -> dict:
    """Train `preset` into `out`; returns a summary (step, samples_seen, val metrics, paths).

    stop_at: stop after this optimizer step with a checkpoint (the schedule still runs to
    train.steps), e.g. to split a long run into sessions; --resume continues it.
    """
    from tqdm import tqdm

    run = setup(preset, out, resume)
    cfg, total = run.cfg, run.cfg["steps"]
    stop_step = total if stop_at is None else min(total, stop_at)
    first_step, meter = run.step, Throughput()
    bar = tqdm(total=total, initial=run.step, desc=f"train {preset.name}", unit="step", disable=not progress, dynamic_ncols=True)
    with _StopRequest() as stop, bar:
        while run.step < stop_step and not stop.requested:
            tick = time.perf_counter()
            logs = step(run)
            rate = meter.add(cfg["batch_size"] * cfg["grad_accum"], time.perf_counter() - tick, logs["loss"])
            bar.update(1)
            bar.set_postfix(loss=f"{meter.smoothed:.4f}", samples_s=f"{rate:.1f}", refresh=False)
            if run.step % cfg["log_interval"] == 0 or run.step == stop_step:
                log_step(run, logs, rate)
                meter.reset()
            if cfg["eval_interval"] and run.step % cfg["eval_interval"] == 0 and run.step < total:
                validate(run, bar.write)
                plot(run)
            if cfg["checkpoint_interval"] and run.step % cfg["checkpoint_interval"] == 0 and run.step < stop_step:
                save_checkpoint(run)
        finished = run.step >= total
        if finished and run.val_samples:
            validate(run, bar.write)
        if run.step > first_step or finished:
            save_checkpoint(run)
    return _finish(run, finished, "stop requested" if stop.requested else f"--stop-at {stop_at}")


def _finish(run: Run, finished: bool, why_stopped: str) -> dict:
    run.batches = iter(())  # ends the loader's workers
    plot(run)
    summary = {**run.state(), "val": run.last_val, "checkpoint": str(run.checkpoint_dir),
               "curves": str(run.out / "curves.png"), "final": None}
    if finished:
        final = run.out / "final"
        run.model.save(final, card=_card(run, "final model"))
        summary["final"] = str(final)
        print(f"igllm-train: done: {run.step} steps, {run.samples_seen} samples, {run.elapsed() / 60:.1f} min; model in {final}", file=sys.stderr)
    else:
        print(f"igllm-train: stopped at step {run.step} of {run.cfg['steps']} ({why_stopped}); continue with --resume", file=sys.stderr)
    return summary


def _card(run: Run, note: str) -> dict:
    """What model.save records about training (card.json / card.md)."""
    preset, cfg, device = run.preset, run.cfg, run.device
    return {
        "note": note,
        "preset": preset.name,
        "kind": preset.kind,
        "steps": run.step,
        "total_steps": cfg["steps"],
        "samples_seen": run.samples_seen,
        "batch_size": cfg["batch_size"] * cfg["grad_accum"],
        "train_data": preset.train_data.describe(),
        "val_data": preset.val_data.describe() if preset.val_data else None,
        "wall_time_s": round(run.elapsed(), 1),
        "device": describe_device(device),
        "bf16_autocast": bool(device.type == "cuda" and cfg["bf16"]),
        "val_metrics": json_ready(run.last_val),
        "config": preset.raw,
    }


def _val_line(step: int, m: dict) -> str:
    def pct(key):
        return format_value(m.get(key), "pct")

    return (
        f"val @ {step}: count exact {pct('count_exact')}%, L2 {format_value(m.get('location_error_m'), 'mm')} mm, "
        f"shape {pct('acc_shape')} color {pct('acc_color')} material {pct('acc_material')} size {pct('acc_size')}%, "
        f"yaw {format_value(m.get('yaw_error_deg'), '{:.2f}')} deg, AP@12.5mm {pct('ap_0.0125m')}%"
    )


def _curve_title(preset: Preset, out: Path) -> str:
    return f"{preset.name} ({preset.kind}) -> {out}"


def _warn_preset_changes(saved: dict | None, current: dict) -> None:
    if saved is None or saved == current:
        return
    changed = sorted(_diff_keys(saved, current))
    print(f"igllm-train: warning: the preset differs from the checkpoint's at {changed}; the result will differ from an uninterrupted run", file=sys.stderr)


def _diff_keys(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = []
        for key in set(a) | set(b):
            keys += _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return keys
    return [] if a == b else [prefix.rstrip(".")]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="igllm-train", description="Train IG-LLM or the DETR-style baseline from a YAML preset.")
    p.add_argument("--config", required=True, help="preset, e.g. config/train/tiny.yaml")
    p.add_argument("--out", required=True, help="run directory: checkpoint/, log.jsonl, curves.png, final/")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a preset value, e.g. --set train.steps=2000 --set model.numbers=char (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop after this step with a checkpoint (the schedule still spans train.steps)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to log.jsonl)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        preset = load_preset(args.config, args.overrides)
        train(preset, args.out, resume=args.resume, stop_at=args.stop_at, progress=not args.no_progress)
    except (PresetError, TrainError) as err:
        print(f"igllm-train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
