"""A 30 Hz camera and a deliberately slow model (a test double that sleeps after each
inference): the node keeps up by dropping frames (and counting them); latency stays bounded
by about two inference times instead of growing."""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

from igllm_ros.msg import Scene  # noqa: E402
from support import doubles, harness  # noqa: E402

pytestmark = pytest.mark.ros
DELAY_MS = 300


def test_latest_frame_only_under_a_fast_camera(tmp_path):
    model = doubles.make_double(tmp_path / "slow_model", harness.build_test_model(tmp_path / "model"), delay_ms=DELAY_MS)
    sim = harness.start_sim(params={"rate_hz": 30.0, "pool_size": 10}, log_path=tmp_path / "sim.log")
    node = harness.start_node(params={"model_path": model, "torch_threads": 1}, log_path=tmp_path / "node.log")
    probe = harness.Probe()
    arrivals = []  # (probe clock at arrival, scene)
    probe.node.create_subscription(
        Scene, "scene", lambda m: arrivals.append((probe.node.get_clock().now().nanoseconds, m)), 10)
    diagnostics = probe.subscribe(DiagnosticArray, "/diagnostics")
    try:
        probe.wait_for(lambda: len(arrivals) >= 1, 120, "the first scene")
        start = time.monotonic()
        probe.wait_for(lambda: len(arrivals) >= 16, 60, "16 scenes")
        elapsed = time.monotonic() - start
        probe.spin(1.2)  # one more diagnostics message
    finally:
        probe.close()
        harness.stop(node)
        harness.stop(sim)

    scenes = [m for _, m in arrivals[1:]]
    latency_ms = np.array([(t - (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)) / 1e6 for t, m in arrivals[1:]])
    inference_ms = np.array([m.inference_time_ms for m in scenes])
    assert inference_ms.min() >= DELAY_MS
    # A queue would add ~inference time per output; the newest-frame mailbox adds at most one.
    bound = 2 * inference_ms.max() + 250
    assert latency_ms.max() < bound, f"latency {latency_ms.round()} exceeds {bound:.0f} ms"
    third = len(latency_ms) // 3
    assert np.median(latency_ms[-third:]) < np.median(latency_ms[:third]) + 150, f"latency grows: {latency_ms.round()}"
    # Output at the model's pace, not the camera's.
    rate = (len(arrivals) - 1) / elapsed
    assert rate < 1000.0 / DELAY_MS + 0.5

    values = next(v for v in map(harness.diagnostics_values, reversed(diagnostics)) if v)
    received, published, dropped = (int(values[k]) for k in ("images_received", "scenes_published", "frames_dropped"))
    assert dropped > published, "a 30 Hz camera and a ~3 Hz model must drop most frames"
    # Every frame is either published, dropped, or (at most one) in hand.
    assert received - 2 <= published + dropped <= received
