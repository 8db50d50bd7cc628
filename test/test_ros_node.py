"""igllm_node and igllm_camera_sim as separate processes over real DDS: what comes out.

One simulator and one node serve the whole module (starting them is the slow part); the
tests run in file order and leave the node as they found it.
"""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from igllm_ros.msg import Scene  # noqa: E402
from igllm_ros import world  # noqa: E402
from igllm_ros.ros import qos  # noqa: E402
from igllm_ros.ros.image_conversion import rgb_to_image_fields  # noqa: E402
from igllm_ros.ros.markers import LABELS_NS, OBJECTS_NS  # noqa: E402
from igllm_ros.srv import Reconstruct  # noqa: E402
from support import harness  # noqa: E402

pytestmark = pytest.mark.ros
NODE = "/igllm_node"
# The simulated camera is wider than the model's, with an off-centre principal point
# (camera_info says so), and sends padded BGR rows: the node must cope with all of it.
SIM = dict(source="generator", seed=11, rate_hz=4.0, pool_size=6, encoding="bgr8", row_padding=8,
           pad_left_px=48, pad_right_px=16, pad_top_px=24, pad_bottom_px=12)


def stamp_ns(header):
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    model = harness.build_test_model(tmp_path_factory.mktemp("model"))
    sim = harness.start_sim(params=SIM, log_path=logs / "sim.log")
    node = harness.start_node(params={"model_path": model, "torch_threads": 1}, log_path=logs / "node.log")
    probe = harness.Probe()
    got = {
        "scene": probe.subscribe(Scene, "scene"),
        "gt": probe.subscribe(Scene, "scene_gt"),
        "markers": probe.subscribe(MarkerArray, "markers"),
        "diagnostics": probe.subscribe(DiagnosticArray, "/diagnostics"),
    }
    try:
        probe.wait_for(lambda: got["scene"] and got["gt"], 120, "the first scene and ground truth")
        for received in got.values():  # start clean, with every publisher matched
            received.clear()
        probe.wait_for(lambda: len(got["scene"]) >= 3, 60, "three scenes from the node")
        yield probe, got, node, sim
    except TimeoutError:
        pytest.fail(f"no output.\nnode log:\n{harness.read_log(node)}\nsim log:\n{harness.read_log(sim)}")
    finally:
        probe.close()
        harness.stop(node)
        harness.stop(sim)


def test_scene_header_is_the_image_header(system):
    probe, got, _, _ = system
    truth = {stamp_ns(m.header): m.header.frame_id for m in got["gt"]}  # the sim's image headers
    # Scenes of images whose ground truth came before the lists were cleared are skipped.
    scenes = [s for s in got["scene"] if stamp_ns(s.header) >= min(truth)]
    assert len(scenes) >= 2
    for scene in scenes:
        assert stamp_ns(scene.header) in truth, "a scene whose stamp is no image's stamp"
        assert scene.header.frame_id == truth[stamp_ns(scene.header)] == "camera_optical_frame"


def test_scene_content(system):
    _, got, _, _ = system
    scene = got["scene"][-1]
    assert scene.program.startswith("camera(") and scene.model
    assert scene.inference_time_ms > 0 and scene.preprocess_time_ms > 0
    assert scene.latency_ms >= scene.inference_time_ms
    for obj in scene.objects:
        assert obj.id.startswith("obj") and obj.shape in ("cube", "sphere", "cylinder")
        assert 0.0 <= obj.confidence <= 1.0
        assert obj.pose.position.z > 0, "objects are in front of the camera in the optical frame"
        q = obj.pose.orientation
        assert q.x**2 + q.y**2 + q.z**2 + q.w**2 == pytest.approx(1.0, abs=1e-6)
    # The pinned camera looks at the table origin: it lies on the optical axis, and the
    # table's up axis points up the image (optical -y).
    origin, q = scene.table_pose.position, scene.table_pose.orientation
    assert abs(origin.x) < 1e-6 and abs(origin.y) < 1e-6 and 0.3 < origin.z < 0.8
    up = Rotation.from_quat([q.x, q.y, q.z, q.w]).apply([0.0, 0.0, 1.0])
    assert up[1] < -0.5


def test_markers_match_their_scene(system):
    probe, got, _, _ = system
    probe.wait_for(lambda: len(got["markers"]) >= 2, 30, "markers")
    scenes = {stamp_ns(s.header): s for s in got["scene"]}
    checked = 0
    for array in got["markers"]:
        scene = scenes.get(stamp_ns(array.markers[0].header))
        if scene is None:
            continue
        assert array.markers[0].action == Marker.DELETEALL
        solids = [m for m in array.markers if m.ns == OBJECTS_NS]
        labels = [m for m in array.markers if m.ns == LABELS_NS]
        assert len(solids) == len(labels) == len(scene.objects)
        for obj, solid in zip(scene.objects, solids):
            assert solid.id == int(obj.id[3:]) and solid.pose == obj.pose and solid.scale == obj.dimensions
            assert solid.header == scene.header
        checked += 1
    assert checked >= 1


def test_debug_image_is_published_to_subscribers(system):
    probe, got, _, _ = system
    debug = probe.subscribe(Image, "debug_image", qos=1)
    probe.wait_for(lambda: len(debug) >= 1, 60, "a debug image")
    image = debug[-1]
    assert image.encoding == "rgb8" and image.height == 240 and image.width in (320, 640)
    assert image.step == image.width * 3 and len(image.data) == image.step * image.height
    pixels = np.frombuffer(image.data, np.uint8).reshape(image.height, image.width, 3)
    view = pixels[:, :320].astype(float)
    assert view.std() > 5, "the model's view is in the left half"
    # The simulator's black borders (declared in camera_info) must have been cropped away.
    for edge in (view[:, :2], view[:, -2:], view[:2, :], view[-2:, :]):
        assert edge.mean() > 20, "black border in the model's view: camera_info not applied"
    assert stamp_ns(image.header) in {stamp_ns(m.header) for m in got["gt"]}


def test_simulator_sends_the_camera_it_declares(system):
    probe, _, _, _ = system
    images = probe.subscribe(Image, "image", qos=qos.image_qos())
    infos = probe.subscribe(CameraInfo, "camera_info", qos=qos.image_qos("best_effort", 5))
    probe.wait_for(lambda: images and infos, 30, "an image and its camera_info")
    image, info = images[-1], infos[-1]
    width = 320 + SIM["pad_left_px"] + SIM["pad_right_px"]
    height = 240 + SIM["pad_top_px"] + SIM["pad_bottom_px"]
    assert (image.width, image.height, image.encoding) == (width, height, "bgr8")
    assert image.step == width * 3 + SIM["row_padding"] and len(image.data) == image.step * height
    assert (info.width, info.height) == (width, height)
    f = world.FOCAL_OVER_WIDTH * 320
    assert list(info.k) == pytest.approx([f, 0, 159.5 + SIM["pad_left_px"], 0, f, 119.5 + SIM["pad_top_px"], 0, 0, 1])


def test_diagnostics_report_the_stream(system):
    probe, got, _, _ = system

    def values():
        for array in reversed(got["diagnostics"]):
            found = harness.diagnostics_values(array)
            if found:
                return found
        return None

    probe.wait_for(lambda: values() is not None and int(values()["scenes_published"]) >= 1, 30, "diagnostics")
    v = values()
    assert v["state"] == "active" and v["device"] == "cpu" and v["dtype"] == "float32"
    assert "CUDA" in v["device_reason"] and v["model"]
    assert int(v["images_received"]) >= int(v["scenes_published"]) >= 1
    assert float(v["output_rate_hz"]) > 0 and float(v["latency_ms_p95"]) > 0
    assert int(v["bad_inputs_total"]) == 0


def test_reconstruct_service_on_a_given_image_and_on_the_latest(system):
    probe, got, _, _ = system
    request = Reconstruct.Request()
    rgb = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    data, step = rgb_to_image_fields(rgb, "rgb8")
    request.image = Image(height=240, width=320, encoding="rgb8", step=step, data=data)
    request.image.header.frame_id = "request_frame"
    request.image.header.stamp.sec = 42
    reply = probe.call(Reconstruct, f"{NODE}/reconstruct", request, timeout=60)
    assert reply.success, reply.message
    assert reply.scene.header.frame_id == "request_frame" and reply.scene.header.stamp.sec == 42
    assert reply.scene.program.startswith("camera(")

    latest = probe.call(Reconstruct, f"{NODE}/reconstruct", Reconstruct.Request(), timeout=60)
    assert latest.success, latest.message
    assert latest.scene.header.frame_id == "camera_optical_frame"
    probe.spin(0.5)  # the image's ground truth may still be on its way to the probe
    assert stamp_ns(latest.scene.header) in {stamp_ns(m.header) for m in got["gt"]}


def test_enable_service_pauses_and_resumes_the_stream(system):
    probe, got, _, _ = system
    reply = probe.call(SetBool, f"{NODE}/enable", SetBool.Request(data=False))
    assert reply.success and "ignoring" in reply.message
    probe.spin(1.0)  # let a scene already in flight arrive
    count = len(got["scene"])
    probe.spin(2.0)
    assert len(got["scene"]) == count, "scenes kept coming while disabled"
    assert probe.call(Reconstruct, f"{NODE}/reconstruct", Reconstruct.Request(), timeout=60).success
    assert probe.call(SetBool, f"{NODE}/enable", SetBool.Request(data=True)).success
    probe.wait_for(lambda: len(got["scene"]) > count, 30, "scenes after enabling again")


def test_runtime_parameter_changes_take_effect_or_are_refused_with_a_reason(system):
    probe, got, _, _ = system
    # Takes effect from the next frame.
    assert probe.set_parameters(NODE, {"frame_id": "override_frame"}) == [(True, "")]
    count = len(got["scene"])
    probe.wait_for(lambda: any(s.header.frame_id == "override_frame" for s in got["scene"][count:]), 30,
                   "a scene in the override frame")
    assert probe.set_parameters(NODE, {"frame_id": ""}) == [(True, "")]

    # Refused, each with its reason.
    (ok, reason), = probe.set_parameters(NODE, {"model_path": "/elsewhere"})
    assert not ok and "deactivate" in reason and "model" in reason
    (ok, reason), = probe.set_parameters(NODE, {"image_depth": 5})
    assert not ok and "deactivate" in reason
    (ok, reason), = probe.set_parameters(NODE, {"device": "tpu"})
    assert not ok and "device must be one of" in reason
    (ok, reason), = probe.set_parameters(NODE, {"max_objects": 0})
    assert not ok and reason  # outside its IntegerRange
    (ok, reason), = probe.set_parameters(NODE, {"diagnostics_period_s": 2.0})
    assert not ok and "read-only" in reason
    (ok, reason), = probe.set_parameters(NODE, {"confidence_threshold": "high"})
    assert not ok and reason  # wrong type
    assert probe.get_parameters(NODE, ["model_path", "image_depth", "max_objects"])["image_depth"] == 1


def test_confidence_threshold_filters_objects(system):
    probe, got, _, _ = system
    assert probe.set_parameters(NODE, {"confidence_threshold": 1.0}) == [(True, "")]
    count = len(got["scene"])
    probe.wait_for(lambda: len(got["scene"]) >= count + 2, 30, "scenes with the new threshold")
    assert all(o.confidence >= 1.0 for s in got["scene"][count + 1:] for o in s.objects)
    assert probe.set_parameters(NODE, {"confidence_threshold": 0.0}) == [(True, "")]
