"""The node never dies on input (issue 14), checked as an outside client over real DDS.

The node runs in its own process (the test entry point, with a model double that raises on
an all-white view, so internal errors can be provoked from outside). After each case the
node must still be alive, answer the reference image with the same scene program as at
the start, have counted the input under its kind, and keep its peak memory bounded.
Short floods check the diagnostics levels; bench/bench_reliability.py runs the long ones.
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from sensor_msgs.msg import Image  # noqa: E402

from igllm_ros.ros.image_conversion import encode_compressed  # noqa: E402
from igllm_ros.srv import Reconstruct  # noqa: E402
from support import doubles, harness  # noqa: E402
from support.hostile import (  # noqa: E402
    ERROR, OK, WARN, Camera, DiagnosticsLog, flood, image_msg, png_bomb, stamp_ns, stream_until, valid_image)

pytestmark = pytest.mark.ros
NODE = "/igllm_node"
WHITE = np.full((240, 320, 3), 255, np.uint8)
FRAME_FAULTS = "internal_error_in.processing_a_frame"
PEAK_GROWTH_MIB = 300  # the thin-image blow-up took the peak from 0.7 to 2.65 GB


class Rig:
    def __init__(self, probe, camera, diagnostics, node, scenes):
        self.probe, self.camera, self.diagnostics, self.node, self.scenes = probe, camera, diagnostics, node, scenes
        self.reference = ""  # the scene program of valid_image(), from the start
        self.peak_at_start = 0.0

    def reconstruct(self, image=None, timeout=60):
        request = Reconstruct.Request()
        if image is not None:
            request.image = image
        return self.probe.call(Reconstruct, f"{NODE}/reconstruct", request, timeout=timeout)

    def assert_healthy(self):
        """Alive, answers the reference image exactly as before, memory peak bounded."""
        assert self.node.poll() is None, f"the node exited:\n{harness.read_log(self.node)[-3000:]}"
        reply = self.reconstruct(image_msg(valid_image()))
        assert reply.success, reply.message
        assert reply.scene.program == self.reference
        _, peak = harness.rss_mib(self.node.pid)
        assert peak - self.peak_at_start < PEAK_GROWTH_MIB, f"peak RSS grew from {self.peak_at_start:.0f} to {peak:.0f} MiB"

    def wait_count(self, kind, before, at_least=1, timeout=15):
        self.probe.wait_for(lambda: self.diagnostics.count(kind) >= before + at_least, timeout,
                            f"{at_least} more '{kind}' on /diagnostics")

    def scene_for(self, msg, timeout=5.0):
        """The scene published for msg's stamp, or None once timeout has passed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = [s for s in self.scenes if stamp_ns(s.header) == stamp_ns(msg.header)]
            if found:
                return found[0]
            self.probe.spin(0.1)
        return None


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    from igllm_ros.msg import Scene

    root = tmp_path_factory.mktemp("reliability")
    model = doubles.make_double(root / "faulty_model", harness.build_test_model(root / "model"), fail_on_white=True)
    node = harness.start_node(
        params={"model_path": model, "use_compressed": True, "torch_threads": 1, "camera_timeout_s": 2.0},
        log_path=root / "node.log",
    )
    probe = harness.Probe("reliability_client")
    camera = Camera(probe)
    rig = Rig(probe, camera, DiagnosticsLog(probe), node, probe.subscribe(Scene, "scene"))
    try:
        probe.wait_for(lambda: probe.get_state(NODE, timeout=60) == "active", 120, "the node to be active")
        probe.wait_for(lambda: camera.image_pub.get_subscription_count() > 0, 30, "the node to subscribe")
        camera.camera_info()
        reply = rig.reconstruct(image_msg(valid_image()))
        assert reply.success, reply.message
        rig.reference = reply.scene.program
        stream_until(probe, camera, lambda: len(rig.scenes) >= 3, 60, what="three scenes")
        rig.peak_at_start = harness.rss_mib(node.pid)[1]
        yield rig
    finally:
        probe.close()
        returncode = harness.stop(node)
    assert returncode == 0, f"the node did not exit cleanly:\n{harness.read_log(node)[-3000:]}"


def test_camera_info_of_size_zero_with_binning_is_refused(rig):
    before = rig.diagnostics.count("bad_camera_info")
    rig.camera.camera_info(width=0, height=0, fx=500.0, cx=160.0, cy=120.0, binning=(2, 2))
    rig.wait_count("bad_camera_info", before)
    rig.assert_healthy()


def test_reconstruct_with_a_million_by_one_image_is_refused(rig):
    reply = rig.reconstruct(image_msg(np.zeros((1, 1_000_000, 3), np.uint8)))
    assert not reply.success and "too_small" in reply.message
    rig.assert_healthy()


@pytest.mark.parametrize("shape, kind", [
    ((1, 20000), "too_small"), ((1, 1), "too_small"), ((1000, 3), "too_small"), ((40, 1000), "bad_aspect_ratio")])
def test_tiny_and_thin_images_are_refused(rig, shape, kind):
    height, width = shape
    before = rig.diagnostics.count(kind)
    msg = rig.camera.image(np.zeros((height, width, 3), np.uint8))
    rig.wait_count(kind, before)
    assert rig.scene_for(msg, timeout=0.5) is None
    rig.assert_healthy()


def test_implausible_intrinsics_are_bad_intrinsics_not_internal_errors(rig):
    errors = rig.diagnostics.count("internal_error")
    # A 2.5x long lens on a 1200x900 image: a view of 3000x2250 pixels, over 4 x 320x240.
    assert rig.probe.set_parameters(NODE, {"max_view_scale": 4.0}) == [(True, "")]
    for kind, info in [("bad_intrinsics", dict(fx=1e6)), ("bad_intrinsics", dict(cx=-5000.0)),
                       ("view_too_large", dict(width=1200, height=900, fx=1.09375 * 1200 * 2.5))]:
        before = rig.diagnostics.count(kind)
        rig.camera.camera_info(**info)
        size = (info.get("height", 240), info.get("width", 320), 3)
        msg = rig.camera.image(valid_image() if size == (240, 320, 3) else np.zeros(size, np.uint8))
        rig.wait_count(kind, before)
        assert rig.scene_for(msg, timeout=0.5) is None
    assert rig.diagnostics.count("internal_error") == errors
    assert rig.probe.set_parameters(NODE, {"max_view_scale": 16.0}) == [(True, "")]
    rig.camera.camera_info()  # good intrinsics again: scenes again
    assert rig.scene_for(rig.camera.image(), timeout=30) is not None
    rig.assert_healthy()


def test_compressed_bombs_are_oversized(rig):
    for bomb in (png_bomb(20000, 20000), png_bomb(5000, 5000)):  # above PIL's own limit; above max_image_pixels
        before = rig.diagnostics.count("oversized")
        rig.camera.compressed(bomb)
        rig.wait_count("oversized", before)
    before = rig.diagnostics.count("too_small")
    rig.camera.compressed(encode_compressed(np.zeros((2, 2, 3), np.uint8), "png"))
    rig.wait_count("too_small", before)
    assert rig.diagnostics.count("corrupt_compressed") == 0
    rig.assert_healthy()


def test_stamps_in_the_future_are_counted_and_latency_stays_positive(rig):
    before = int(rig.diagnostics.latest().get("stamps_in_future", 0))
    msg = rig.camera.send(image_msg(valid_image()), stamp_offset_s=3600.0)
    scene = rig.scene_for(msg, timeout=30)
    assert scene is not None and 0.0 <= scene.latency_ms < 10_000
    rig.probe.wait_for(lambda: int(rig.diagnostics.latest().get("stamps_in_future", 0)) > before, 10, "the count")
    rig.probe.spin(1.2)
    assert float(rig.diagnostics.latest()["latency_ms_p50"]) >= 0.0


def test_model_faults_are_internal_errors_and_the_service_still_answers(rig):
    before = rig.diagnostics.count("internal_error")
    rig.camera.image(WHITE)
    rig.wait_count("internal_error", before)
    reply = rig.reconstruct(image_msg(WHITE))
    assert not reply.success and "internal error" in reply.message
    rig.wait_count("internal_error", before, at_least=2)
    assert "injected model fault" in harness.read_log(rig.node)
    rig.assert_healthy()


def levels_during(rig, start):
    return [(v["_level"], v["_message"]) for v in rig.diagnostics.since(start)]


@pytest.mark.parametrize("kind", ["too_small", "bad_intrinsics", "internal_error"])
def test_a_flood_of_bad_input_warns_during_and_recovers_after(rig, kind):
    bad_msg = {"too_small": image_msg(np.zeros((1, 2000, 3), np.uint8)), "bad_intrinsics": image_msg(valid_image()),
               "internal_error": image_msg(WHITE)}[kind]
    if kind == "bad_intrinsics":
        rig.camera.camera_info(fx=1e6)
    start_values = rig.diagnostics.fresh(rig.probe)  # not a status from before the frames already sent
    before = rig.diagnostics.count(kind)
    received_before, dropped_before = (int(start_values[k]) for k in ("images_received", "frames_dropped"))
    rss_before = harness.rss_mib(rig.node.pid)[0]
    start = time.monotonic()
    sent = flood(rig.probe, lambda: rig.camera.send(bad_msg, wait=0.0), seconds=4.0)
    late = levels_during(rig, start + 2.5)  # the published scenes from before have left the window
    assert late and all(level == WARN and kind in message for level, message in late), late
    if kind == "internal_error":  # no scene for no_scene_error_s while images arrive: ERROR
        assert rig.probe.set_parameters(NODE, {"no_scene_error_s": 1.0}) == [(True, "")]
        start = time.monotonic()
        sent += flood(rig.probe, lambda: rig.camera.send(bad_msg, wait=0.0), seconds=2.5)
        assert any(level == ERROR and "no scene published" in message for level, message in levels_during(rig, start))
        assert rig.probe.set_parameters(NODE, {"no_scene_error_s": 30.0}) == [(True, "")]
    rig.probe.spin(1.5)  # the last counts on /diagnostics
    end = rig.diagnostics.latest()
    counted = rig.diagnostics.count(kind) - before
    received = int(end["images_received"]) - received_before
    dropped = int(end["frames_dropped"]) - dropped_before
    if kind == "internal_error":
        # Only the frames' own faults answer for frames; a fault elsewhere under the flood
        # (seen once in CI: one more internal_error than images received) must not hide.
        elsewhere = {k: int(v) - int(start_values.get(k, 0)) for k, v in end.items()
                     if k.startswith("internal_error_in.") and k != FRAME_FAULTS}
        elsewhere = {k: n for k, n in elsewhere.items() if n}
        assert not elsewhere, f"internal errors outside the frames: {elsewhere}\n{harness.read_log(rig.node)[-3000:]}"
        counted = int(end.get(FRAME_FAULTS, 0)) - int(start_values.get(FRAME_FAULTS, 0))
    # Best effort with depth 1 loses some under load; of those the node took, each one is
    # counted (refused from the header) or replaced by a newer one in the mailbox.
    assert 0 < counted <= received <= sent
    if kind == "too_small":
        assert counted == received, f"{counted} counted of {received} received"
    else:
        assert counted + dropped >= received - 2, f"{counted} counted + {dropped} dropped of {received} received"
    if kind == "bad_intrinsics":
        rig.camera.camera_info()
    stream_until(rig.probe, rig.camera, lambda: rig.diagnostics.latest().get("_level") == OK, 20, what="diagnostics OK")
    assert harness.rss_mib(rig.node.pid)[0] - rss_before < 100
    rig.assert_healthy()


def test_activation_cycles_with_a_debug_image_subscriber_keep_memory_flat(rig):
    debug = rig.probe.subscribe(Image, "debug_image", qos=1)

    def cycle():
        count = len(debug)
        stream_until(rig.probe, rig.camera, lambda: len(debug) > count, 30, what="a debug image")
        assert rig.probe.change_state(NODE, "deactivate")
        reply = rig.reconstruct()
        assert not reply.success and "inactive: activate it first" in reply.message
        assert rig.probe.change_state(NODE, "activate")

    for _ in range(2):  # warm-up: first renderer, allocator pools
        cycle()
    rss_before, threads_before = harness.rss_mib(rig.node.pid)[0], harness.thread_count(rig.node.pid)
    for _ in range(8):
        cycle()
    rss_after, threads_after = harness.rss_mib(rig.node.pid)[0], harness.thread_count(rig.node.pid)
    log = harness.read_log(rig.node)
    assert "debug_rerender off" not in log, "no OpenGL: the renderer lifetime went untested"
    assert log.count("made the OpenGL renderer") == 1, "one renderer for the node's lifetime"
    assert threads_after <= threads_before, f"threads {threads_before} -> {threads_after} over 8 activation cycles"
    # A renderer per activation grew RSS by ~9 MiB a cycle (issue 14); what is left is allocator noise.
    assert rss_after - rss_before < 60, f"RSS {rss_before:.0f} -> {rss_after:.0f} MiB over 8 activation cycles"
    rig.assert_healthy()

    assert rig.probe.change_state(NODE, "deactivate") and rig.probe.change_state(NODE, "cleanup")
    reply = rig.reconstruct()
    assert not reply.success and "configure" in reply.message
