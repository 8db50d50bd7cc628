"""Thread-safe counters and rates of the node, and their diagnostic_msgs form."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class NodeStats:
    """What the node did; updated from the subscription and worker threads."""

    def __init__(self, window_s: float = 10.0):
        self._lock = threading.Lock()
        self._window_s = window_s
        self._outputs: deque[tuple[float, float, float]] = deque()  # (time, latency ms, inference ms)
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.stamp_jumps_back = 0
        self.bad_inputs: Counter[str] = Counter()
        self.last_image_time: float | None = None  # monotonic

    def image_received(self) -> None:
        with self._lock:
            self.received += 1
            self.last_image_time = time.monotonic()

    def frame_dropped(self) -> None:
        with self._lock:
            self.dropped += 1

    def stamp_jumped_back(self) -> None:
        with self._lock:
            self.stamp_jumps_back += 1

    def bad_input(self, kind: str) -> None:
        with self._lock:
            self.bad_inputs[kind] += 1

    def scene_published(self, latency_ms: float, inference_ms: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.processed += 1
            self._outputs.append((now, latency_ms, inference_ms))
            self._trim(now)

    def snapshot(self) -> dict:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            outputs = list(self._outputs)
            snap = {
                "images_received": self.received,
                "scenes_published": self.processed,
                "frames_dropped": self.dropped,
                "stamp_jumps_back": self.stamp_jumps_back,
                "bad_inputs": dict(self.bad_inputs),
                "seconds_since_last_image": None if self.last_image_time is None else now - self.last_image_time,
            }
        latencies = np.array([o[1] for o in outputs])
        snap["output_rate_hz"] = _rate([o[0] for o in outputs], now, self._window_s)
        snap["latency_ms_p50"] = float(np.percentile(latencies, 50)) if len(latencies) else None
        snap["latency_ms_p95"] = float(np.percentile(latencies, 95)) if len(latencies) else None
        snap["inference_ms_mean"] = float(np.mean([o[2] for o in outputs])) if outputs else None
        return snap

    def _trim(self, now: float) -> None:
        while self._outputs and now - self._outputs[0][0] > self._window_s:
            self._outputs.popleft()


def _rate(times: list[float], now: float, window_s: float) -> float:
    if len(times) < 2:
        return 0.0
    # Events per second over the span they cover, so a burst that ended long ago decays.
    span = max(now - times[0], times[-1] - times[0])
    return (len(times) - 1) / span if span > 0 else 0.0


def status_message(name: str, hardware_id: str, level: bytes, message: str, values: dict) -> DiagnosticStatus:
    status = DiagnosticStatus()
    status.name, status.hardware_id = name, hardware_id
    status.level = level  # DiagnosticStatus.OK, WARN, ERROR or STALE
    status.message = message
    for key, value in values.items():
        status.values.append(KeyValue(key=key, value=_text(value)))
    return status


def flatten(snapshot: dict) -> dict:
    """Snapshot with the bad-input counter spread into bad_input.<kind> keys."""
    flat = {k: v for k, v in snapshot.items() if k != "bad_inputs"}
    flat["bad_inputs_total"] = sum(snapshot["bad_inputs"].values())
    for kind, count in sorted(snapshot["bad_inputs"].items()):
        flat[f"bad_input.{kind}"] = count
    return flat


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
