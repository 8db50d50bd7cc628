"""The shipped parameter files and launch files agree with the code."""
import ast
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")
from igllm_ros.ros.camera_sim import PARAMETERS as SIM_PARAMETERS  # noqa: E402
from igllm_ros.ros.params import PARAMS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def node_parameters(path):
    return yaml.safe_load(path.read_text())["/**"]["ros__parameters"]


def test_igllm_yaml_lists_every_parameter_with_its_default():
    shipped = node_parameters(ROOT / "config" / "igllm.yaml")
    assert shipped == {p.name: p.default for p in PARAMS}


def test_every_parameter_is_described_and_numbers_have_ranges():
    for p in PARAMS:
        descriptor = p.descriptor()
        assert len(descriptor.description) > 20, p.name
        if isinstance(p.default, (int, float)) and not isinstance(p.default, bool):
            ranges = list(descriptor.integer_range) + list(descriptor.floating_point_range)
            assert len(ranges) == 1, f"{p.name} has no range"
            low, high = ranges[0].from_value, ranges[0].to_value
            assert low <= p.default <= high, p.name


def test_camera_sim_yaml_matches_the_simulator():
    shipped = node_parameters(ROOT / "config" / "camera_sim.yaml")
    for name, value in shipped.items():
        assert name in SIM_PARAMETERS, name
        assert type(value) is type(SIM_PARAMETERS[name][0]), name


def launch_arguments(path):
    tree = ast.parse(path.read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
    }


def test_launch_files_declare_their_arguments():
    assert launch_arguments(ROOT / "launch" / "igllm.launch.py") == {
        "namespace", "model", "params_file", "image", "camera_info", "device", "autostart", "use_sim"}
    assert {"model", "device"} <= launch_arguments(ROOT / "launch" / "demo.launch.py")
    for path in (ROOT / "launch").glob("*.launch.py"):
        text = path.read_text()
        compile(text, str(path), "exec")
        assert "generate_launch_description" in text
    assert "fastdds_shm.xml" in (ROOT / "launch" / "igllm.launch.py").read_text()
