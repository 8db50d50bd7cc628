"""igllm-data: generate, inspect and summarize synthetic scene datasets.

    igllm-data generate --split train --count 20000 --out data/ [--width 320 --height 240 --seed 0 --workers N]
    igllm-data show --data data/val_id --out sheet.png [--count 16]
    igllm-data summary --data data/val_id
    igllm-data factors --out docs/figures [--palette]     one sheet per randomization factor
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from igllm_ros.data.splits import SPLITS, split_rule

DEFAULT_COUNTS = {
    "train": 20000,
    "val_id": 500,
    "val_cogent_b": 500,
    "val_param": 500,
    "val_visual": 500,
    "train_robust": 20000,
    "val_camera": 500,
    "val_cycles": 300,
    "train_cycles": 2000,
    "val_eevee": 300,
}
# `--split all`: every split the moderngl renderer draws; the Blender splits (seconds per image) on their own
ALL_SPLITS = tuple(s for s in SPLITS if split_rule(s).renderer == "moderngl")
DEFAULT_SEED = 0


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _generate(args) -> int:
    from igllm_ros.data.dataset import SceneDataset
    from igllm_ros.data.summary import format_summary, summarize
    from igllm_ros.data.writer import generate

    splits = list(ALL_SPLITS) if args.split == "all" else [args.split]
    for split in splits:
        count = args.count or DEFAULT_COUNTS[split]
        start = time.perf_counter()
        folder = generate(
            args.out,
            split,
            count,
            seed=args.seed,
            width=args.width,
            height=args.height,
            workers=args.workers,
            lp_threads=args.lp_threads,
            progress=not args.quiet,
        )
        seconds = time.perf_counter() - start
        dataset = SceneDataset(folder)
        print(format_summary(summarize(dataset.records()), title=f"== {folder} ({args.width}x{args.height}, seed {args.seed})"))
        print(f"wall time {seconds:.1f} s")
    return 0


def _show(args) -> int:
    from igllm_ros.data.dataset import SceneDataset
    from igllm_ros.data.sheet import contact_sheet, to_palette

    dataset = SceneDataset(args.data)
    n = min(args.count, len(dataset))
    samples = [(s.image, s.meta) for s in (dataset[i] for i in range(args.start, args.start + n) if i < len(dataset))]
    sheet = contact_sheet(samples, cols=args.cols, legend=not args.no_legend)
    if args.palette:
        sheet = to_palette(sheet)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({len(samples)} samples of {args.data})")
    return 0


def _factors(args) -> int:
    from igllm_ros.data.factors import factor_sheets

    for path in factor_sheets(args.out, count=args.count, seed=args.seed, scene_index=args.scene, palette=args.palette):
        print(f"wrote {path}")
    return 0


def _summary(args) -> int:
    from igllm_ros.data.dataset import SceneDataset
    from igllm_ros.data.summary import format_summary, summarize

    dataset = SceneDataset(args.data)
    meta = dataset.meta
    title = f"== {args.data}: split {meta['split']}, seed {meta['seed']}, {meta['width']}x{meta['height']}"
    print(format_summary(summarize(dataset.records()), title=title))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igllm-data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="render a split to <out>/<split>/ (resumes an interrupted run)")
    gen.add_argument("--split", required=True, choices=list(SPLITS) + ["all"])
    gen.add_argument("--count", type=int, default=None, help="samples (default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_COUNTS.items()) + ")")
    gen.add_argument("--out", default="data/")
    gen.add_argument("--width", type=int, default=320)
    gen.add_argument("--height", type=int, default=240)
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED)
    gen.add_argument("--workers", type=int, default=_default_workers(), help="worker processes, each with its own EGL context")
    gen.add_argument("--lp-threads", type=int, default=None, help="LP_NUM_THREADS per worker (Mesa llvmpipe)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(run=_generate)

    show = sub.add_parser("show", help="write a contact sheet PNG with the ground truth drawn on")
    show.add_argument("--data", required=True, help="a split folder, e.g. data/val_id")
    show.add_argument("--out", required=True)
    show.add_argument("--count", type=int, default=16)
    show.add_argument("--start", type=int, default=0)
    show.add_argument("--cols", type=int, default=4)
    show.add_argument("--no-legend", action="store_true")
    show.add_argument("--palette", action="store_true", help="256-colour PNG (small files)")
    show.set_defaults(run=_show)

    factors = sub.add_parser("factors", help="one contact sheet per randomization factor group (dr_<group>.png)")
    factors.add_argument("--out", required=True, help="a folder, e.g. docs/figures")
    factors.add_argument("--count", type=int, default=8, help="looks per sheet")
    factors.add_argument("--seed", type=int, default=DEFAULT_SEED)
    factors.add_argument("--scene", type=int, default=8, help="which val_id sample to draw")
    factors.add_argument("--palette", action="store_true", help="256-colour PNGs (small files)")
    factors.set_defaults(run=_factors)

    summary = sub.add_parser("summary", help="counts and attribute histograms of a split folder")
    summary.add_argument("--data", required=True)
    summary.set_defaults(run=_summary)
    return parser


def main(argv=None) -> int:
    from igllm_ros.data.dataset import DatasetError
    from igllm_ros.data.rgb_renderers import RendererUnavailable

    args = build_parser().parse_args(argv)
    if args.command == "generate" and (args.width <= 0 or args.height <= 0):
        print("igllm-data: --width and --height must be positive", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except (DatasetError, ValueError, FileNotFoundError, RendererUnavailable) as err:
        print(f"igllm-data: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("igllm-data: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
