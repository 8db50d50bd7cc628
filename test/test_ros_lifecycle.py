"""Lifecycle transitions driven through the node's lifecycle services, from another process,
including a missing and a corrupt model; parameters from a params file and --ros-args."""
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

from igllm_ros.msg import Scene  # noqa: E402
from igllm_ros.srv import Reconstruct  # noqa: E402
from igllm_ros.ros import processes  # noqa: E402
from support import harness  # noqa: E402

pytestmark = pytest.mark.ros
NODE = "/lifecycle_test_node"


def latest_diagnostics(received, node_name="lifecycle_test_node"):
    for array in reversed(received):
        values = harness.diagnostics_values(array, node_name)
        if values:
            return values
    return None


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return harness.build_test_model(tmp_path_factory.mktemp("model"))


def test_lifecycle_from_a_missing_model_to_active_and_back(tmp_path, model_dir):
    params_file = tmp_path / "params.yaml"
    # The params file sets what the test relies on; --ros-args -p then overrides one of them.
    params_file.write_text(
        "/**:\n  ros__parameters:\n"
        "    autostart: false\n"
        f"    model_path: {tmp_path / 'no_such_model'}\n"
        "    max_objects: 4\n"
        "    torch_threads: 1\n"
    )
    corrupt = tmp_path / "corrupt_model"
    corrupt.mkdir()
    (corrupt / "model.safetensors").write_bytes(b"\x00garbage, not a safetensors file" * 10)
    (corrupt / "config.json").write_text("{ not json")

    sim = harness.start_sim(params={"rate_hz": 5.0, "pool_size": 3}, log_path=tmp_path / "sim.log")
    node = harness.start_node(
        name="lifecycle_test_node",
        params_file=params_file,
        params={"max_objects": 3},
        log_path=tmp_path / "node.log",
    )
    probe = harness.Probe()
    scenes = probe.subscribe(Scene, "scene")
    diagnostics = probe.subscribe(DiagnosticArray, "/diagnostics")
    try:
        assert probe.get_state(NODE, timeout=60) == "unconfigured"  # autostart: false
        assert probe.get_parameters(NODE, ["max_objects", "autostart"]) == {"max_objects": 3, "autostart": False}

        # Missing model: configure fails, the node stays up and unconfigured, and says why.
        assert probe.change_state(NODE, "configure") is False
        assert probe.get_state(NODE) == "unconfigured"
        probe.wait_for(lambda: (latest_diagnostics(diagnostics) or {}).get("model_error"), 15, "the error on /diagnostics")
        values = latest_diagnostics(diagnostics)
        assert values["_level"] == 2 and "not found" in values["model_error"] and "no_such_model" in values["model_error"]
        reply = probe.call(Reconstruct, f"{NODE}/reconstruct", Reconstruct.Request())
        assert not reply.success and "unconfigured" in reply.message

        # Corrupt model: the same, with the loader's reason.
        assert probe.set_parameters(NODE, {"model_path": str(corrupt)}) == [(True, "")]
        assert probe.change_state(NODE, "configure") is False
        assert probe.get_state(NODE) == "unconfigured"

        # A good model: configure, activate, scenes flow.
        assert probe.set_parameters(NODE, {"model_path": model_dir}) == [(True, "")]
        assert probe.change_state(NODE, "configure") is True
        assert probe.get_state(NODE) == "inactive"
        (ok, reason), = probe.set_parameters(NODE, {"model_path": "/elsewhere"})
        assert not ok and "clean up" in reason
        probe.spin(1.0)
        assert scenes == [], "an inactive node published"
        assert probe.change_state(NODE, "activate") is True
        assert probe.get_state(NODE) == "active"
        probe.wait_for(lambda: len(scenes) >= 2, 60, "scenes once active")
        assert all(len(s.objects) <= 3 for s in scenes)  # max_objects from --ros-args won

        # Deactivate: the stream stops; parameters read at activate may change again.
        assert probe.change_state(NODE, "deactivate") is True
        probe.spin(1.0)
        count = len(scenes)
        probe.spin(1.5)
        assert len(scenes) == count, "scenes after deactivate"
        assert probe.set_parameters(NODE, {"image_depth": 2}) == [(True, "")]
        assert probe.change_state(NODE, "activate") is True
        probe.wait_for(lambda: len(scenes) > count, 60, "scenes after re-activating")
        assert probe.change_state(NODE, "deactivate") is True

        # Cleanup releases the model; the model path may change again; shutdown finalizes.
        assert probe.change_state(NODE, "cleanup") is True
        assert probe.get_state(NODE) == "unconfigured"
        assert probe.set_parameters(NODE, {"model_path": model_dir}) == [(True, "")]
        assert probe.change_state(NODE, "shutdown") is True
        assert probe.get_state(NODE) == "finalized"
        assert node.poll() is None, "the node process must stay up after shutdown (a launch file ends it)"
    finally:
        probe.close()
        harness.stop(node)
        harness.stop(sim)
    log = harness.read_log(node)
    assert "configure failed" in log and "no_such_model" in log and "corrupt_model" in log
    assert "Traceback" not in log


def test_autostart_reaches_active_by_itself(tmp_path, model_dir):
    # The shipped entry point (python -m igllm_ros.node), not the test one.
    node = processes.start_node(name="lifecycle_test_node", params={"model_path": model_dir, "torch_threads": 1},
                              log_path=tmp_path / "node.log")
    probe = harness.Probe()
    try:
        probe.wait_for(lambda: probe.get_state(NODE, timeout=60) == "active", 60, "the active state")
    finally:
        probe.close()
        harness.stop(node)
    assert node.returncode == 0, harness.read_log(node)
    assert "loaded from" in harness.read_log(node)
