"""Bad input and faults, sent over DDS from another process: each one is counted on
/diagnostics, produces no output, and the node keeps answering."""
import math
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from igllm_ros.msg import Scene  # noqa: E402
from igllm_ros.ros import qos  # noqa: E402
from igllm_ros.ros.image_conversion import encode_compressed, rgb_to_image_fields  # noqa: E402
from igllm_ros.srv import Reconstruct  # noqa: E402
from support import harness  # noqa: E402

pytestmark = pytest.mark.ros
NODE = "/igllm_node"
RGB = np.random.default_rng(5).integers(0, 255, (240, 320, 3), dtype=np.uint8)


def stamp_ns(header):
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class Camera:
    """The probe acting as a camera driver."""

    def __init__(self, probe):
        self.probe = probe
        image_qos = qos.image_qos("best_effort", 1)
        self.image_pub = probe.node.create_publisher(Image, "image", image_qos)
        self.compressed_pub = probe.node.create_publisher(CompressedImage, "image/compressed", image_qos)
        self.info_pub = probe.node.create_publisher(CameraInfo, "camera_info", image_qos)
        self.clock_offset_s = 0.0  # a restarted camera may stamp from another clock

    def stamp(self, header):
        now = self.probe.node.get_clock().now().nanoseconds + int(self.clock_offset_s * 1e9)
        header.stamp.sec, header.stamp.nanosec = divmod(now, 1_000_000_000)
        header.frame_id = "test_camera"
        return header

    def image(self, rgb=RGB, **overrides):
        """Publish rgb as rgb8, with any field overridden (to make it bad)."""
        data, step = rgb_to_image_fields(rgb, "rgb8")
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=step, data=data)
        for key, value in overrides.items():
            setattr(msg, key, value)
        self.stamp(msg.header)
        self.image_pub.publish(msg)
        self.probe.spin(0.25)  # best effort, depth 1: give the node time to take each one
        return msg

    def compressed(self, data):
        msg = CompressedImage(format="jpeg", data=data)
        self.stamp(msg.header)
        self.compressed_pub.publish(msg)
        self.probe.spin(0.25)
        return msg

    def camera_info(self, fx):
        msg = CameraInfo(width=320, height=240)
        msg.k = [fx, 0.0, 159.5, 0.0, fx, 119.5, 0.0, 0.0, 1.0]
        self.stamp(msg.header)
        self.info_pub.publish(msg)
        self.probe.spin(0.25)
        return msg


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    model = harness.build_test_model(tmp_path_factory.mktemp("model"))
    node = harness.start_node(
        params={"model_path": model, "use_compressed": True, "max_image_pixels": 100_000, "camera_timeout_s": 1.0,
                "torch_threads": 1},
        log_path=logs / "node.log",
    )
    probe = harness.Probe()
    camera = Camera(probe)
    got = {"scene": probe.subscribe(Scene, "scene"), "diagnostics": probe.subscribe(DiagnosticArray, "/diagnostics")}
    try:
        probe.wait_for(lambda: probe.get_state(NODE, timeout=60) == "active", 90, "the node to be active")
        probe.wait_for(lambda: camera.image_pub.get_subscription_count() > 0, 30, "the node to subscribe")
        yield probe, camera, got, node
    finally:
        probe.close()
        harness.stop(node)


def diagnostics(got):
    for array in reversed(got["diagnostics"]):
        values = harness.diagnostics_values(array)
        if values:
            return values
    return {}


def wait_for_scene_of(probe, got, msg, timeout=60):
    probe.wait_for(lambda: any(stamp_ns(s.header) == stamp_ns(msg.header) for s in got["scene"]), timeout,
                   "the scene of a good image")


def test_every_bad_input_is_counted_and_survived(rig):
    probe, camera, got, node = rig
    good = camera.image()
    wait_for_scene_of(probe, got, good)

    bad = [
        camera.image(width=0, height=0, step=0, data=b""),  # zero-size
        camera.image(step=100),  # step shorter than a row
        camera.image(data=bytes(RGB.tobytes()[:-7])),  # data does not match step x height
        camera.image(width=160, step=640, data=bytes(640 * 240), encoding="32FC1"),  # depth, not a picture
        camera.image(rgb=np.zeros((480, 640, 3), np.uint8)),  # over max_image_pixels
        camera.compressed(b"\xff\xd8\xff\xe0 truncated jpeg"),  # corrupt compressed data
    ]
    camera.camera_info(float("nan"))  # NaN intrinsics
    expected = {"empty", "bad_step", "bad_data_size", "unknown_encoding", "oversized", "corrupt_compressed",
                "bad_camera_info"}

    def counted():
        values = diagnostics(got)
        return all(int(values.get(f"bad_input.{kind}", 0)) >= 1 for kind in expected)

    probe.wait_for(counted, 30, f"all of {sorted(expected)} on /diagnostics")
    bad_stamps = {stamp_ns(m.header) for m in bad}
    assert not [s for s in got["scene"] if stamp_ns(s.header) in bad_stamps], "a bad image produced a scene"

    # Still answering: a good image (raw and compressed) gives a scene, and the service works.
    assert node.poll() is None
    wait_for_scene_of(probe, got, camera.image())
    wait_for_scene_of(probe, got, camera.compressed(encode_compressed(RGB)))
    reply = probe.call(Reconstruct, f"{NODE}/reconstruct", Reconstruct.Request(), timeout=60)
    assert reply.success, reply.message

    # The service says what is wrong with a bad request image.
    request = Reconstruct.Request()
    request.image = Image(height=2, width=2, encoding="rgb8", step=3, data=b"\x00" * 6)
    reply = probe.call(Reconstruct, f"{NODE}/reconstruct", request, timeout=60)
    assert not reply.success and "bad_step" in reply.message
    assert "Traceback" not in harness.read_log(node)


def test_nan_camera_info_does_not_replace_a_good_one(rig):
    probe, camera, got, _ = rig
    before = int(diagnostics(got).get("bad_input.bad_camera_info", 0))
    camera.camera_info(float("inf"))
    probe.wait_for(lambda: int(diagnostics(got).get("bad_input.bad_camera_info", 0)) > before, 10, "the count")
    wait_for_scene_of(probe, got, camera.image())


def test_a_camera_that_stops_and_restarts(rig):
    probe, camera, got, _ = rig
    for _ in range(4):
        last = camera.image()
    wait_for_scene_of(probe, got, last)
    probe.spin(0.5)
    count = len(got["scene"])
    probe.spin(2.0)  # camera silent: nothing new comes out, nothing stale is repeated
    assert len(got["scene"]) == count
    probe.wait_for(lambda: diagnostics(got).get("_message", "").startswith("no image for"), 10, "a silence warning")
    assert diagnostics(got)["_level"] == 1

    # It comes back with a clock 100 s behind (a restarted driver): scenes resume with its stamps.
    camera.clock_offset_s = -100.0
    back = camera.image()
    wait_for_scene_of(probe, got, back)
    assert stamp_ns(got["scene"][-1].header) == stamp_ns(back.header)
    probe.wait_for(lambda: int(diagnostics(got).get("stamp_jumps_back", 0)) >= 1, 10, "the jump back counted")
    deadline = time.monotonic() + 15
    while diagnostics(got).get("_level") != 0:  # streaming again: diagnostics recover
        assert time.monotonic() < deadline, f"diagnostics stuck at {diagnostics(got).get('_message')}"
        camera.image()
    assert math.isfinite(float(diagnostics(got)["latency_ms_p50"]))
    camera.clock_offset_s = 0.0


def test_an_implausible_fx_parameter_refuses_frames_as_bad_intrinsics(rig):
    # No good camera_info has arrived in this rig (only NaN/inf ones), so fx/fy/cx/cy apply.
    probe, camera, got, node = rig
    before = {k: int(diagnostics(got).get(f"bad_input.{k}", 0)) for k in ("bad_intrinsics", "internal_error")}
    assert probe.set_parameters(NODE, {"fx": 1e6}) == [(True, "")]  # inside the declared range
    bad = [camera.image() for _ in range(3)]
    probe.wait_for(lambda: int(diagnostics(got).get("bad_input.bad_intrinsics", 0)) > before["bad_intrinsics"], 15,
                   "bad_intrinsics on /diagnostics")
    assert int(diagnostics(got).get("bad_input.internal_error", 0)) == before["internal_error"]
    bad_stamps = {stamp_ns(m.header) for m in bad}
    assert not [s for s in got["scene"] if stamp_ns(s.header) in bad_stamps]
    assert probe.set_parameters(NODE, {"fx": 0.0}) == [(True, "")]
    wait_for_scene_of(probe, got, camera.image())
    assert node.poll() is None
