"""Training loss per domain: how surprised each model is by each split's images, no gradient.

    python bench/bench_domain_loss.py [--models default previous] [--splits val_id val_cycles val_eevee ...]
        [--count 100] [--seed 1000] [--data data/] [--threads 1] [--batch-size 16] [--out out/bench_domain_loss]

Exact count and location error (bench_accuracy.py) move in steps of a whole scene; the
training objective (cross-entropy of the program tokens + the numeric head's MSE, as
IGLLM.training_loss computes it in training) moves with every token, so it shows a domain
gap on 100 scenes that the count cannot. Scenes come from the same place as
bench_accuracy's (a DATA/<split> folder with enough images of --seed, else rendered now),
read as they are: no augmentation, no gray views. Prints one table (rows: split, columns:
model; loss, then ce / mse) and writes OUT/results.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_accuracy import SPLITS, load_models, split_samples  # noqa: E402

from igllm_ros.strict_json import json_ready  # noqa: E402


def domain_loss(model, samples: list, batch_size: int) -> dict[str, float]:
    """Scene-weighted means of training_loss's logs (loss, ce, mse) over `samples`."""
    import torch

    sums, seen = {}, 0
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        with torch.no_grad():
            _, logs = model.training_loss(model.collate(chunk, augment=False))
        for key in ("loss", "ce", "mse"):
            if key in logs:
                sums[key] = sums.get(key, 0.0) + logs[key] * len(chunk)
        seen += len(chunk)
    return {key: total / seen for key, total in sums.items()}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["default", "previous"], help="bench_accuracy's keys or model directories")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    p.add_argument("--count", type=int, default=100, help="scenes per split (default 100)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--data", type=Path, default=ROOT / "data", help="read DATA/<split>/ when it holds --count images of --seed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", type=Path, default=ROOT / "out/bench_domain_loss")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    entries, models = load_models(args, "bench_domain_loss")
    results: dict[str, dict[str, dict]] = {}
    started = time.perf_counter()
    for split in args.splits:
        samples, source = split_samples(split, args.seed, args.count, args.data)
        results[split] = {e.key: domain_loss(models[e.key], samples, args.batch_size) for e in entries}
        print(f"{split}: {len(samples)} scenes from {source}: "
              + ", ".join(f"{e.label} {results[split][e.key]['loss']:.4f}" for e in entries), flush=True)

    width = max(len(s) for s in results)
    print(f"\ntraining loss (ce + weighted mse; ce / mse), {args.count} scenes per split, seed {args.seed}, no gradient")
    print(f"{'split':<{width}}  " + "  ".join(f"{e.label:>28}" for e in entries))
    for split, per_model in results.items():
        cells = []
        for e in entries:
            m = per_model[e.key]
            cells.append(f"{m['loss']:.4f} ({m['ce']:.4f} / {m.get('mse', float('nan')):.4f})".rjust(28))
        print(f"{split:<{width}}  " + "  ".join(cells))
    print(f"total {time.perf_counter() - started:.0f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python bench/bench_domain_loss.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "scenes": {"seed": args.seed, "count": args.count, "splits": args.splits},
        "models": {e.key: {"label": e.label, "path": str(e.path)} for e in entries},
        "results": results,
    }
    (args.out / "results.json").write_text(json.dumps(json_ready(report), indent=1))
    print(f"wrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
