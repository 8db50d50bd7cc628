"""Train several presets side by side with the same budget, on one GPU box.

    python scripts/train_suite.py --presets tiny tiny-char tiny-feedback baseline \
        --minutes 8 --workers 3 --batch 64 --out runs/suite --export out/suite

How the shipped models were trained (see README, docs/results.md). Every preset sees the
same freshly rendered training stream (generator:train, one seed) for the same number of
steps, so the comparison is fair. The step count is fixed up front from a short probe run
of each preset (the slowest one sets the pace), because the cosine schedule needs it.
With --export, each final model is copied there with its weights stored as float16
(half the size; `igllm_ros.model_kinds.load` casts them back to the dtype asked for), next to
its log.jsonl and curves.png.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_training(preset: str, out: Path, steps: int, args, extra: list[str]) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "igllm_ros.model.train", "--config", str(ROOT / "config/train" / f"{preset}.yaml"),
        "--out", str(out), "--no-progress",
        "--set", "data.train=generator:train", "--set", f"data.val={{split: val_id, seed: 1, count: {args.val_count}}}",
        "--set", f"train.steps={steps}", "--set", f"train.workers={args.workers}",
        "--set", f"train.batch_size={args.batch}", "--set", f"train.warmup_steps={max(10, steps // 20)}",
        "--set", f"train.eval_interval={max(1, steps // 3)}", "--set", f"train.checkpoint_interval={max(1, steps // 6)}",
        "--set", f"train.seed={args.seed}", *extra,
    ]
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(command, stdout=open(out / "train.out", "w"), stderr=subprocess.STDOUT, cwd=ROOT)


def measured_rate(log: Path) -> float:
    rates = [r["samples_per_s"] for r in map(json.loads, log.read_text().splitlines()) if "samples_per_s" in r]
    return statistics.median(rates[len(rates) // 2:]) if rates else 0.0


def export_dir(run: Path, target: Path) -> None:
    """A run's final model (else its last checkpoint) as a shipped model directory: the
    training state left out, weights stored as float16, the log and curves beside it."""
    from safetensors.torch import load_file, save_file

    model_dir = run / "final" if (run / "final").exists() else run / "checkpoint"
    shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("trainer"), dirs_exist_ok=True)
    weights = target / "model.safetensors"
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(weights)).items()}
    save_file(state, str(weights), metadata={"stored_dtype": "float16"})
    for extra in ("log.jsonl", "curves.png", "train.out"):
        if (run / extra).exists():
            shutil.copy(run / extra, target / extra)


def export(run: Path, name: str, dest: Path) -> None:
    export_dir(run, dest / name)
    shutil.make_archive(str(dest / name), "gztar", dest, name)
    shutil.rmtree(dest / name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", required=True)
    p.add_argument("--minutes", type=float, required=True, help="training time budget per preset (they run at once)")
    p.add_argument("--workers", type=int, default=3, help="rendering DataLoader workers per run")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--probe-steps", type=int, default=30)
    p.add_argument("--val-count", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "runs/suite")
    p.add_argument("--export", type=Path, default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="passed to every run")
    args = p.parse_args()
    extra = [a for o in args.overrides for a in ("--set", o)]

    start = time.monotonic()
    probes = {name: run_training(name, args.out / "probe" / name, args.probe_steps, args,
                                 extra + ["--set", "data.val={split: val_id, seed: 1, count: 1}"])
              for name in args.presets}
    for name, proc in probes.items():
        if proc.wait() != 0:
            print((args.out / "probe" / name / "train.out").read_text()[-3000:])
            raise SystemExit(f"probe of {name} failed")
    rates = {name: measured_rate(args.out / "probe" / name / "log.jsonl") for name in args.presets}
    budget_s = args.minutes * 60 - (time.monotonic() - start)
    steps = max(args.probe_steps, int(min(rates.values()) * budget_s * 0.85 / args.batch))  # 15 %: validation, start-up
    print(f"probe rates (samples/s, all running at once): {rates}; {steps} steps of {args.batch} each", flush=True)

    runs = {name: run_training(name, args.out / name, steps, args, extra) for name in args.presets}
    codes = {name: proc.wait() for name, proc in runs.items()}
    print(f"exit codes {codes}; {time.monotonic() - start:.0f} s in all", flush=True)
    for name in args.presets:
        print(f"--- {name}\n" + (args.out / name / "train.out").read_text()[-1500:], flush=True)
        if args.export and codes[name] == 0:
            args.export.mkdir(parents=True, exist_ok=True)
            export(args.out / name, name, args.export)
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
