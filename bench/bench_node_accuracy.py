"""Accuracy through igllm_node over DDS: the same metrics as bench_accuracy, as a robot meets the model.

    python bench/bench_node_accuracy.py [--models models/igllm-tiny-float models/compare/...]
        [--splits val_id val_cogent_b val_param val_visual val_camera val_cycles val_eevee] [--data data/]
        [--count 100] [--render-cycles] [--timeout 30] [--out out/bench_node_accuracy] [--markdown FILE]

For each model directory, igllm_node runs as a separate process (igllm_ros.ros.processes)
with that model on the CPU, float32, one torch thread, in a namespace of its own. This
script is an outside client in its own rclpy context: it publishes each dataset image as a
sensor_msgs/Image (rgb8) with a matching sensor_msgs/CameraInfo (the pinned camera at the
image's size) on the node's `image` and `camera_info` topics, one at a time, and waits for
the `scene` message with the same header stamp before sending the next. Best-effort images
can be lost, so an unanswered image is sent again (new stamp) every --resend seconds; after
--timeout seconds it counts as lost. Each Scene message goes back to the table frame with
igllm_ros.ros.conversions.msg_to_scene and is scored against the dataset's ground truth
with igllm_ros.metrics.evaluate, as bench_accuracy scores the model called directly;
latencies are the node's own (the Scene message's timing fields).

Splits are read from dataset folders `DATA/<split>/` (`igllm-data generate --split S
--count N --out DATA`); a missing or short folder is rendered first (moderngl), except
val_cycles and val_eevee (Blender, seconds per image), which are rendered only with
--render-cycles and else skipped when absent. Prints one table (rows: split x model), writes OUT/results.json and,
with --markdown, the table as markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_accuracy import SHORT, Budget  # noqa: E402  (the sibling table's column names, model cards)

from igllm_ros import metrics  # noqa: E402
from igllm_ros.data.dataset import DatasetError, SceneDataset, read_meta  # noqa: E402
from igllm_ros.reconstruction import CONFIG_FILE, DEFAULT_MODEL  # noqa: E402
from igllm_ros.reconstruction import PREVIOUS_MODEL as PREVIOUS_DEFAULT  # noqa: E402  (benchmarked too when present)
from igllm_ros.strict_json import json_ready  # noqa: E402

SPLITS = ("val_id", "val_cogent_b", "val_param", "val_visual", "val_camera", "val_cycles", "val_eevee")
BLENDER_SPLITS = ("val_cycles", "val_eevee")  # rendered by Blender (Cycles, EEVEE): seconds per image
DATA_SEED, DATA_WIDTH, DATA_HEIGHT = 0, 320, 240  # igllm-data generate's defaults
NODE_PARAMS = {"device": "cpu", "dtype": "float32", "torch_threads": 1, "publish_debug_image": False}
FRAME_ID = "camera_optical_frame"

# Metric columns (keys of igllm_ros.metrics.evaluate, shown as its TABLE_ROWS say), then the node's.
METRIC_KEYS = ("count_exact", "location_error_m", "acc_shape", "acc_color", "acc_material", "acc_size",
               "yaw_error_deg", "ap_0.0125m")
COLUMNS = tuple((key, SHORT.get(key, label), fmt) for key, label, fmt in metrics.TABLE_ROWS if key in METRIC_KEYS) + (
    ("latency_ms_p50", "lat p50", "{:.0f}"),
    ("latency_ms_p95", "lat p95", "{:.0f}"),
    ("inference_ms_p50", "model ms", "{:.0f}"),
    ("answered", "answered", "{:.0f}"),
    ("lost", "lost", "{:.0f}"),
)
LEGEND = ("cnt ok% = scenes with the exact object count; L2 mm = mean location error of Hungarian-matched objects "
          "(table frame); shape% excludes true spheres; yaw deg = cube yaw error modulo 90; AP12.5 = AP @ 12.5 mm "
          "(all attributes right); lat p50/p95 = the node's latency_ms (image stamp to publication), model ms = "
          "its inference_time_ms (median); answered/lost = frames answered / unanswered after the timeout")


class BenchError(RuntimeError):
    """A model, dataset or node problem that stops the benchmark (the message says what)."""


# ----------------------------------------------------------------------------- models
@dataclass
class ModelEntry:
    label: str
    path: Path
    budget: Budget


def model_label(path: Path) -> str:
    """The directory relative to models/ (models/compare/x -> compare/x), else its path."""
    rel = _rel(path)
    return rel[len("models/"):] if rel.startswith("models/") else rel


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def default_models() -> list[str]:
    return [DEFAULT_MODEL] + ([PREVIOUS_DEFAULT] if (ROOT / PREVIOUS_DEFAULT).is_dir() else [])


def resolve_models(names: list[str]) -> list[ModelEntry]:
    """Model directories, relative to the working directory or the repository root."""
    entries = []
    for name in names:
        path = Path(name) if Path(name).is_dir() or Path(name).is_absolute() else ROOT / name
        if not (path / CONFIG_FILE).is_file():
            raise BenchError(f"--models {name!r}: {path} is not a model directory (no {CONFIG_FILE})")
        entries.append(ModelEntry(model_label(path), path.resolve(), Budget.read(path)))
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise BenchError(f"--models: the same model twice ({labels})")
    return entries


# ----------------------------------------------------------------------------- data
def split_dataset(data: Path, split: str, count: int, render_cycles: bool, workers: int) -> SceneDataset | None:
    """DATA/<split> with at least `count` samples (rendered or extended first when needed),
    or None when the split is skipped (a Blender split without --render-cycles; a message says so)."""
    folder = data / split
    try:
        dataset = SceneDataset(folder)
        if len(dataset) >= count:
            return dataset
    except DatasetError:
        dataset = None
    if split in BLENDER_SPLITS and not render_cycles:
        if dataset is not None:
            print(f"{split}: {folder} holds {len(dataset)} of {count} samples; using those "
                  "(--render-cycles renders the rest with Blender, slow)", flush=True)
            return dataset
        print(f"{split}: skipped, no dataset at {folder} (rendering it takes Blender, slow: pass "
              f"--render-cycles, or run `igllm-data generate --split {split} --count {count} --out {data}`)", flush=True)
        return None
    return render_split(data, split, count, workers)


def render_split(data: Path, split: str, count: int, workers: int) -> SceneDataset:
    """Write or extend DATA/<split> with igllm_ros.data.writer.generate, with the folder's own
    seed and size when it already has some (igllm-data's defaults otherwise)."""
    from igllm_ros.data.rgb_renderers import RendererUnavailable
    from igllm_ros.data.writer import generate

    folder = data / split
    try:
        meta = read_meta(folder)
    except DatasetError:
        meta = {}
    seed, width, height = meta.get("seed", DATA_SEED), meta.get("width", DATA_WIDTH), meta.get("height", DATA_HEIGHT)
    print(f"{split}: rendering {count} samples into {folder} (seed {seed}, {width}x{height}) ...", flush=True)
    started = time.perf_counter()
    try:
        generate(data, split, count, seed=seed, width=width, height=height, workers=workers, progress=False)
    except (RendererUnavailable, DatasetError) as err:
        raise BenchError(f"{split}: cannot write {folder}: {err}") from err
    print(f"{split}: rendered in {time.perf_counter() - started:.0f} s", flush=True)
    return SceneDataset(folder)


# ----------------------------------------------------------------------------- the DDS client
@dataclass
class FrameResult:
    scene: object | None  # the node's Scene message, None when lost
    sends: int  # how often the image went out (1 unless it was resent)
    round_trip_ms: float  # first send to answer (nan when lost)


class NodeClient:
    """This benchmark's own rclpy context and node: publishes image + camera_info to one
    igllm_node (by namespace) and collects its Scene messages by header stamp."""

    def __init__(self, namespace: str):
        from sensor_msgs.msg import CameraInfo, Image

        from igllm_ros.msg import Scene
        from igllm_ros.ros import processes, qos

        self.watcher = processes.Watcher("igllm_bench_node_accuracy")
        node = self.watcher.node
        self.scene_topic = f"{namespace}/scene"
        self.image_pub = node.create_publisher(Image, f"{namespace}/image", qos.image_qos("best_effort", 1))
        self.info_pub = node.create_publisher(CameraInfo, f"{namespace}/camera_info", qos.image_qos("best_effort", 5))
        self.answers: dict[int, object] = {}  # stamp ns -> Scene message
        node.create_subscription(Scene, self.scene_topic, lambda m: self.answers.__setitem__(stamp_ns(m.header), m),
                                 qos.SCENE_QOS)
        self._last_stamp_ns = 0

    def close(self) -> None:
        self.watcher.close()

    def wait_until_connected(self, process, timeout: float) -> None:
        """Until the node (active, model loaded) subscribes to our image and publishes scenes."""
        end = time.monotonic() + timeout
        while not (self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0
                   and self.watcher.node.count_publishers(self.scene_topic) > 0):
            check_alive(process)
            if time.monotonic() > end:
                raise BenchError(f"igllm_node did not subscribe to {self.image_pub.topic_name} within {timeout:.0f} s "
                                 f"(model still loading on a loaded machine? raise --startup-timeout)\n{log_tail(process)}")
            self.watcher.executor.spin_once(timeout_sec=0.05)

    def reconstruct(self, rgb: np.ndarray, process, timeout: float, resend_s: float) -> FrameResult:
        """Send one image (again every resend_s, with a new stamp) until a Scene with one of its
        stamps comes back, or timeout seconds pass."""
        self.answers.clear()  # late answers to earlier images are not this image's
        sent: list[int] = []
        first = time.monotonic()
        deadline = first + timeout
        while time.monotonic() < deadline:
            sent.append(self._publish(rgb))
            resend_at = min(deadline, time.monotonic() + resend_s)
            while time.monotonic() < resend_at:
                self.watcher.executor.spin_once(timeout_sec=0.01)
                answer = next((self.answers[s] for s in sent if s in self.answers), None)
                if answer is not None:
                    return FrameResult(answer, len(sent), (time.monotonic() - first) * 1000.0)
                check_alive(process)
        return FrameResult(None, len(sent), float("nan"))

    def _publish(self, rgb: np.ndarray) -> int:
        """camera_info then image, one header with a fresh, strictly increasing stamp."""
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        from igllm_ros.ros.camera_sim import camera_info
        from igllm_ros.ros.conversions import rgb_image_msg
        from igllm_ros.ros.pinhole import Intrinsics

        now_ns = max(self.watcher.node.get_clock().now().nanoseconds, self._last_stamp_ns + 1)
        self._last_stamp_ns = now_ns
        header = Header(stamp=Time(sec=now_ns // 1_000_000_000, nanosec=now_ns % 1_000_000_000), frame_id=FRAME_ID)
        height, width = rgb.shape[:2]
        self.info_pub.publish(camera_info(header, Intrinsics.pinned(width, height)))
        self.image_pub.publish(rgb_image_msg(rgb, header))
        return now_ns


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def check_alive(process) -> None:
    if process.poll() is not None:
        raise BenchError(f"igllm_node exited with code {process.returncode}\n{log_tail(process)}")


def log_tail(process, chars: int = 3000) -> str:
    from igllm_ros.ros import processes

    text = processes.read_log(process)
    return f"node log ({getattr(process, 'log_path', None)}), last lines:\n{text[-chars:]}" if text else "(no node log)"


# ----------------------------------------------------------------------------- one model, every split
def score(frames: list[tuple[FrameResult, object]]) -> dict:
    """bench_accuracy's metrics over the answered frames (Scene message -> table frame, against
    the ground truth), plus the node's timings and the lost frames."""
    from igllm_ros.ros.conversions import msg_to_scene

    answered = [(f.scene, truth) for f, truth in frames if f.scene is not None]
    result = metrics.evaluate([(msg_to_scene(msg), truth) for msg, truth in answered])
    latency = [m.latency_ms for m, _ in answered]
    inference = [m.inference_time_ms for m, _ in answered]
    result.update(
        frames=len(frames),
        answered=len(answered),
        lost=len(frames) - len(answered),
        resent=sum(f.sends > 1 for f, _ in frames),
        latency_ms_p50=_percentile(latency, 50),
        latency_ms_p95=_percentile(latency, 95),
        latency_ms_mean=_mean(latency),
        inference_ms_p50=_percentile(inference, 50),
        inference_ms_mean=_mean(inference),
        preprocess_ms_p50=_percentile([m.preprocess_time_ms for m, _ in answered], 50),
        round_trip_ms_p50=_percentile([f.round_trip_ms for f, _ in frames if f.scene is not None], 50),
    )
    return result


def _percentile(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def run_split(client: NodeClient, node, label: str, split: str, dataset: SceneDataset, args) -> dict:
    count = min(args.count, len(dataset))
    frames = []
    started = time.perf_counter()
    for i in range(count):
        sample = dataset[i]
        frames.append((client.reconstruct(sample.image, node, args.timeout, args.resend), sample.scene))
    result = score(frames)
    result["node_model"] = next((f.scene.model for f, _ in frames if f.scene is not None), None)
    result["wall_s"] = time.perf_counter() - started
    print(f"{split}: {label}: {result['answered']}/{count} answered ({result['lost']} lost, {result['resent']} resent), "
          f"count exact {metrics.format_value(result['count_exact'], 'pct')} %, "
          f"L2 {metrics.format_value(result['location_error_m'], 'mm')} mm, "
          f"latency p50 {metrics.format_value(result['latency_ms_p50'], '{:.0f}')} ms, {result['wall_s']:.0f} s", flush=True)
    return result


def run_model(index: int, entry: ModelEntry, datasets: dict[str, SceneDataset], args) -> dict[str, dict]:
    """Start igllm_node with this model, feed it every split as an outside client, stop it."""
    from igllm_ros.ros import processes

    namespace = f"/bench_node_accuracy_{os.getpid()}_{index}"  # no other node or client can cross in
    log_path = args.out / f"node_{entry.label.replace('/', '_')}.log"
    node = processes.start_node(params={"model_path": str(entry.path), **NODE_PARAMS}, namespace=namespace,
                                log_path=log_path)
    client = NodeClient(namespace)
    print(f"{entry.label}: igllm_node started (pid {node.pid}, namespace {namespace}, log {log_path})", flush=True)
    try:
        client.wait_until_connected(node, args.startup_timeout)
        first = datasets[next(iter(datasets))][0]  # warm-up, not counted: the first pass is slow
        if client.reconstruct(first.image, node, args.startup_timeout, args.resend).scene is None:
            raise BenchError(f"{entry.label}: no scene for the warm-up image in {args.startup_timeout:.0f} s\n{log_tail(node)}")
        return {split: run_split(client, node, entry.label, split, ds, args) for split, ds in datasets.items()}
    finally:
        client.close()
        processes.stop(node)


# ----------------------------------------------------------------------------- output
def cell(result: dict | None, key: str, fmt: str) -> str:
    return "-" if result is None else metrics.format_value(result.get(key), fmt)


def text_table(results: dict, labels: list[str]) -> str:
    width = max(len(label) for label in labels)
    split_width = max([len(s) for s in results] + [5])
    head = f"{'split':<{split_width}}  {'model':<{width}}  " + "  ".join(f"{h:>8}" for _, h, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for split, per_model in results.items():
        for label in labels:
            row = "  ".join(f"{cell(per_model.get(label), k, f):>8}" for k, _, f in COLUMNS)
            lines.append(f"{split:<{split_width}}  {label:<{width}}  {row}")
    return "\n".join(lines)


def markdown_table(results: dict, labels: list[str]) -> str:
    lines = ["| split | model | " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|---|---|" + "---:|" * len(COLUMNS)]
    for split, per_model in results.items():
        for label in labels:
            lines.append(f"| {split} | {label} | " + " | ".join(cell(per_model.get(label), k, f) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines)


def setup_line(args, datasets: dict[str, SceneDataset]) -> str:
    sizes = sorted({f"{ds.meta['width']}x{ds.meta['height']} seed {ds.meta['seed']}" for ds in datasets.values()})
    return (f"images: {_rel(args.data)}/<split> ({', '.join(sizes)}), up to {args.count} per split, rgb8 + pinned camera_info "
            f"over DDS, one at a time; igllm_node on the CPU, float32, 1 torch thread, one process per model")


def write_report(args, argv, entries: list[ModelEntry], datasets, skipped: dict, results: dict) -> None:
    import torch

    report = {
        "command": "python bench/bench_node_accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": {split: {"path": str(ds.path), "seed": ds.meta["seed"], "width": ds.meta["width"],
                         "height": ds.meta["height"], "used": min(args.count, len(ds))} for split, ds in datasets.items()},
        "skipped": skipped,
        "node": {**NODE_PARAMS, "transport": "DDS (" + os.environ.get("RMW_IMPLEMENTATION", "default rmw") + ")",
                 "timeout_s": args.timeout, "resend_s": args.resend,
                 "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
                 "load_average": list(os.getloadavg())},
        "models": {e.label: {"path": _rel(e.path), "budget": e.budget.__dict__, "budget_text": e.budget.describe()}
                   for e in entries},
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(json_ready(report), indent=1))
    print(f"wrote {args.out / 'results.json'}")
    if args.markdown:
        labels = [e.label for e in entries]
        models = ["| model | checkpoint | training budget |", "|---|---|---|"]
        models += [f"| {e.label} | `{_rel(e.path)}` | {e.budget.describe()} |" for e in entries]
        text = "\n\n".join(["\n".join(models), setup_line(args, datasets) + ".", markdown_table(results, labels),
                            LEGEND + "."])
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
        print(f"wrote {args.markdown}")


# ----------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=None,
                   help=f"model directories (default {DEFAULT_MODEL} and, if present, {PREVIOUS_DEFAULT})")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    p.add_argument("--data", type=Path, default=ROOT / "data", help="folder of the split folders (default data/)")
    p.add_argument("--count", type=int, default=100, help="images per split (default 100)")
    p.add_argument("--render-cycles", action="store_true", help=f"render {' and '.join(BLENDER_SPLITS)} with Blender when absent")
    p.add_argument("--workers", type=int, default=1, help="rendering processes for missing splits (default 1)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per image before it counts as lost")
    p.add_argument("--resend", type=float, default=5.0, help="send an unanswered image again after this many seconds")
    p.add_argument("--startup-timeout", type=float, default=180.0, help="seconds for the node to load and answer once")
    p.add_argument("--out", type=Path, default=ROOT / "out/bench_node_accuracy", help="results.json and node logs")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table as markdown here")
    return p


def client_environment() -> None:
    """The middleware settings the node gets (processes.ros_env), for this process too
    (the shared-memory profile: large best-effort images are dropped without it)."""
    from igllm_ros.ros import processes

    shipped = processes.ros_env()
    for key in ("FASTDDS_DEFAULT_PROFILES_FILE", "RMW_IMPLEMENTATION", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
        os.environ.setdefault(key, shipped[key])


def load_datasets(args) -> tuple[dict[str, SceneDataset], dict[str, str]]:
    datasets, skipped = {}, {}
    for split in args.splits:
        dataset = split_dataset(args.data, split, args.count, args.render_cycles, args.workers)
        if dataset is None:
            skipped[split] = f"no dataset at {args.data / split}; pass --render-cycles to render it"
        else:
            datasets[split] = dataset
    if not datasets:
        raise BenchError("no split to run (every one was skipped)")
    return datasets, skipped


def run(args, argv) -> int:
    entries = resolve_models(args.models or default_models())
    client_environment()
    datasets, skipped = load_datasets(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {split: {} for split in datasets}
    started = time.perf_counter()
    for index, entry in enumerate(entries):
        for split, result in run_model(index, entry, datasets, args).items():
            results[split][entry.label] = result
    labels = [e.label for e in entries]
    print()
    for e in entries:
        print(f"model {e.label}: {_rel(e.path)}: {e.budget.describe()}")
    print(setup_line(args, datasets))
    print(text_table(results, labels))
    print(LEGEND)
    for split, reason in skipped.items():
        print(f"skipped {split}: {reason}")
    lost = sum(r["lost"] for per_model in results.values() for r in per_model.values())
    if lost:
        print(f"WARNING: {lost} frame(s) lost (no scene within {args.timeout:.0f} s): see the 'lost' column and the node logs in {args.out}")
    print(f"total {time.perf_counter() - started:.0f} s")
    write_report(args, argv, entries, datasets, skipped, results)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.count < 1 or args.workers < 1 or min(args.timeout, args.resend, args.startup_timeout) <= 0:
        raise SystemExit("bench_node_accuracy: --count and --workers must be >= 1, the timeouts positive")
    try:
        import rclpy  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"bench_node_accuracy: needs ROS 2 (rclpy): {err}; run `source scripts/env.sh` first") from err
    try:
        return run(args, argv)
    except BenchError as err:
        print(f"bench_node_accuracy: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
