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
from pathlib import Path

import numpy as np
import torch

from igllm_ros import model_kinds
from igllm_ros.model.training import checkpoint as ckpt
from igllm_ros.model.training.data import collate_fn, load_samples, to_device, train_batches
from igllm_ros.model.training.log import JsonlLog, plot_curves
from igllm_ros.model.training.preset import Preset, PresetError, load_preset
from igllm_ros.model.training.runtime import describe_device, resolve_device
from igllm_ros.model.training.schedule import apply_lr, lr_factor


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


def train(preset: Preset, out: str | Path, resume: bool = False, stop_at: int | None = None, progress: bool = True) -> dict:
    """Train `preset` into `out`; returns a summary (step, samples_seen, val metrics, paths).

    stop_at: stop after this optimizer step with a checkpoint (the schedule still runs to
    train.steps), e.g. to split a long run into sessions; --resume continues it.
    """
    from tqdm import tqdm

    out = Path(out)
    cfg = preset.train
    total = cfg["steps"]
    checkpoint_dir = out / "checkpoint"
    found = ckpt.find_checkpoint(checkpoint_dir)
    if found is not None and not resume:
        raise TrainError(f"{out} already holds a checkpoint; pass --resume to continue it, or choose another --out")
    try:
        device = resolve_device(cfg["device"])
    except ValueError as err:
        raise TrainError(str(err)) from err
    if device.type == "cpu" and cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    resumed = None
    if resume and found is not None:
        try:
            resumed = ckpt.read_state(found)  # where the data stream continues
        except ckpt.CheckpointError as err:
            raise TrainError(str(err)) from err
    elif resume:
        print(f"igllm-train: no checkpoint in {out}; starting from step 0", file=sys.stderr)
    state = resumed or {"step": 0, "samples_seen": 0, "elapsed_s": 0.0}

    seed_everything(cfg["seed"])
    try:
        model = model_kinds.build(preset.model)
    except (ValueError, KeyError) as err:
        raise TrainError(f"preset {preset.name}: cannot build the model from `model:`: {err}") from err
    try:
        # The loader forks its workers here, while this process has neither CUDA nor an
        # OpenGL context (Mesa's and the driver's threads do not survive a fork).
        batches = train_batches(
            preset.train_data,
            collate_fn(model, cfg["augment"]),
            batch_size=cfg["batch_size"],
            workers=cfg["workers"],
            seed=cfg["seed"],
            start_sample=state["samples_seen"],
            start_step=state["step"],
            default_size=tuple(model.input_size),
            pin_memory=device.type == "cuda",
        )
    except (OSError, ValueError, KeyError) as err:
        raise TrainError(f"cannot read training data: {type(err).__name__}: {err}") from err

    model = model.to(device)
    model.train()
    groups = model.param_groups(cfg["lr"], cfg["head_lr"], cfg["weight_decay"])
    for group in groups:
        group["peak_lr"] = group["lr"]
    optimizer = torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    if resumed is not None:
        try:
            state = ckpt.load_checkpoint(found, model, optimizer)
        except ckpt.CheckpointError as err:
            raise TrainError(str(err)) from err
        _warn_preset_changes(state.get("preset"), preset.raw)
        print(f"igllm-train: resuming {found} at step {state['step']} ({state['samples_seen']} samples seen)", file=sys.stderr)
    step, samples_seen, elapsed_before = state["step"], state["samples_seen"], state["elapsed_s"]
    if step >= total:
        print(f"igllm-train: {out} already trained {step} of {total} steps", file=sys.stderr)
    per_step = cfg["batch_size"] * cfg["grad_accum"]

    try:
        val_samples = []
        if preset.val_data is not None:
            val_samples = load_samples(preset.val_data, default_size=tuple(model.input_size))
    except (OSError, ValueError, KeyError) as err:
        raise TrainError(f"cannot read validation data: {type(err).__name__}: {err}") from err

    log = JsonlLog(out / "log.jsonl", resume_step=step if resume else None)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and cfg["bf16"]
        else contextlib.nullcontext()
    )
    run_start = time.perf_counter()
    last_val: dict = {}

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - run_start

    def validate() -> dict:
        from igllm_ros.model.evaluate import evaluate_model

        if not val_samples:
            return {}
        with torch.inference_mode():
            metrics = evaluate_model(model, val_samples, batch_size=cfg["val_batch_size"], max_objects=cfg["max_objects"])
        log.write({"step": step, "val": metrics, "elapsed_s": elapsed()})
        bar.write(_val_line(step, metrics))
        return metrics

    def save_checkpoint(card_note: str) -> None:
        state = {
            "step": step,
            "samples_seen": samples_seen,
            "elapsed_s": elapsed(),
            "preset": preset.raw,
            "preset_name": preset.name,
        }
        ckpt.save_checkpoint(checkpoint_dir, model, optimizer, state, card=_card(preset, state, device, last_val, card_note))

    stop_step = total if stop_at is None else min(total, stop_at)
    window_start, window_samples, window_time = step, 0, 0.0
    smoothed = None
    with _StopRequest() as stop, tqdm(total=total, initial=step, desc=f"train {preset.name}", unit="step", disable=not progress, dynamic_ncols=True) as bar:
        while step < stop_step and not stop.requested:
            tick = time.perf_counter()
            apply_lr(optimizer, lr_factor(step, total, cfg["warmup_steps"], cfg["min_lr_ratio"]))
            loss_total, parts = 0.0, {}
            for _ in range(cfg["grad_accum"]):
                batch = to_device(next(batches), device)
                with autocast:
                    loss, logs = model.training_loss(batch)
                if not torch.isfinite(loss):
                    raise TrainError(f"loss is {loss.item()} at step {step}; lower train.lr or check the data")
                (loss / cfg["grad_accum"]).backward()
                loss_total += loss.item() / cfg["grad_accum"]
                for key, value in logs.items():
                    parts[key] = parts.get(key, 0.0) + float(value) / cfg["grad_accum"]
            grad_norm = (
                float(torch.nn.utils.clip_grad_norm_(trainable, cfg["grad_clip"]))
                if cfg["grad_clip"] > 0
                else math.nan
            )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            samples_seen += per_step
            window_samples += per_step
            window_time += time.perf_counter() - tick
            smoothed = loss_total if smoothed is None else 0.9 * smoothed + 0.1 * loss_total
            rate = window_samples / max(window_time, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{smoothed:.4f}", samples_s=f"{rate:.1f}", refresh=False)
            if step % cfg["log_interval"] == 0 or step == stop_step:
                log.write(
                    {"step": step, **parts, "loss": loss_total, "grad_norm": grad_norm,
                     "lr": optimizer.param_groups[0]["lr"], "samples_per_s": rate,
                     "samples_seen": samples_seen, "elapsed_s": elapsed()}
                )
                window_samples, window_time = 0, 0.0
            if cfg["eval_interval"] and step % cfg["eval_interval"] == 0 and step < total:
                last_val = validate()
                plot_curves(out / "log.jsonl", out / "curves.png", title=_curve_title(preset, out))
            if cfg["checkpoint_interval"] and step % cfg["checkpoint_interval"] == 0 and step < stop_step:
                save_checkpoint(f"checkpoint at step {step} of {total}")
        finished = step >= total
        if finished and val_samples:
            last_val = validate()
        if step > window_start or finished:
            save_checkpoint(f"checkpoint at step {step} of {total}")
    del batches  # ends loader workers
    plot_curves(out / "log.jsonl", out / "curves.png", title=_curve_title(preset, out))
    summary = {"step": step, "samples_seen": samples_seen, "elapsed_s": elapsed(), "val": last_val,
               "checkpoint": str(checkpoint_dir), "curves": str(out / "curves.png"), "final": None}
    if finished:
        final_state = {"step": step, "samples_seen": samples_seen, "elapsed_s": elapsed()}
        model.save(out / "final", card=_card(preset, final_state, device, last_val, "final model"))
        summary["final"] = str(out / "final")
        print(f"igllm-train: done: {step} steps, {samples_seen} samples, {elapsed() / 60:.1f} min; model in {out / 'final'}", file=sys.stderr)
    else:
        why = "stop requested" if stop.requested else f"--stop-at {stop_at}"
        print(f"igllm-train: stopped at step {step} of {total} ({why}); continue with --resume", file=sys.stderr)
    return summary


def _card(preset: Preset, state: dict, device, val: dict, note: str) -> dict:
    """What model.save records about training (card.json / card.md)."""
    cfg = preset.train
    return {
        "note": note,
        "preset": preset.name,
        "kind": preset.kind,
        "steps": state["step"],
        "total_steps": cfg["steps"],
        "samples_seen": state["samples_seen"],
        "batch_size": cfg["batch_size"] * cfg["grad_accum"],
        "train_data": preset.train_data.describe(),
        "val_data": preset.val_data.describe() if preset.val_data else None,
        "wall_time_s": round(state["elapsed_s"], 1),
        "device": describe_device(device),
        "bf16_autocast": bool(device.type == "cuda" and cfg["bf16"]),
        "val_metrics": {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in val.items()},
        "config": preset.raw,
    }


def _val_line(step: int, m: dict) -> str:
    def pct(key):
        value = m.get(key)
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"

    def num(key, scale, unit):
        value = m.get(key)
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{scale * value:.1f} {unit}"

    return (
        f"val @ {step}: count exact {pct('count_exact')}%, L2 {num('location_error_m', 1000, 'mm')}, "
        f"shape {pct('acc_shape')} color {pct('acc_color')} material {pct('acc_material')} size {pct('acc_size')}%, "
        f"yaw {num('yaw_error_deg', 1, 'deg')}, AP@12.5mm {pct('ap_0.0125m')}%"
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
