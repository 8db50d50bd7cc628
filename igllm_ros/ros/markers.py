"""RViz markers for a Scene message: one solid per object and a text label above it.

The array starts with a DELETEALL so objects of the previous scene never linger. Objects
use namespace "objects" and labels "labels", both with id = the object's program index, so
ids are stable for as long as the program lists the same objects.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation
from visualization_msgs.msg import Marker, MarkerArray

from igllm_ros import world
from igllm_ros.ros.conversions import object_index

OBJECTS_NS = "objects"
LABELS_NS = "labels"
SHAPE_MARKER = {"cube": Marker.CUBE, "sphere": Marker.SPHERE, "cylinder": Marker.CYLINDER}
LABEL_HEIGHT_M = 0.012
LABEL_GAP_M = 0.015


def label_text(obj) -> str:
    return f"{obj.id} {obj.size} {obj.color} {obj.material} {obj.shape} {obj.confidence:.2f}"


def scene_markers(scene_msg) -> MarkerArray:
    array = MarkerArray()
    clear = Marker()
    clear.header = scene_msg.header
    clear.action = Marker.DELETEALL
    array.markers.append(clear)
    # The table's up axis in the optical frame: labels float above objects along it.
    q = scene_msg.table_pose.orientation
    up = Rotation.from_quat([q.x, q.y, q.z, q.w]).apply([0.0, 0.0, 1.0])
    for obj in scene_msg.objects:
        index = object_index(obj.id)
        solid = Marker()
        solid.header = scene_msg.header
        solid.ns, solid.id = OBJECTS_NS, index
        solid.type = SHAPE_MARKER[obj.shape]
        solid.action = Marker.ADD
        solid.pose = obj.pose
        solid.scale = obj.dimensions
        r, g, b = world.COLORS_RGB[obj.color]
        solid.color.r, solid.color.g, solid.color.b = r / 255.0, g / 255.0, b / 255.0
        solid.color.a = 1.0
        array.markers.append(solid)

        label = Marker()
        label.header = scene_msg.header
        label.ns, label.id = LABELS_NS, index
        label.type = Marker.TEXT_VIEW_FACING
        label.action = Marker.ADD
        centre = np.array([obj.pose.position.x, obj.pose.position.y, obj.pose.position.z])
        above = centre + up * (obj.dimensions.z / 2.0 + LABEL_GAP_M)
        label.pose.position.x, label.pose.position.y, label.pose.position.z = (float(v) for v in above)
        label.pose.orientation.w = 1.0
        label.scale.z = LABEL_HEIGHT_M
        label.color.r = label.color.g = label.color.b = label.color.a = 1.0
        label.text = label_text(obj)
        array.markers.append(label)
    return array
