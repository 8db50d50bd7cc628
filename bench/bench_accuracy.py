"""Accuracy benchmark: every shipped model on every validation split, in one table.

    python bench/bench_accuracy.py [--count 100] [--models char float baseline previous default]
        [--splits val_id val_cogent_b val_param val_visual val_camera val_cycles val_eevee] [--seed 1000]
        [--data data/] [--threads 1] [--out out/bench_accuracy] [--markdown FILE]

Reproduces the paper's comparison (Kulits et al. 2024, tables 1-3) on this package's
world: char vs float numbers (and float with value feedback) trained with one budget,
the DETR-style baseline, the previous default and the shipped default. Each split's
scenes are rendered once at the camera's 320x240 (generator:SPLIT, --seed) and every model
reads the same images, resized to its own input size as the node does. A split whose
dataset folder exists under --data with enough images is read from there instead
(val_cycles and val_eevee: Blender costs seconds per image, so render them once with
`igllm-data generate --split val_cycles --count 100 --seed 1000 --out data/`). Metrics come from igllm_ros.model.evaluate (run_evaluation) and
are shown with igllm_ros.metrics (TABLE_ROWS, format_value), decoding is batched on the CPU in float32. Prints one table (rows: model per
split) under a header with each model's training budget, writes OUT/results.json and,
with --markdown, the same table as markdown.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from igllm_ros.metrics import TABLE_ROWS, format_value  # noqa: E402
from igllm_ros.reconstruction import CARD_FILE, CARD_JSON, CONFIG_FILE, DEFAULT_MODEL, PREVIOUS_MODEL  # noqa: E402
from igllm_ros.strict_json import json_ready  # noqa: E402

SPLITS = ("val_id", "val_cogent_b", "val_param", "val_visual", "val_camera", "val_cycles", "val_eevee")
IMAGE_SIZE = (320, 240)  # the simulated camera's, world.IMAGE_WIDTH x IMAGE_HEIGHT

# key -> (row label, checkpoint directory relative to the repository root), in table order.
MODELS = {
    "char": ("char", "models/compare/igllm-tiny-char"),
    "float": ("float", "models/compare/igllm-tiny-float"),
    "baseline": ("DETR baseline", "models/compare/detr-baseline"),
    "previous": ("previous default", PREVIOUS_MODEL),
    "default": ("shipped default", DEFAULT_MODEL),
}

# Short column headers for TABLE_ROWS' keys (the labels there are for a one-split listing).
SHORT = {
    "count_abs_error": "cnt err",
    "count_exact": "cnt ok%",
    "location_error_m": "L2 mm",
    "acc_shape": "shape%",
    "acc_shape_all": "shp all%",
    "acc_color": "color%",
    "acc_material": "mat%",
    "acc_size": "size%",
    "yaw_error_deg": "yaw deg",
    "ap_0.05m": "AP50mm",
    "ap_0.025m": "AP25mm",
    "ap_0.0125m": "AP12.5",
    "ap_0.00625m": "AP6.25",
    "ap_inf": "AP inf",
}
COLUMNS = tuple((key, SHORT.get(key, label), fmt) for key, label, fmt in TABLE_ROWS) + (
    ("ms_per_scene", "ms/scene", "{:.1f}"),
)


@dataclass
class Budget:
    """A model's training budget, from its card (card.json, else card.md's `- key: value` lines)."""

    steps: int | None = None
    total_steps: int | None = None
    batch_size: int | None = None
    samples_seen: int | None = None
    device: str | None = None
    wall_time_s: float | None = None

    @classmethod
    def read(cls, directory: Path) -> "Budget":
        fields = {}
        card_json, card_md = directory / CARD_JSON, directory / CARD_FILE
        if card_json.is_file():
            fields = json.loads(card_json.read_text())
        elif card_md.is_file():
            for line in card_md.read_text().splitlines():
                if line.startswith("## "):  # val_metrics and config sections follow the budget
                    if fields:
                        break
                    continue
                if line.startswith("- ") and ": " in line:
                    key, value = line[2:].split(": ", 1)
                    fields[key.strip()] = value.strip()

        def number(key, kind):
            try:
                return kind(fields[key]) if fields.get(key) not in (None, "") else None
            except (TypeError, ValueError):
                return None

        return cls(
            steps=number("steps", int),
            total_steps=number("total_steps", int),
            batch_size=number("batch_size", int),
            samples_seen=number("samples_seen", int),
            device=fields.get("device"),
            wall_time_s=number("wall_time_s", float),
        )

    def describe(self) -> str:
        if self.steps is None or self.batch_size is None:
            return "budget unknown (no card)"
        steps = f"{self.steps}" if self.total_steps in (None, self.steps) else f"{self.steps} of {self.total_steps} planned"
        text = f"{steps} steps x batch {self.batch_size}"
        if self.samples_seen is not None:
            text += f" = {self.samples_seen / 1000:.0f}k scenes"
        if self.wall_time_s is not None:
            text += f", {self.wall_time_s / 60:.1f} min"
        if self.device:
            text += f" on {self.device}"
        return text


@dataclass
class Entry:
    key: str
    label: str
    path: Path
    budget: Budget


def resolve_models(names: list[str]) -> list[Entry]:
    """Registry keys (see MODELS) or model directories."""
    entries = []
    for name in names:
        if name in MODELS:
            label, rel = MODELS[name]
            path = ROOT / rel
        else:
            path = Path(name)
            label = path.name
            if not path.is_dir():
                raise SystemExit(f"bench_accuracy: --models {name!r}: neither one of {sorted(MODELS)} nor a model directory")
        if not (path / CONFIG_FILE).is_file():
            raise SystemExit(f"bench_accuracy: model {name!r}: {path} holds no {CONFIG_FILE}")
        entries.append(Entry(name, label, path, Budget.read(path)))
    return entries


def split_samples(split: str, seed: int, count: int, data: Path | None) -> tuple[list, str]:
    """(samples, where from): a written dataset folder with enough images, else rendered now."""
    from igllm_ros.model.samples import DataSpec, load_samples

    folder = data / split if data is not None else None
    if folder is not None and (folder / "meta.json").is_file():
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("complete") and meta.get("count", 0) >= count and meta.get("seed") == seed:
            return load_samples(DataSpec("dataset", path=str(folder)), default_size=IMAGE_SIZE, count=count), str(folder)
    spec = DataSpec("generator", split=split, seed=seed, size=IMAGE_SIZE)
    return load_samples(spec, default_size=IMAGE_SIZE, count=count), f"generator:{split} seed {seed}"


def cell(metrics: dict, key: str, fmt: str) -> str:
    if key == "ms_per_scene":
        return f"{1000 * metrics['seconds_per_scene']:.1f}"
    return format_value(metrics.get(key), fmt)


def text_table(results: dict, entries: list[Entry]) -> str:
    width = max(len(e.label) for e in entries)
    split_width = max(len(s) for s in results)
    head = f"{'split':<{split_width}}  {'model':<{width}}  " + "  ".join(f"{h:>8}" for _, h, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for split, per_model in results.items():
        for e in entries:
            if e.key in per_model:
                row = "  ".join(f"{cell(per_model[e.key], k, f):>8}" for k, _, f in COLUMNS)
                lines.append(f"{split:<{split_width}}  {e.label:<{width}}  {row}")
    return "\n".join(lines)


def markdown_table(results: dict, entries: list[Entry]) -> str:
    lines = ["| split | model | " + " | ".join(h for _, h, _ in COLUMNS) + " |"]
    lines.append("|---|---|" + "---:|" * len(COLUMNS))
    for split, per_model in results.items():
        for e in entries:
            if e.key in per_model:
                lines.append(f"| {split} | {e.label} | " + " | ".join(cell(per_model[e.key], k, f) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines)


def budget_header(entries: list[Entry], markdown: bool) -> str:
    if markdown:
        lines = ["| model | checkpoint | training budget |", "|---|---|---|"]
        lines += [f"| {e.label} | `{_rel(e.path)}` | {e.budget.describe()} |" for e in entries]
    else:
        width = max(len(e.label) for e in entries)
        lines = ["training budgets:"] + [f"  {e.label:<{width}}  {_rel(e.path)}: {e.budget.describe()}" for e in entries]
    return "\n".join(lines)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def column_legend() -> str:
    parts = [f"{h} = {label}" for (key, h, _), (_, label, _) in zip(COLUMNS, TABLE_ROWS) if h != label]
    return "; ".join(parts) + "; ms/scene = batched CPU decode time per scene"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=100, help="scenes per split (default 100)")
    p.add_argument("--models", nargs="+", default=list(MODELS), help=f"keys {list(MODELS)} or model directories")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    p.add_argument("--seed", type=int, default=1000, help="generator seed of the rendered scenes (default 1000)")
    p.add_argument("--data", type=Path, default=ROOT / "data", help="read DATA/<split>/ when it holds --count images of --seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--batch-size", type=int, default=16, help="scenes per batched reconstruct call")
    p.add_argument("--max-objects", type=int, default=10)
    p.add_argument("--out", type=Path, default=ROOT / "out/bench_accuracy", help="directory for results.json")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table as markdown here")
    return p


def load_models(args, prog: str) -> tuple[list[Entry], dict]:
    """The checked --count/--threads/--batch-size, then --models resolved and loaded on the
    CPU in float32 with --threads torch threads: (entries, key -> model)."""
    if args.count < 1 or args.threads < 1 or args.batch_size < 1:
        raise SystemExit(f"{prog}: --count, --threads and --batch-size must be >= 1")
    entries = resolve_models(args.models)

    import torch

    from igllm_ros import model_kinds

    torch.set_num_threads(args.threads)
    return entries, {e.key: model_kinds.load(e.path, device="cpu", dtype=torch.float32) for e in entries}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    entries, models = load_models(args, "bench_accuracy")

    import torch

    from igllm_ros.model.evaluate import run_evaluation

    print(budget_header(entries, markdown=False), flush=True)

    results: dict[str, dict[str, dict]] = {}
    started = time.perf_counter()
    for split in args.splits:
        results[split] = {}
        t0 = time.perf_counter()
        samples, source = split_samples(split, args.seed, args.count, args.data)
        print(f"{split}: {len(samples)} scenes from {source} in {time.perf_counter() - t0:.1f} s", flush=True)
        for e in entries:
            with torch.inference_mode():
                evaluation = run_evaluation(models[e.key], samples, args.batch_size, args.max_objects)
            m = evaluation.metrics
            results[split][e.key] = m
            print(
                f"{split}: {e.label}: count exact {format_value(m['count_exact'], 'pct')} %, L2 {format_value(m['location_error_m'], 'mm')} mm, "
                f"AP@inf {format_value(m['ap_inf'], 'pct')} %, {1000 * m['seconds_per_scene']:.1f} ms/scene",
                flush=True,
            )

    print()
    print(budget_header(entries, markdown=False))
    print(f"scenes: SPLIT seed {args.seed}, {args.count} per split at {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}; CPU float32, {args.threads} thread(s), batch {args.batch_size}")
    print(text_table(results, entries))
    print(column_legend())
    print(f"total {time.perf_counter() - started:.0f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python bench/bench_accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "scenes": {"source": "generator", "seed": args.seed, "count": args.count, "splits": args.splits},
        "decode": {"device": "cpu", "dtype": "float32", "threads": args.threads, "batch_size": args.batch_size,
                   "max_objects": args.max_objects, "cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
        "models": {e.key: {"label": e.label, "path": _rel(e.path), "budget": e.budget.__dict__, "budget_text": e.budget.describe()} for e in entries},
        "results": results,
    }
    (args.out / "results.json").write_text(json.dumps(json_ready(report), indent=1))
    print(f"wrote {args.out / 'results.json'}")
    if args.markdown:
        text = "\n\n".join([
            budget_header(entries, markdown=True),
            f"Scenes: split SPLIT seed {args.seed}, {args.count} per split at {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, the same images for every model; "
            f"decoding on the CPU in float32, {args.threads} thread(s), batches of {args.batch_size}.",
            markdown_table(results, entries),
            column_legend() + ".",
        ])
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
