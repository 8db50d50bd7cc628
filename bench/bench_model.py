"""Model benchmark: training throughput, decode latency, model steps per scene.

    python bench/bench_model.py --model models/igllm-tiny-float [--device all|cpu|cuda] [--threads 1]
        [--path auto|fast|generic] [--clock wall|cpu] [--json out.json] [--data DIR]

Prints, per device (CPU, and CUDA when available unless --device picks one):
- training samples/s: training_loss + backward + AdamW step on rendered train scenes
  (bf16 autocast on CUDA, as igllm-train does);
- decode latency per scene, p50 / p95 (and the p50 of this process's CPU time, which a
  shared machine inflates less), for rendered 3-object and 10-object scenes, one image
  at a time (what the node does), and per scene in a batch of --batch images;
- model forward passes per scene with and without forced-token skipping (IG-LLM's
  reconstruct(skip_forced=...); n/a for models without it, e.g. the baseline);
- IG-LLM only: the decoding path (fast-llama or transformers, --path) and a stage
  breakdown per scene size, batch 1 and --batch: vision tower, projector, prefill, decode
  passes (and one pass), Python glue with the grammar (decode.StageTimer); the tokens a
  decode pass feeds and the matmul GFLOP/s the passes reach, beside a plain 256x256 matmul
  loop's rate on the same device (how far the passes are from the arithmetic limit).
Issue 15's targets for the shipped default on 1 CPU thread: a 10-object scene p50 <= 30 ms,
p95 <= 35 ms; 3 objects <= 20 ms; batch 8 <= 15 ms per scene.
"""
from __future__ import annotations

import argparse
import functools
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from igllm_ros.devices import describe_device, resolve_device, resolve_dtype  # noqa: E402
from igllm_ros.reconstruction import DEFAULT_MODEL  # noqa: E402


def scenes_with_counts(counts: tuple[int, ...], per_count: int, size: tuple[int, int], seed: int, data: str | None = None) -> dict[int, list]:
    """val_id samples with exactly each object count: rendered from the stream, or read
    from a dataset directory (`data`, e.g. where no OpenGL is installed)."""
    if data:
        from igllm_ros.data.dataset import SceneDataset

        dataset = SceneDataset(data)
        source = (dataset[i] for i in range(len(dataset)))
    else:
        from igllm_ros.data.stream import generate_samples

        source = generate_samples("val_id", seed, *size)
    found = {c: [] for c in counts}
    for drawn, sample in enumerate(source):
        n = len(sample.scene.objects)
        if n in found and len(found[n]) < per_count:
            found[n].append(sample)
        if all(len(v) >= per_count for v in found.values()):
            return found
        if drawn > 200 * per_count * len(counts):
            break
    if not all(found.values()):
        raise RuntimeError(f"found no scenes with {[c for c, v in found.items() if not v]} objects")
    return found


def training_throughput(model, samples: list, device: torch.device, batch_size: int, steps: int) -> float:
    """Samples/s over `steps` optimizer steps after one warm-up step."""
    groups = model.param_groups(1e-4, 1e-4, 0.0)
    for group in groups:
        for p in group["params"]:
            p.requires_grad_(True)
    optimizer = torch.optim.AdamW(groups)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    model.train()
    batches = [samples[(i * batch_size) % len(samples):][:batch_size] for i in range(steps + 1)]
    batches = [b if len(b) == batch_size else samples[:batch_size] for b in batches]
    try:
        elapsed = 0.0
        for i, chunk in enumerate(batches):
            sync(device)
            start = time.perf_counter()
            batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in model.collate(chunk, augment=True).items()}
            with autocast:
                loss, _ = model.training_loss(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync(device)
            if i > 0:
                elapsed += time.perf_counter() - start
        return steps * batch_size / elapsed
    finally:
        model.eval()


def decode_latencies(reconstruct, images: list[np.ndarray], device: torch.device, **kwargs) -> tuple[list[float], list[float]]:
    """Per image, one at a time: wall seconds and this process's CPU seconds (the CPU time
    is what the decoder itself costs when the machine is shared; wall is the latency)."""
    reconstruct(images[:1], **kwargs)  # warm-up
    times, cpu = [], []
    for image in images:
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        reconstruct([image], **kwargs)
        sync(device)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return times, cpu


def batched_ms_per_scene(reconstruct, images: list[np.ndarray], device: torch.device, batch: int, batches: int = 5) -> float:
    """ms per scene in batches of `batch` images: the median over `batches` batches (the
    images taken in turn), after a warm-up batch. One batch alone swung 2x here."""
    pool = images * (batch * (batches + 1) // len(images) + 1)
    chunks = [pool[i * batch:(i + 1) * batch] for i in range(batches + 1)]
    reconstruct(chunks[0])
    times = []
    for chunk in chunks[1:]:
        sync(device)
        start = time.perf_counter()
        reconstruct(chunk)
        sync(device)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times)) / batch


def steps_per_scene(reconstruct, images: list[np.ndarray], skip_forced: bool | None) -> float:
    kwargs = {} if skip_forced is None else {"skip_forced": skip_forced}
    return float(np.mean([r.steps for r in reconstruct(images, **kwargs)]))


def stage_breakdown(model, images: list[np.ndarray], device: torch.device, path: str, batch: int, clock: str = "wall") -> dict[str, float]:
    """IG-LLM only: ms per scene in each decoding stage (decode.StageTimer), one image at
    a time (batch 1) or `batch` at a time, plus passes per scene and ms per decode pass.
    The vision tower and the projector are told apart by hooks around the projector.
    clock "cpu" counts this thread's CPU time instead of wall time (a shared machine)."""
    from igllm_ros.model.decode import StageTimer, reconstruct

    timer = StageTimer(device, time.thread_time if clock == "cpu" else time.perf_counter)
    hooks = []
    projector = getattr(model, "projector", None)
    if projector is not None:
        hooks.append(projector.register_forward_pre_hook(lambda *_: timer.mark("vision tower")))
        hooks.append(projector.register_forward_hook(lambda *_: timer.mark("projector")))
    chunks = [images[i:i + batch] for i in range(0, len(images), batch)] if batch > 1 else [[im] for im in images]
    try:
        reconstruct(model, chunks[0], path=path)  # warm-up
        scenes = 0
        for chunk in chunks:
            timer.restart()
            reconstruct(model, chunk, path=path, timer=timer)
            scenes += len(chunk)
    finally:
        for hook in hooks:
            hook.remove()
    seconds = dict(timer.seconds)
    if hooks:  # the hooks have split it: what is left is the return from encode_images
        seconds["projector"] = seconds.get("projector", 0.0) + seconds.pop("vision + projector", 0.0)
    result = {stage: 1000.0 * s / scenes for stage, s in seconds.items()}
    result["total"] = sum(result.values())
    # A pass serves the whole batch: passes per batch, and one pass's wall time.
    result["passes"] = timer.passes / len(chunks)
    decode_passes = max(timer.passes - len(chunks), 1)
    result["ms per decode pass"] = 1000.0 * seconds.get("decode passes", 0.0) / decode_passes
    # How close the decode passes come to the arithmetic: their matmul work per second.
    result["tokens per decode pass"] = timer.decode_tokens / decode_passes
    if seconds.get("decode passes"):
        result["decode passes GFLOP/s"] = timer.decode_tokens * llm_matmul_flops_per_token(model) / seconds["decode passes"] / 1e9
    return result


def llm_matmul_flops_per_token(model) -> float:
    """FLOPs of the LLM layers' weight matmuls for one token (q, k, v, o, gate, up,
    down); attention over the cache, norms and the heads are left out (a few %)."""
    config = model.llm.config
    hidden, layers = config.hidden_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    qkv = hidden * head_dim * (config.num_attention_heads + 2 * config.num_key_value_heads)
    return 2.0 * layers * (qkv + config.num_attention_heads * head_dim * hidden + 3 * hidden * config.intermediate_size)


def matmul_gflops(device: torch.device, size: int = 256, repeats: int = 400) -> float:
    """This machine's float32 rate on a plain size x size matmul loop (the reference that
    issue 15 calls the arithmetic limit: about 100 GFLOP/s on 1 thread of the 2-core CPU)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(20):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2.0 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_device(path: str, device: torch.device, args) -> dict:
    from igllm_ros.model_kinds import load  # any kind (the baseline too)

    dtype = resolve_dtype(args.dtype, device)
    model = load(path, device=str(device), dtype=dtype)
    size = tuple(model.input_size)
    scenes = scenes_with_counts((3, 10), args.scenes, size, seed=args.seed, data=args.data)
    is_igllm = hasattr(model, "grammar")  # IG-LLM's decoder: paths, stage breakdown
    reconstruct = model.reconstruct
    result = {
        "model": getattr(model, "name", Path(path).name),
        "device": describe_device(device),
        "dtype": str(dtype).replace("torch.", ""),
        "input_size": list(size),
        "parameters": sum(p.numel() for p in model.parameters()),
        "clock": args.clock,
    }
    if is_igllm:
        from igllm_ros.model import decode

        reconstruct = functools.partial(decode.reconstruct, model, path=args.path)
        result["decoder"] = decode.describe_path(model) if args.path == "auto" else decode.llm_path(model, args.path)
    has_skip = "skip_forced" in inspect.signature(reconstruct).parameters
    with torch.inference_mode():
        for count, samples in scenes.items():
            images = [s.image for s in samples]
            times, cpu = (np.array(t) * 1000.0 for t in decode_latencies(reconstruct, images, device))
            result[f"decode_{count}obj_p50_ms"] = float(np.percentile(times, 50))
            result[f"decode_{count}obj_p95_ms"] = float(np.percentile(times, 95))
            result[f"decode_{count}obj_cpu_p50_ms"] = float(np.percentile(cpu, 50))
            result[f"decode_{count}obj_batch{args.batch}_ms_per_scene"] = batched_ms_per_scene(reconstruct, images, device, args.batch)
            # Latency follows what the model writes: show how many objects it wrote.
            result[f"predicted_objects_{count}obj"] = float(np.mean([len(r.scene.objects) for r in reconstruct(images)]))
            result[f"steps_{count}obj_skip"] = steps_per_scene(reconstruct, images, True if has_skip else None)
            result[f"steps_{count}obj_noskip"] = steps_per_scene(reconstruct, images, False) if has_skip else None
            if is_igllm:
                for batch in (1, args.batch):
                    result[f"stages_{count}obj_batch{batch}"] = stage_breakdown(model, images, device, args.path, batch, args.clock)
        if is_igllm:
            result["matmul_gflops_256"] = matmul_gflops(device)
    # Training in float32 weights (as igllm-train keeps them), bf16 autocast on CUDA.
    if args.train_steps > 0:
        del model
        model = load(path, device=str(device), dtype=torch.float32)
        train_samples = [s for group in scenes.values() for s in group]
        result["train_samples_per_s"] = training_throughput(model, train_samples, device, args.train_batch, args.train_steps)
        result["train_batch"] = args.train_batch
    return result


def format_table(results: list[dict], args) -> str:
    def cell(value, fmt="{:.1f}"):
        return "n/a" if value is None else fmt.format(value)

    rows = [
        ("training samples/s (batch %d)" % args.train_batch, "train_samples_per_s", "{:.1f}"),
        ("decode 3 obj p50 (ms)", "decode_3obj_p50_ms", "{:.1f}"),
        ("decode 3 obj p95 (ms)", "decode_3obj_p95_ms", "{:.1f}"),
        ("decode 3 obj p50 CPU time (ms)", "decode_3obj_cpu_p50_ms", "{:.1f}"),
        ("decode 10 obj p50 (ms)", "decode_10obj_p50_ms", "{:.1f}"),
        ("decode 10 obj p95 (ms)", "decode_10obj_p95_ms", "{:.1f}"),
        ("decode 10 obj p50 CPU time (ms)", "decode_10obj_cpu_p50_ms", "{:.1f}"),
        ("objects written for 3-object scenes", "predicted_objects_3obj", "{:.1f}"),
        ("objects written for 10-object scenes", "predicted_objects_10obj", "{:.1f}"),
        (f"decode 3 obj, batch {args.batch} (ms/scene)", f"decode_3obj_batch{args.batch}_ms_per_scene", "{:.1f}"),
        (f"decode 10 obj, batch {args.batch} (ms/scene)", f"decode_10obj_batch{args.batch}_ms_per_scene", "{:.1f}"),
        ("model steps/scene 3 obj, skip forced", "steps_3obj_skip", "{:.1f}"),
        ("model steps/scene 3 obj, no skip", "steps_3obj_noskip", "{:.1f}"),
        ("model steps/scene 10 obj, skip forced", "steps_10obj_skip", "{:.1f}"),
        ("model steps/scene 10 obj, no skip", "steps_10obj_noskip", "{:.1f}"),
    ]
    first = results[0]
    lines = [f"{first['model']}: {first['parameters'] / 1e6:.2f} M parameters, input {first['input_size'][0]}x{first['input_size'][1]}, up to {args.scenes} scenes per count"]
    if "decoder" in first:
        lines[0] += f", decoder {first['decoder']}"
    width = max(len(r[0]) for r in rows)
    header = f"  {'':<{width}}" + "".join(f"  {r['device'] + ' ' + r['dtype']:>28}" for r in results)
    lines.append(header)
    for label, key, fmt in rows:
        lines.append(f"  {label:<{width}}" + "".join(f"  {cell(r.get(key), fmt):>28}" for r in results))
    for r in results:
        lines += format_stages(r, args.batch)
        if r.get("matmul_gflops_256"):
            lines.append(f"  reference: a 256x256 float32 matmul loop here runs at {r['matmul_gflops_256']:.1f} GFLOP/s")
    return "\n".join(lines)


def format_stages(result: dict, batch: int) -> list[str]:
    """The stage breakdown (ms per scene) of one device, a column per scene size and batch."""
    columns = [(c, b) for c in (3, 10) for b in (1, batch) if f"stages_{c}obj_batch{b}" in result]
    if not columns:
        return []
    tables = [result[f"stages_{c}obj_batch{b}"] for c, b in columns]
    extra = {"total": "total (ms/scene)", "passes": "passes (per batch)", "ms per decode pass": "one decode pass (ms)",
             "tokens per decode pass": "tokens per decode pass (batch)", "decode passes GFLOP/s": "decode passes, matmul GFLOP/s"}
    stages = [s for s in tables[0] if s not in extra]
    labels = [f"{s} (ms/scene)" for s in stages] + list(extra.values())
    keys = stages + list(extra)
    width = max(len(label) for label in labels)
    lines = [f"stage breakdown ({result['clock']} time), {result['device']} {result['dtype']}:", f"  {'':<{width}}" + "".join(f"  {f'{c} obj, batch {b}':>16}" for c, b in columns)]
    for label, key in zip(labels, keys):
        lines.append(f"  {label:<{width}}" + "".join(f"  {t.get(key, 0.0):>16.2f}" for t in tables))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--device", default="all", help="all (CPU, and CUDA when available) | auto | cpu | cuda")
    p.add_argument("--dtype", default="auto", help="decode dtype: auto (bf16 on CUDA, float32 on CPU) | float32 | bfloat16")
    p.add_argument("--scenes", type=int, default=20, help="scenes per object count (3 and 10)")
    p.add_argument("--batch", type=int, default=8, help="batch size for the batched-decode figure")
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--path", default="auto", choices=("auto", "fast", "generic"), help="IG-LLM decoding path: auto (fast where supported) | fast | generic (transformers)")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"), help="stage breakdown in wall time, or in CPU time (CPU device on a shared machine)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--data", default=None, help="take scenes from this dataset directory instead of rendering them")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.model).is_dir():
        print(f"bench_model: no model directory {args.model!r}; train one (docs/training.md) or pass --model", file=sys.stderr)
        return 2
    if args.device == "all":
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    else:
        devices = [resolve_device(args.device)]
    results = [bench_device(args.model, device, args) for device in devices]
    print(format_table(results, args))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
