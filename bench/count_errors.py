"""Where a model's count errors come from: missed objects by visible area, extra
predictions by confidence, and what a confidence cut-off would do to exact count.

    python bench/count_errors.py [--model models/igllm-lite0-cycles2] [--splits val_id val_visual ...]
        [--count 300] [--seed 1000] [--data data/] [--cutoffs 0 0.2 0.3 0.5]

Each split's scenes are rendered from the stream (seed --seed, 320x240), or read from
DATA/<split> when it holds --count images of --seed (bench_accuracy's rule: the Blender
splits val_cycles and val_eevee cost seconds per image), and decoded once;
the cut-offs filter the decoded objects afterwards (the node's `confidence_threshold`
does the same to its outputs). A true object counts as missed when no prediction lies
within --near metres of it after the Hungarian matching; a prediction as extra when it
is not matched that close. Figures only: nothing here is tuned on the splits.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from igllm_ros import metrics  # noqa: E402
from igllm_ros.reconstruction import DEFAULT_MODEL  # noqa: E402

VISIBLE_BINS = ((200, 500), (500, 1000), (1000, 2000), (2000, None))


def near_pairs(pred, true, near_m: float) -> list[tuple[int, int]]:
    return [(i, j) for i, j in metrics.match(pred, true) if np.linalg.norm(np.subtract(pred[i].loc, true[j].loc)) < near_m]


def report(split: str, samples, scenes, cutoffs, near_m: float) -> list[str]:
    visible, missed, extra_conf, matched_conf = [], [], [], []
    for sample, pred in zip(samples, scenes):
        pairs = near_pairs(pred.objects, sample.scene.objects, near_m)
        hit_true, hit_pred = {j for _, j in pairs}, {i for i, _ in pairs}
        pixels = [o["visible_pixels"] for o in sample.meta["objects"]]
        visible += pixels
        missed += [pixels[j] for j in range(len(pixels)) if j not in hit_true]
        extra_conf += [o.confidence for i, o in enumerate(pred.objects) if i not in hit_pred]
        matched_conf += [pred.objects[i].confidence for i in hit_pred]
    visible, missed = np.array(visible), np.array(missed)
    surplus = np.array([len(p.objects) - len(s.scene.objects) for s, p in zip(samples, scenes)])
    lines = [f"{split}: {len(samples)} scenes, count bias {surplus.mean():+.2f} objects, over-counted {100 * (surplus > 0).mean():.1f} %, "
             f"under-counted {100 * (surplus < 0).mean():.1f} %",
             f"  missed objects (nothing within {100 * near_m:.0f} cm): {len(missed)} of {len(visible)} ({100 * len(missed) / max(len(visible), 1):.1f} %)"]
    for lo, hi in VISIBLE_BINS:
        top = np.inf if hi is None else hi
        inside, gone = (visible >= lo) & (visible < top), (missed >= lo) & (missed < top)
        lines.append(f"    visible {lo}-{hi or 'max'} px: {inside.sum()} objects, {gone.sum()} missed ({100 * gone.sum() / max(inside.sum(), 1):.1f} %)")
    median = lambda v: f"{np.median(v):.2f}" if v else "n/a"  # noqa: E731
    lines.append(f"  extra predictions: {len(extra_conf)}, median confidence {median(extra_conf)} (matched: {median(matched_conf)})")
    cells = []
    for cutoff in cutoffs:
        kept = [(p.with_objects([o for o in p.objects if o.confidence >= cutoff]), s.scene) for s, p in zip(samples, scenes)]
        m = metrics.evaluate(kept)
        cells.append(f"{cutoff:g}: {100 * m['count_exact']:.1f} % / {1000 * m['location_error_m']:.1f} mm / AP {100 * m['ap_inf']:.1f}")
    lines.append("  confidence cut-off -> count exact / L2 / AP@inf:  " + ";  ".join(cells))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--splits", nargs="+", default=["val_id", "val_visual", "val_camera", "val_cogent_b"])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[0.0, 0.2, 0.3, 0.5])
    parser.add_argument("--near", type=float, default=0.1, help="metres: a true object farther than this from every prediction is missed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="read DATA/<split>/ when it holds --count images of --seed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from bench_accuracy import split_samples

    from igllm_ros.model.evaluate import predict
    from igllm_ros.model.loading import load

    model = load(args.model)
    print(f"{args.model}: {args.count} scenes per split, seed {args.seed}")
    for split in args.splits:
        samples, _ = split_samples(split, args.seed, args.count, args.data)
        scenes = [r.scene for r in predict(model, [s.image for s in samples], batch_size=16)]
        print("\n".join(report(split, samples, scenes, args.cutoffs, args.near)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
