#!/usr/bin/env python3
"""Build a preset's frozen-tower feature caches before training, one process per view.

igllm-train builds the caches it needs on its first run, one view after the other in one
process; the recoloured and reshaped views re-render every scene, so on a multi-core
machine building them side by side saves most of that wait. The caches are the ones
igllm-train reads (model/feature_cache.py: same keys, resumable), so training then
starts at once:

    python scripts/cache_features.py --config config/train/lite0-views.yaml \
        --set data.train=features:data2/train_robust
    igllm-train --config config/train/lite0-views.yaml --set data.train=features:data2/train_robust --out runs/x
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys

import torch


def _build(config: str, overrides: list[str], path: str, view: str, threads: int) -> str:
    from igllm_ros import model_kinds
    from igllm_ros.model import feature_cache
    from igllm_ros.model.training.preset import load_preset

    torch.set_num_threads(threads)
    preset = load_preset(config, overrides)
    model = model_kinds.build(preset.model)
    folder = feature_cache.build(model, path, view=view, progress=False)
    return f"{path} {view}: {folder}"


def _views(config: str, overrides: list[str]) -> tuple[list[str], list[str]]:
    from igllm_ros.model.config import ModelConfig
    from igllm_ros.model.training.preset import load_preset
    from igllm_ros.model.views import extra_views

    preset = load_preset(config, overrides)
    if preset.train_data.source != "features":
        raise SystemExit(f"cache_features: data.train is {preset.train_data.source}:, not features:")
    return list(preset.train_data.paths), ["colour", *extra_views(ModelConfig.from_dict(preset.model))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--processes", type=int, default=max(1, multiprocessing.cpu_count()))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args()
    paths, views = _views(args.config, args.set)
    jobs = [(args.config, args.set, path, view, args.threads) for path in paths for view in views]
    print(f"cache_features: {len(jobs)} caches ({', '.join(views)} of {', '.join(paths)}) in {min(args.processes, len(jobs))} processes", flush=True)
    # spawn: each worker opens its own OpenGL context for the re-rendered views
    with multiprocessing.get_context("spawn").Pool(min(args.processes, len(jobs))) as pool:
        for line in pool.starmap(_build, jobs):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
