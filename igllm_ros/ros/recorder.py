"""Record topics into a rosbag2 MCAP file (rosbags' writer) from serialized messages.

The bag is a rosbag2 directory (metadata.yaml + one .mcap) with ros2msg schemas, the
package's own Scene and SceneObject included, so `ros2 bag info/play` and Foxglove open it.
"""
from __future__ import annotations

from pathlib import Path

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from igllm_ros.ros.share import share_path

OWN_MESSAGES = ("SceneObject", "Scene")  # dependencies first


def typestore_with_own_messages():
    """Kilted's standard messages plus igllm_ros/msg/*, parsed from the .msg files."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name in OWN_MESSAGES:
        text = share_path("msg", f"{name}.msg").read_text()
        types.update(get_types_from_msg(text, f"igllm_ros/msg/{name}"))
    store.register(types)
    return store


def type_name(msg_class) -> str:
    """'sensor_msgs/msg/Image' for sensor_msgs.msg.Image."""
    module = msg_class.__module__.split(".")
    return f"{module[0]}/{module[1]}/{msg_class.__name__}"


class BagRecorder:
    """Subscribes (raw, no deserialization) to topics and writes what arrives."""

    def __init__(self, node, path: str | Path, topics: list[tuple[str, type]]):
        self.path = Path(path)
        self._node = node
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        store = typestore_with_own_messages()
        self.counts: dict[str, int] = {}
        # Best effort takes from reliable and best-effort publishers alike.
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=20, reliability=ReliabilityPolicy.BEST_EFFORT)
        for topic, msg_class in topics:
            resolved = node.resolve_topic_name(topic)
            connection = self._writer.add_connection(resolved, type_name(msg_class), typestore=store)
            self.counts[resolved] = 0
            node.create_subscription(
                msg_class, topic, lambda data, c=connection, t=resolved: self._write(c, t, data), qos, raw=True
            )

    def _write(self, connection, topic: str, data: bytes) -> None:
        if self._writer is None:
            return
        self._writer.write(connection, self._node.get_clock().now().nanoseconds, data)
        self.counts[topic] += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
