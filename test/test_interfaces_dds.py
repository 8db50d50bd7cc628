"""The package's interfaces cross a real DDS link between two processes."""
import subprocess
import sys
import textwrap
import time

import pytest

rclpy = pytest.importorskip("rclpy")
from igllm_ros.msg import Scene  # noqa: E402

PUBLISHER = textwrap.dedent(
    """
    import sys, rclpy
    from rclpy.node import Node
    from igllm_ros.msg import Scene, SceneObject
    rclpy.init()
    node = Node("scene_publisher")
    pub = node.create_publisher(Scene, "scene", 10)
    count = 0
    def tick():
        global count
        msg = Scene()
        msg.header.frame_id = "camera_optical_frame"
        msg.header.stamp.sec = 1000 + count
        msg.program = "camera(loc=(+0.374, -0.326, +0.267))"
        msg.model = "test-model"
        msg.inference_time_ms = 12.5
        obj = SceneObject(id="obj0", shape="cube", color="red", material="metal", size="large",
                          confidence=0.75, shape_confidence=0.9)
        obj.pose.position.z = 0.42
        obj.pose.orientation.w = 1.0
        obj.dimensions.x = obj.dimensions.y = obj.dimensions.z = 0.0495
        msg.objects = [obj]
        pub.publish(msg)
        count += 1
    node.create_timer(0.05, tick)
    end = node.get_clock().now().nanoseconds + 20e9
    while rclpy.ok() and node.get_clock().now().nanoseconds < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    """
)


@pytest.mark.ros
def test_scene_published_by_another_process_arrives_intact():
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER])
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("scene_listener", context=context)
        received = []
        node.create_subscription(Scene, "scene", received.append, 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 15
        while len(received) < 3 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert len(received) >= 3, "no Scene arrived from the publisher process"
        msg = received[-1]
        assert msg.header.frame_id == "camera_optical_frame" and msg.header.stamp.sec >= 1000
        assert msg.program.startswith("camera(") and msg.model == "test-model"
        assert msg.inference_time_ms == pytest.approx(12.5)
        (obj,) = msg.objects
        assert (obj.id, obj.shape, obj.color, obj.material, obj.size) == ("obj0", "cube", "red", "metal", "large")
        assert obj.confidence == pytest.approx(0.75) and obj.shape_confidence == pytest.approx(0.9)
        assert obj.pose.position.z == pytest.approx(0.42) and obj.dimensions.x == pytest.approx(0.0495)
        stamps = [m.header.stamp.sec for m in received]
        assert stamps == sorted(stamps)
    finally:
        publisher.kill()
        publisher.wait()
        rclpy.shutdown(context=context)
