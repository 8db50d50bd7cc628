"""Benchmark igllm_node end to end: camera simulator and node as separate processes over DDS.

Prints, for each camera rate: end-to-end latency (image stamp -> Scene received) p50/p95,
output rate, frames dropped by the node; and the node's resident memory over the whole run
(start, end, peak, trend). Targets on a CPU with the shipped model: output >= 10 Hz,
p95 < 150 ms, memory flat.

    python bench/bench_node.py --model models/igllm-tiny-float [--seconds 20] [--rates 5 15 30]
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from igllm_ros.reconstruction import DEFAULT_MODEL  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rates", type=float, nargs="+", default=[5.0, 15.0, 30.0], help="camera rates, Hz")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per rate (minutes for a memory soak)")
    parser.add_argument("--width", type=int, default=320, help="camera image width (4:3)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--torch-threads", type=int, default=0, help="node's torch threads (0: PyTorch default)")
    parser.add_argument("--out", default="out/bench_node", help="logs")
    return parser.parse_args()


class MemorySampler(threading.Thread):
    """RSS of a process once a second."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []  # (seconds, MiB)
        self._done = threading.Event()

    def run(self):
        start = time.monotonic()
        while not self._done.wait(1.0):
            try:
                self.samples.append((time.monotonic() - start, self.process.memory_info().rss / 2**20))
            except psutil.Error:
                return

    def stop(self):
        self._done.set()
        if self.is_alive():
            self.join()


def main() -> int:
    args = parse_args()
    from diagnostic_msgs.msg import DiagnosticArray

    from igllm_ros.msg import Scene
    from igllm_ros.ros import processes

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not Path(args.model).exists():
        print(f"model {args.model!r} not found", file=sys.stderr)
        return 2
    node = processes.start_node(
        params={"model_path": str(Path(args.model).resolve()), "device": args.device, "torch_threads": args.torch_threads,
                "publish_debug_image": False},
        log_path=out / "node.log",
    )
    probe = processes.Watcher("igllm_bench")
    arrivals: list[tuple[int, int]] = []  # (arrival ns, stamp ns)
    probe.node.create_subscription(
        Scene, "scene",
        lambda m: arrivals.append((probe.node.get_clock().now().nanoseconds,
                                   m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec)), 50)
    diagnostics = probe.subscribe(DiagnosticArray, "/diagnostics")
    memory = MemorySampler(node.pid)
    rows = []
    try:
        probe.wait_for(lambda: latest(diagnostics).get("state") == "active", 180, "the node to be active")
        values = None
        memory.start()
        for rate in args.rates:
            sim = processes.start_sim(
                params={"rate_hz": rate, "pool_size": 20, "width": args.width, "height": args.width * 3 // 4},
                log_path=out / f"sim_{rate:g}hz.log",
            )
            try:
                start_count = len(arrivals)
                probe.wait_for(lambda: len(arrivals) > start_count, 120, "scenes")
                probe.spin(2.0)  # warm-up
                before = latest(diagnostics)
                first = len(arrivals)
                start = time.monotonic()
                probe.spin(args.seconds)
                elapsed = time.monotonic() - start
                window = arrivals[first:]
                probe.spin(1.2)
                values = latest(diagnostics)
            finally:
                processes.stop(sim)
            latency = np.array([(a - s) / 1e6 for a, s in window])
            received = int(values["images_received"]) - int(before["images_received"])
            dropped = int(values["frames_dropped"]) - int(before["frames_dropped"])
            rows.append((rate, len(window) / elapsed, np.percentile(latency, 50), np.percentile(latency, 95),
                         received, dropped, float(values["inference_ms_mean"] or "nan")))
            probe.spin(1.0)
    finally:
        try:
            memory.stop()
            probe.close()
        finally:
            processes.stop(node)

    print(f"\nigllm_node benchmark: model {args.model}, {args.width}x{args.width * 3 // 4} images, "
          f"{args.seconds:g} s per rate, device {values.get('device') if values else '?'} ({values.get('dtype') if values else '?'})")
    print(f"{'camera Hz':>9} {'output Hz':>9} {'p50 ms':>8} {'p95 ms':>8} {'received':>8} {'dropped':>8} {'model ms':>9}")
    for rate, out_hz, p50, p95, received, dropped, model_ms in rows:
        print(f"{rate:9.1f} {out_hz:9.2f} {p50:8.1f} {p95:8.1f} {received:8d} {dropped:8d} {model_ms:9.1f}")
    if memory.samples:
        t, rss = np.array(memory.samples).T
        slope = np.polyfit(t, rss, 1)[0] * 60 if len(t) > 2 else float("nan")
        print(f"node RSS over {t[-1]:.0f} s: start {rss[0]:.0f} MiB, end {rss[-1]:.0f} MiB, peak {rss.max():.0f} MiB, "
              f"trend {slope:+.2f} MiB/min")
    return 0


def latest(diagnostics) -> dict:
    """The node's newest status on /diagnostics ({} before the first)."""
    from igllm_ros.ros.diagnostics import status_values

    for array in reversed(diagnostics):
        values = status_values(array)
        if values:
            return values
    return {}


if __name__ == "__main__":
    sys.exit(main())
