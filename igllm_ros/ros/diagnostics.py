"""Thread-safe counters and rates of the node, the level policy, and their diagnostic_msgs form."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class NodeStats:
    """What the node did; updated from the subscription and worker threads."""

    PUBLISHED = "published"  # the outcome of a frame that became a scene

    def __init__(self, window_s: float = 10.0, recent_s: float = 5.0):
        self._lock = threading.Lock()
        self._window_s = window_s
        self._recent_s = recent_s
        self._outputs: deque[tuple[float, float | None, float]] = deque()  # (time, latency ms, inference ms)
        self._outcomes: deque[tuple[float, str]] = deque()  # (time, "published" or a bad-input kind)
        self.received = 0
        self.published = 0
        self.dropped = 0
        self.stamp_jumps_back = 0
        self.stamps_in_future = 0
        self.bad_inputs: Counter[str] = Counter()
        self.internal_errors_in: Counter[str] = Counter()  # where each internal_error happened
        self.last_image_time: float | None = None  # monotonic
        self.last_scene_time: float | None = None
        self.streaming_since: float | None = None  # last activation

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

    def stamp_in_future(self) -> None:
        with self._lock:
            self.stamps_in_future += 1

    def streaming_started(self) -> None:
        with self._lock:
            self.streaming_since = time.monotonic()

    def bad_input(self, kind: str, where: str | None = None) -> None:
        """A refused or failed input; `where` names the place of an internal_error (a frame,
        the service, a timer, a transition), counted in the same snapshot-consistent step
        so a fault outside the frames is seen."""
        now = time.monotonic()
        with self._lock:
            self.bad_inputs[kind] += 1
            if where is not None:
                self.internal_errors_in[where] += 1
            self._outcomes.append((now, kind))
            self._trim(now)

    def scene_published(self, latency_ms: float | None, inference_ms: float) -> None:
        """latency_ms None: the image's stamp could not be trusted, so it says nothing."""
        now = time.monotonic()
        with self._lock:
            self.published += 1
            self.last_scene_time = now
            self._outputs.append((now, latency_ms, inference_ms))
            self._outcomes.append((now, self.PUBLISHED))
            self._trim(now)

    def snapshot(self) -> dict:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            outputs = list(self._outputs)
            since_scene = max((t for t in (self.last_scene_time, self.streaming_since) if t is not None), default=None)
            snap = {
                "images_received": self.received,
                "scenes_published": self.published,
                "frames_dropped": self.dropped,
                "stamp_jumps_back": self.stamp_jumps_back,
                "stamps_in_future": self.stamps_in_future,
                "bad_inputs": dict(self.bad_inputs),
                "internal_errors_in": dict(self.internal_errors_in),
                "recent_outcomes": dict(Counter(kind for t, kind in self._outcomes if now - t <= self._recent_s)),
                "seconds_since_last_image": None if self.last_image_time is None else now - self.last_image_time,
                "seconds_since_last_scene": None if since_scene is None else now - since_scene,
            }
        latencies = np.array([o[1] for o in outputs if o[1] is not None])
        snap["output_rate_hz"] = _rate([o[0] for o in outputs], now, self._window_s)
        snap["latency_ms_p50"] = float(np.percentile(latencies, 50)) if len(latencies) else None
        snap["latency_ms_p95"] = float(np.percentile(latencies, 95)) if len(latencies) else None
        snap["inference_ms_mean"] = float(np.mean([o[2] for o in outputs])) if outputs else None
        return snap

    def _trim(self, now: float) -> None:
        while self._outputs and now - self._outputs[0][0] > self._window_s:
            self._outputs.popleft()
        while self._outcomes and now - self._outcomes[0][0] > self._recent_s:
            self._outcomes.popleft()


@dataclass(frozen=True)
class HealthPolicy:
    """The diagnostics level of an active, enabled node from its NodeStats snapshot.

    OK while scenes come out. WARN when no image arrived for camera_timeout_s, or when most
    frames of the last few seconds were bad inputs or failed (internal_error), naming the
    most common reason. ERROR when images keep arriving but no scene was published for
    no_scene_error_s (since the last scene or the last activation).
    """

    camera_timeout_s: float = 2.0
    no_scene_error_s: float = 30.0
    min_recent: int = 3  # fewer outcomes than this say nothing about "most"

    def level(self, snap: dict) -> tuple[bytes, str]:
        silent = snap["seconds_since_last_image"]
        if silent is None or silent > self.camera_timeout_s:
            return DiagnosticStatus.WARN, "no images" if silent is None else f"no image for {silent:.1f} s"
        recent = dict(snap["recent_outcomes"])
        published = recent.pop(NodeStats.PUBLISHED, 0)
        failed = sum(recent.values())
        reason = ""
        if recent:
            kind, count = max(recent.items(), key=lambda item: item[1])
            reason = f"'{kind}' {count} of {failed + published} frames in the last seconds"
        no_scene = snap["seconds_since_last_scene"]
        if no_scene is not None and no_scene > self.no_scene_error_s:
            return DiagnosticStatus.ERROR, f"no scene published for {no_scene:.0f} s while images arrive" + (
                f": mostly {reason}" if reason else "")
        if failed + published >= self.min_recent and failed > published:
            what = "most frames fail" if kind == "internal_error" else "most recent inputs are bad"
            return DiagnosticStatus.WARN, f"{what}: {reason}"
        return DiagnosticStatus.OK, "running"


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
    """Snapshot with the bad-input counter spread into bad_input.<kind> keys and the
    internal errors into internal_error_in.<where> keys."""
    flat = {k: v for k, v in snapshot.items() if k not in ("bad_inputs", "recent_outcomes", "internal_errors_in")}
    flat["bad_inputs_total"] = sum(snapshot["bad_inputs"].values())
    for kind, count in sorted(snapshot["bad_inputs"].items()):
        flat[f"bad_input.{kind}"] = count
    for where, count in sorted(snapshot["internal_errors_in"].items()):
        flat[f"internal_error_in.{where.replace(' ', '_')}"] = count
    return flat


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def status_values(array, node_name: str = "igllm_node") -> dict | None:
    """key -> value of a node's status in a DiagnosticArray (plus _level and _message), or
    None if it is not there; for whoever reads /diagnostics (demo, benchmarks, tests)."""
    for status in array.status:
        if status.name.startswith(f"{node_name}:"):
            values = {kv.key: kv.value for kv in status.values}
            values["_level"] = status.level[0] if isinstance(status.level, bytes) else status.level
            values["_message"] = status.message
            return values
    return None
