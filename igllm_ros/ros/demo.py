"""The demo: camera simulator + igllm_node as separate processes, scenes next to the truth.

    python -m igllm_ros.ros.demo --model models/igllm-lite0-cycles2 --frames 20 --out out/demo

Starts igllm_camera_sim (freshly generated scenes) and igllm_node over DDS, prints every
reconstructed scene beside its ground truth with running metrics, saves the debug images
and records every topic to an MCAP bag (out/demo/bag/), then stops after --frames scenes.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from igllm_ros import metrics
from igllm_ros.reconstruction import DEFAULT_MODEL


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model directory")
    parser.add_argument("--frames", type=int, default=20, help="reconstructed scenes to show before stopping")
    parser.add_argument("--out", default="out/demo", help="output folder (debug images, bag, logs)")
    parser.add_argument("--rate", type=float, default=2.0, help="camera rate, Hz")
    parser.add_argument("--seed", type=int, default=0, help="scene generator seed")
    parser.add_argument("--split", default="val_id", help="generator split")
    parser.add_argument("--width", type=int, default=320, help="camera image width (4:3)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    return parser.parse_args(argv)


def describe(obj) -> str:
    loc = ", ".join(f"{v:+.3f}" for v in obj.loc)
    yaw = f" {obj.rotation:+5.1f}deg" if obj.shape == "cube" else " " * 9
    return f"{obj.size:5} {obj.color:6} {obj.material:6} {obj.shape:8} ({loc}){yaw}".ljust(COLUMN)


COLUMN = 64  # width of one described object

def side_by_side_table(pred, true) -> list[str]:
    """Rows pairing each true object with its matched prediction (Hungarian on 3D distance)."""
    pairs = dict((j, i) for i, j in metrics.match(pred.objects, true.objects))
    rows = []
    for j, t in enumerate(true.objects):
        i = pairs.get(j)
        if i is None:
            rows.append(f"  {describe(t)} | (missed)")
        else:
            p = pred.objects[i]
            error_mm = 1000 * math.dist(p.loc, t.loc)
            marks = "".join(" " if getattr(p, a) == getattr(t, a) else "!" for a in metrics.ATTRIBUTE_NAMES)
            rows.append(f"  {describe(t)} | {describe(p)} conf {p.confidence:.2f} err {error_mm:5.1f} mm [{marks}]")
    for i, p in enumerate(pred.objects):
        if i not in pairs.values():
            rows.append(f"  {'(none)':{COLUMN}} | {describe(p)} conf {p.confidence:.2f} (extra)")
    return rows


def summary_line(result: dict) -> str:
    def f(key, scale=1.0, fmt="{:.2f}"):
        value = result.get(key, float("nan"))
        return "n/a" if value != value else fmt.format(value * scale)

    return (
        f"running over {int(result['scenes'])} scenes: count exact {f('count_exact')}, "
        f"location error {f('location_error_m', 1000, '{:.1f}')} mm, shape {f('acc_shape')}, color {f('acc_color')}, "
        f"material {f('acc_material')}, size {f('acc_size')}, AP@0.05m {f('ap_0.05m')}"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    import rclpy  # noqa: F401  (fail early and clearly without ROS)
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image
    from visualization_msgs.msg import MarkerArray

    from igllm_ros.msg import Scene
    from igllm_ros.ros import processes
    from igllm_ros.ros.conversions import msg_to_scene
    from igllm_ros.ros.recorder import BagRecorder

    out = Path(args.out)
    if (out / "bag").exists():
        shutil.rmtree(out / "bag")
    for old in out.glob("debug_*.png"):
        old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    model = Path(args.model)
    if not model.exists():
        print(f"model {args.model!r} not found; pass --model DIR (a folder with the safetensors model)", file=sys.stderr)
        return 2

    node = processes.start_node(params={"model_path": str(model.resolve()), "device": args.device}, log_path=out / "node.log")
    sim = processes.start_sim(
        params={"source": "generator", "seed": args.seed, "split": args.split, "rate_hz": float(args.rate),
                "width": args.width, "height": args.width * 3 // 4, "pool_size": 0},
        log_path=out / "sim.log",
    )
    probe = processes.Watcher("igllm_demo")
    pairing = Pairing(msg_to_scene)
    debug: dict[int, object] = {}
    probe.node.create_subscription(Scene, "scene_gt", lambda m: pairing.truths.__setitem__(stamp_key(m.header), m), 50)
    probe.node.create_subscription(Scene, "scene", pairing.scenes.append, 50)
    probe.node.create_subscription(Image, "debug_image", lambda m: debug.__setitem__(stamp_key(m.header), m), 5)
    recorder = BagRecorder(
        probe.node,
        out / "bag",
        [("image", Image), ("camera_info", CameraInfo), ("scene_gt", Scene), ("scene", Scene),
         ("markers", MarkerArray), ("debug_image", Image), ("/diagnostics", DiagnosticArray)],
    )
    pairs = pairing.pairs
    deadline = time.monotonic() + args.timeout
    print(f"demo: camera simulator at {args.rate} Hz + igllm_node with {args.model}; logs in {out}/", flush=True)
    try:
        while len(pairs) < args.frames:
            if time.monotonic() > deadline:
                print(f"demo: timed out after {args.timeout:.0f} s with {len(pairs)} scenes", file=sys.stderr)
                return 1
            for name, process in (("igllm_node", node), ("igllm_camera_sim", sim)):
                if process.poll() is not None:
                    print(f"demo: {name} exited ({process.returncode}):\n{processes.read_log(process)[-3000:]}", file=sys.stderr)
                    return 1
            probe.spin(0.05)
            _save_debug_images(debug, pairing.frame_of, out)
            for scene_msg, pred, true in pairing.advance(args.frames):
                print_frame(len(pairs), args.frames, scene_msg, pred, true)
                print("  " + summary_line(metrics.evaluate(pairs)), flush=True)
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
    finally:
        probe.spin(0.5)  # the last debug image
        _save_debug_images(debug, pairing.frame_of, out)
        recorder.close()
        probe.close()
        processes.stop(sim)
        processes.stop(node)
    result = metrics.evaluate(pairs) if pairs else {}
    print("\n" + "=" * 80)
    if result:
        print(summary_line(result))
    print(f"debug images: {out}/debug_*.png   recording: {out}/bag/ ({sum(recorder.counts.values())} messages; "
          f"open in Foxglove or `ros2 bag info {out}/bag`)   logs: {out}/node.log, {out}/sim.log")
    return 0 if len(pairs) >= args.frames else 1


def stamp_key(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class Pairing:
    """Pairs each reconstructed scene with its ground truth (same stamp) as both arrive."""

    def __init__(self, to_scene):
        self.to_scene = to_scene  # Scene message -> igllm_ros.scene.Scene
        self.truths: dict[int, object] = {}
        self.scenes: list = []
        self.pairs: list = []  # (predicted, true) scenes
        self.frame_of: dict[int, int] = {}  # frame number of each shown scene, by stamp
        self._shown = 0
        self._first_seen: dict[int, float] = {}  # when a scene was first looked at, by stamp

    def advance(self, limit: int) -> list:
        """(scene message, predicted, true) of the scenes newly paired, up to limit pairs in all."""
        new = []
        while self._shown < len(self.scenes) and len(self.pairs) < limit:
            scene_msg = self.scenes[self._shown]
            stamp = stamp_key(scene_msg.header)
            truth_msg = self.truths.get(stamp)
            if truth_msg is None:
                if time.monotonic() - self._first_seen.setdefault(stamp, time.monotonic()) < 1.0:
                    break  # its ground truth may still be on the way
                self._shown += 1
                continue
            self._shown += 1
            self.frame_of[stamp] = len(self.pairs) + 1
            pred, true = self.to_scene(scene_msg), self.to_scene(truth_msg)
            self.pairs.append((pred, true))
            new.append((scene_msg, pred, true))
        return new


def print_frame(number: int, frames: int, scene_msg, pred, true) -> None:
    stamp = scene_msg.header.stamp
    print(f"\nframe {number}/{frames}  stamp {stamp.sec}.{stamp.nanosec:09d}"
          f"  objects: true {len(true.objects)}, predicted {len(pred.objects)}"
          f"  latency {scene_msg.latency_ms:.0f} ms (model {scene_msg.inference_time_ms:.0f} ms)")
    print(f"  {'truth':{COLUMN}} | prediction  ([!] marks a wrong shape/color/material/size)")
    for row in side_by_side_table(pred, true):
        print(row)


def _save_debug_images(debug: dict, frame_of: dict, out: Path) -> None:
    """Save the debug images of shown frames as debug_NNN.png (they arrive after their scene)."""
    for stamp in [s for s in debug if s in frame_of]:
        msg = debug.pop(stamp)
        pixels = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3]
        PILImage.fromarray(pixels.reshape(msg.height, msg.width, 3)).save(out / f"debug_{frame_of[stamp]:03d}.png")


if __name__ == "__main__":
    sys.exit(main())
