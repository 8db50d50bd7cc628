"""QoS profiles of the node and the camera simulator."""
from __future__ import annotations

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

RELIABILITIES = ("best_effort", "reliable")


def image_qos(reliability: str = "best_effort", depth: int = 1) -> QoSProfile:
    """Camera streams: sensor-data QoS (best effort, keep last) with the given depth.

    Best effort with depth 1 means a slow reader gets the newest image, never a backlog.
    A best-effort subscription also accepts a reliable publisher; choose "reliable" only
    to match a reliable-only publisher such as a bag replay.
    """
    if reliability not in RELIABILITIES:
        raise ValueError(f"reliability must be one of {RELIABILITIES}, got {reliability!r}")
    profile = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE,
        durability=qos_profile_sensor_data.durability,
    )
    return profile


# Outputs: reliable so both reliable and best-effort readers (RViz, rosbag, planners) connect.
SCENE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
DEBUG_IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
