"""igllm-eval: the paper's metrics for a model on one split, as a table, JSON and pictures.

    igllm-eval --model models/igllm-lite0-cycles2 --data data/val_id [--count N] [--out DIR]
    igllm-eval --model models/igllm-lite0-cycles2 --data generator:val_cogent_b --count 200

Works for every model kind igllm_ros.model_kinds.load reads (IG-LLM and the baseline).
Writes DIR/metrics.json and DIR/grid.png: inputs beside re-rendered reconstructions for
the worst and the best scenes (ranked by per-scene AP, then location error).
`evaluate_model` and `run_evaluation` are the library entry points (training's validation
and the accuracy benchmark use them).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from igllm_ros import metrics as scene_metrics
from igllm_ros.metrics import TABLE_ROWS, format_value
from igllm_ros.reconstruction import Reconstruction
from igllm_ros.strict_json import json_ready

@dataclass
class Evaluation:
    metrics: dict  # igllm_ros.metrics.evaluate keys + decode figures (seconds/steps per scene)
    reconstructions: list[Reconstruction]
    per_scene: list[dict]  # one per sample: counts, location error, mean AP, score


def predict(model, images: list[np.ndarray], batch_size: int = 16, max_objects: int = 10, progress: bool = False) -> list[Reconstruction]:
    """model.reconstruct over `images` in batches."""
    from tqdm import tqdm

    results: list[Reconstruction] = []
    with tqdm(total=len(images), desc="reconstruct", unit="scene", disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            results.extend(model.reconstruct(chunk, max_objects=max_objects))
            bar.update(len(chunk))
    if len(results) != len(images):
        raise RuntimeError(f"{getattr(model, 'name', 'model')} returned {len(results)} reconstructions for {len(images)} images")
    return results


def run_evaluation(model, samples, batch_size: int = 16, max_objects: int = 10, progress: bool = False) -> Evaluation:
    """Reconstruct every sample's image and score it against the sample's scene."""
    if not samples:
        raise ValueError("no samples to evaluate")
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        start = time.perf_counter()
        recons = predict(model, [s.image for s in samples], batch_size, max_objects, progress)
        seconds = time.perf_counter() - start
    finally:
        if was_training:
            model.train()
    pairs = [(r.scene, s.scene) for r, s in zip(recons, samples)]
    result = scene_metrics.evaluate(pairs)
    result["seconds_per_scene"] = seconds / len(samples)
    result["steps_per_scene"] = float(np.mean([r.steps for r in recons]))
    per_scene = [_scene_score(i, pred, true) for i, (pred, true) in enumerate(pairs)]
    return Evaluation(result, recons, per_scene)


def evaluate_model(model, samples, batch_size: int = 16, max_objects: int = 10, progress: bool = False) -> dict:
    """The metrics dict of run_evaluation (igllm_ros.metrics.evaluate keys + decode figures)."""
    return run_evaluation(model, samples, batch_size, max_objects, progress).metrics


def _scene_score(index: int, pred, true) -> dict:
    m = scene_metrics.evaluate([(pred, true)])
    aps = [m[scene_metrics.ap_key(t)] for t in scene_metrics.AP_THRESHOLDS_M]
    ap_mean = float(np.mean([0.0 if math.isnan(a) else a for a in aps]))
    return {
        "index": index,
        "true_objects": len(true.objects),
        "pred_objects": len(pred.objects),
        "location_error_m": m["location_error_m"],
        "ap_mean": ap_mean,
    }


def rank_scenes(per_scene: list[dict]) -> list[dict]:
    """Worst first: lowest mean AP, then largest location error (no match counts as worst)."""
    def key(s):
        loc = s["location_error_m"]
        return (s["ap_mean"], -(math.inf if loc is None or math.isnan(loc) else loc))

    return sorted(per_scene, key=key)


def format_table(metrics: dict, title: str = "") -> str:
    lines = [title] if title else []
    width = max(len(label) for _, label, _ in TABLE_ROWS)
    for key, label, fmt in TABLE_ROWS:
        lines.append(f"  {label:<{width}}  {format_value(metrics.get(key), fmt):>8}")
    return "\n".join(lines)


def render_grid(samples, evaluation: Evaluation, path: Path, per_side: int = 4, title: str = "") -> None:
    """PNG: for the `per_side` worst and best scenes, the input beside the reconstruction
    rendered with the input's (true) camera, so every difference is an object error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from igllm_ros.data.render import SceneRenderer

    ranked = rank_scenes(evaluation.per_scene)
    per_side = min(per_side, (len(ranked) + 1) // 2)
    worst, best = ranked[:per_side], ranked[::-1][:per_side]
    height, width = samples[0].image.shape[:2]
    renderer = SceneRenderer(width, height)
    try:
        fig, axes = plt.subplots(per_side, 4, figsize=(4 * 2.6, per_side * 2.1), squeeze=False)
        for column, (label, chosen) in enumerate((("worst", worst), ("best", best))):
            for row, score in enumerate(chosen):
                sample = samples[score["index"]]
                pred = evaluation.reconstructions[score["index"]].scene
                shown = replace(pred, camera=sample.scene.camera)
                if sample.image.shape[:2] != (height, width):
                    renderer.release()
                    height, width = sample.image.shape[:2]
                    renderer = SceneRenderer(width, height)
                rendered = renderer.render(shown).rgb
                loc = score["location_error_m"]
                loc_text = "n/a" if loc is None or math.isnan(loc) else f"{1000 * loc:.1f} mm"
                ax_in, ax_out = axes[row][2 * column], axes[row][2 * column + 1]
                ax_in.imshow(sample.image)
                ax_in.set_title(f"{label} #{score['index']}: input ({score['true_objects']} obj)", fontsize=7)
                ax_out.imshow(rendered)
                ax_out.set_title(f"recon {score['pred_objects']} obj, AP {score['ap_mean']:.2f}, L2 {loc_text}", fontsize=7)
        for ax in axes.flat:
            ax.axis("off")
        if title:
            fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
    finally:
        renderer.release()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="igllm-eval", description="Evaluate a model on one split: the paper's table, metrics.json, a grid PNG.")
    p.add_argument("--model", required=True, help="model directory (e.g. models/igllm-lite0-cycles2)")
    p.add_argument("--data", required=True, help="dataset directory (data/val_id) or generator:SPLIT (fresh renders)")
    p.add_argument("--count", type=int, default=None, help="evaluate the first N scenes (generator default: 200)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (generator:SPLIT only)")
    p.add_argument("--size", default=None, help="generator image size WxH (default: the model's input size)")
    p.add_argument("--out", default=None, help="output directory (default: out/eval/<model>-<data>)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, float32 on CPU) | float32 | bfloat16 | float16")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-objects", type=int, default=10)
    p.add_argument("--grid", type=int, default=4, help="worst and best scenes shown in grid.png (0: no grid)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except EvalError as err:
        print(f"igllm-eval: error: {err}", file=sys.stderr)
        return 2


class EvalError(RuntimeError):
    pass


def _run(args) -> int:
    import torch

    from igllm_ros.model.samples import DataSpec, load_samples
    from igllm_ros.devices import describe_device, resolve_device, resolve_dtype

    if args.count is not None and args.count < 1:
        raise EvalError("--count must be >= 1")
    try:
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.dtype, device)
        spec = DataSpec.parse(args.data)
    except ValueError as err:
        raise EvalError(str(err)) from err
    if spec.source == "generator":
        size = None
        if args.size:
            try:
                w, h = (int(v) for v in args.size.lower().split("x"))
                size = (w, h)
            except ValueError:
                raise EvalError(f"--size {args.size!r}: expected WxH, e.g. 320x240") from None
        spec = DataSpec("generator", split=spec.split, seed=args.seed, size=size)
    model_path = Path(args.model)
    model = _load_model(model_path, device, dtype)
    name = getattr(model, "name", None) or model_path.name
    if spec.source == "generator" and spec.size is None:
        spec = replace(spec, size=tuple(model.input_size))  # render at the size the model reads
    try:
        samples = load_samples(spec, default_size=tuple(model.input_size), count=args.count)
    except (OSError, ValueError, KeyError) as err:
        raise EvalError(f"cannot read data {args.data!r}: {err}") from err
    if not samples:
        raise EvalError(f"data {args.data!r} holds no samples")
    data_name = spec.split if spec.source == "generator" else Path(spec.path).name
    out = Path(args.out) if args.out else Path("out/eval") / f"{model_path.name}-{data_name}"
    with torch.inference_mode():
        evaluation = run_evaluation(model, samples, args.batch_size, args.max_objects, progress=True)
    m = evaluation.metrics
    title = (
        f"{name} on {spec.describe()}: {len(samples)} scenes, {describe_device(device)} {str(dtype).replace('torch.', '')}, "
        f"{1000 * m['seconds_per_scene']:.1f} ms/scene, {m['steps_per_scene']:.1f} model steps/scene"
    )
    print(format_table(m, title))
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "model": name,
        "model_path": str(model_path),
        "data": spec.to_dict() | {"count": len(samples)},
        "device": describe_device(device),
        "dtype": str(dtype).replace("torch.", ""),
        "metrics": m,
        "per_scene": evaluation.per_scene,
    }
    (out / "metrics.json").write_text(json.dumps(json_ready(report), indent=1))
    print(f"wrote {out / 'metrics.json'}")
    if args.grid > 0:
        try:
            render_grid(samples, evaluation, out / "grid.png", per_side=args.grid, title=f"{name} on {data_name}: worst (left) and best (right)")
            print(f"wrote {out / 'grid.png'}")
        except (ImportError, RuntimeError, OSError) as err:  # no OpenGL here: the metrics still stand
            print(f"igllm-eval: warning: no grid.png, the renderer failed: {err}", file=sys.stderr)
    return 0


def _load_model(path: Path, device, dtype):
    from igllm_ros import model_kinds

    if not path.exists():
        raise EvalError(f"model directory {str(path)!r} does not exist")
    try:
        return model_kinds.load(path, device=str(device), dtype=dtype)
    except model_kinds.ModelLoadError as err:
        raise EvalError(f"cannot load model {str(path)!r}: {err}") from err


if __name__ == "__main__":
    sys.exit(main())
