"""Benchmark the synthetic data pipeline: images per second.

For each size (4:3: 160x120 and 320x240 by default) it prints
  render      SceneRenderer.render (RGB + mask + depth) of pre-sampled scenes, one process;
              "randomized": train_robust's looks, sensor effects included
  sample      sample_scene (placement + visibility renders), one process
  generate    the whole pipeline as `igllm-data generate` runs it (sampling + render +
              ground truth + PNG + JSON lines), with 1 worker and with N workers, for
              `train` (nominal look) and `train_robust` (domain randomization + robot
              camera poses)
Each figure is measured in a fresh process, so LP_NUM_THREADS (Mesa llvmpipe's
rasterizer threads) applies to it. Besides wall-clock img/s it prints the CPU time per
image (all threads and workers): on a shared machine that is the steadier figure, and
cores x 1000 / (CPU ms) is the rate the machine gives when nobody else uses it.
Each row runs --repeat times (fresh processes) and prints the median with the range: one
run on this shared 2-core machine has swung from 46 to 69 img/s on an idle day. A
`generate` figure includes the pool's start (about 0.7 s: spawning the workers, imports,
llvmpipe's shader compiles), so a longer run gives a higher rate.
Target: generation >= 50 img/s at 320x240 on the 2-core development machine, with and
without randomization.

    python bench/bench_data.py [--sizes 160x120 320x240] [--count 300] [--workers 2] [--lp-threads 1 2] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (worker pools), all threads."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _one(kind: str, width: int, height: int, count: int, workers: int, lp_threads: int, split: str = "train") -> dict:
    """Runs inside the child process: one measurement (wall img/s and CPU ms per image)."""
    import numpy as np

    if kind == "generate":
        from igllm_ros.data.writer import generate

        with tempfile.TemporaryDirectory() as out:
            start, cpu = time.perf_counter(), _cpu_seconds()
            generate(out, split, count, seed=0, width=width, height=height, workers=workers, lp_threads=lp_threads, progress=False)
            seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        return {"img_s": count / seconds, "seconds": seconds, "cpu_ms": 1000.0 * cpu / count}

    from igllm_ros.data.records import render_spec
    from igllm_ros.data.render import SceneRenderer
    from igllm_ros.data.sampling import sample_scene

    renderer = SceneRenderer(width, height)
    rng = np.random.default_rng(0)
    if kind == "sample":
        sample_scene(rng, split, width, height, renderer)  # compile shaders first
        start, cpu = time.perf_counter(), _cpu_seconds()
        for _ in range(count):
            sample_scene(rng, split, width, height, renderer)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    else:
        specs = [sample_scene(rng, split, width, height, renderer) for _ in range(50)]
        for spec in specs:
            render_spec(spec, renderer)  # compiles the programs a look needs
        start, cpu = time.perf_counter(), _cpu_seconds()
        for i in range(count):
            spec = specs[i % 50]
            renderer.render_labels(spec.scene)
            render_spec(spec, renderer)  # RGB (randomized look and sensor effects where the split has them)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    info = renderer.gl_renderer
    renderer.release()
    return {"img_s": count / seconds, "seconds": seconds, "cpu_ms": 1000.0 * cpu / count, "gl": info}


def _measure(kind, width, height, count, workers, lp_threads, split="train") -> dict:
    env = dict(os.environ, LP_NUM_THREADS=str(lp_threads), PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    args = [sys.executable, __file__, "--one", json.dumps([kind, width, height, count, workers, lp_threads, split])]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} {width}x{height} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["160x120", "320x240"])
    parser.add_argument("--count", type=int, default=300, help="images per measurement")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="workers of the parallel generation run")
    parser.add_argument("--lp-threads", type=int, nargs="+", default=[1, 2], help="LP_NUM_THREADS values to try")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the median is printed")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(*json.loads(args.one))))
        return 0

    load = os.getloadavg()
    print(f"cpus {os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (a shared machine: figures vary)")
    print(f"{'size':>8s}  {'what':44s} {'LP threads':>10s} {'img/s':>8s} {'(range)':>13s} {'CPU ms/img':>11s}")
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        for lp in args.lp_threads:
            rows = [
                ("render (rgb+mask+depth)", "render", 1, "train"),
                ("render, randomized look + sensor", "render", 1, "train_robust"),
                ("sample (with visibility)", "sample", 1, "train"),
                ("sample, robot camera + look", "sample", 1, "train_robust"),
                ("generate train, 1 worker", "generate", 1, "train"),
                ("generate train_robust, 1 worker", "generate", 1, "train_robust"),
                (f"generate train, {args.workers} workers", "generate", args.workers, "train"),
                (f"generate train_robust, {args.workers} workers", "generate", args.workers, "train_robust"),
            ]
            for label, kind, workers, split in rows:
                runs = [_measure(kind, width, height, args.count, workers, lp, split) for _ in range(max(1, args.repeat))]
                rate, cpu = statistics.median(r["img_s"] for r in runs), statistics.median(r["cpu_ms"] for r in runs)
                spread = f"{min(r['img_s'] for r in runs):.1f}-{max(r['img_s'] for r in runs):.1f}"
                print(f"{size:>8s}  {label:44s} {lp:>10d} {rate:8.1f} {spread:>13s} {cpu:11.1f}", flush=True)
        print()
    print(f"renderer: {_measure('render', 64, 48, 5, 1, 1)['gl']}")
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
