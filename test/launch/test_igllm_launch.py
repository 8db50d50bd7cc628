"""launch_testing: igllm.launch.py with the simulator brings up an active node that
publishes scenes whose headers are the camera's. Runs where launch_testing is installed
(a ROS 2 install, `colcon test`); skipped here. test/test_ros_*.py cover the same
behaviour by starting the executables as subprocesses."""
import os
import time
import unittest

import pytest

launch_testing = pytest.importorskip("launch_testing")
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch.substitutions import PathJoinSubstitution  # noqa: E402
from launch_ros.substitutions import FindPackageShare  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402

from igllm_ros.msg import Scene  # noqa: E402

# A model directory for the test: IGLLM_TEST_MODEL, else the shipped one.
MODEL = os.environ.get("IGLLM_TEST_MODEL", "models/igllm-tiny-float")


@pytest.mark.launch_test
def generate_test_description():
    launch = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("igllm_ros"), "launch", "igllm.launch.py"])),
        launch_arguments={"use_sim": "true", "model": MODEL, "device": "cpu"}.items(),
    )
    return LaunchDescription([launch, launch_testing.actions.ReadyToTest()])


class TestRunningNode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("igllm_launch_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def spin_until(self, predicate, timeout):
        end = time.monotonic() + timeout
        while not predicate() and time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        return predicate()

    def test_node_becomes_active(self):
        client = self.node.create_client(GetState, "/igllm_node/get_state")
        self.assertTrue(client.wait_for_service(timeout_sec=60))
        state = {"label": ""}

        def ask():
            future = client.call_async(GetState.Request())
            self.spin_until(future.done, 10)
            state["label"] = future.result().current_state.label if future.done() else ""
            return state["label"] == "active"

        self.assertTrue(self.spin_until(ask, 120), f"state {state['label']}")

    def test_scenes_carry_the_camera_header(self):
        scenes, truths = [], {}
        self.node.create_subscription(Scene, "/scene", scenes.append, 10)
        self.node.create_subscription(Scene, "/scene_gt", lambda m: truths.setdefault(
            (m.header.stamp.sec, m.header.stamp.nanosec), m.header.frame_id), 10)
        self.assertTrue(self.spin_until(lambda: len(scenes) >= 3, 180), "no scenes")
        matched = [s for s in scenes if (s.header.stamp.sec, s.header.stamp.nanosec) in truths]
        self.assertTrue(matched)
        for scene in matched:
            self.assertEqual(scene.header.frame_id, truths[(scene.header.stamp.sec, scene.header.stamp.nanosec)])


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_clean_exit(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
