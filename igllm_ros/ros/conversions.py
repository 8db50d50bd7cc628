"""igllm_ros.scene.Scene (table frame) <-> igllm_ros/Scene messages (camera optical frame), and
RGB arrays -> sensor_msgs/Image."""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Pose
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import Image

from igllm_ros import scene as sc
from igllm_ros import world
from igllm_ros.msg import Scene as SceneMsg
from igllm_ros.msg import SceneObject as SceneObjectMsg


def object_id(index: int) -> str:
    """The id of the index-th object of the program (msg/SceneObject.msg)."""
    return f"obj{index}"


def object_index(object_id_text: str) -> int:
    return int(object_id_text[3:])


def pose_msg(position, quaternion_xyzw) -> Pose:
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    q = pose.orientation
    q.x, q.y, q.z, q.w = (float(v) for v in quaternion_xyzw)
    return pose


def table_pose_in_optical(camera: sc.Camera) -> Pose:
    """The table frame's pose in the optical frame: the inverse of table_from_optical."""
    rot, t = camera.table_from_optical()  # p_table = rot p_opt + t
    return pose_msg(-rot.T @ t, Rotation.from_matrix(rot.T).as_quat())


def scene_to_msg(scene: sc.Scene, header, *, program: str = "", model: str = "", min_confidence: float = 0.0) -> SceneMsg:
    """A Scene message posed in header.frame_id (the camera optical frame).

    Objects below min_confidence are left out; the rest keep their program index as id.
    """
    msg = SceneMsg()
    msg.header = header
    msg.program = program
    msg.model = model
    msg.table_pose = table_pose_in_optical(scene.camera)
    for index, obj in enumerate(scene.objects):
        if obj.confidence < min_confidence:
            continue
        out = SceneObjectMsg()
        out.id = object_id(index)
        out.shape, out.color, out.material, out.size = obj.attributes()
        out.confidence = float(obj.confidence)
        conf = obj.attribute_confidence
        out.shape_confidence = float(conf.get("shape", 1.0))
        out.color_confidence = float(conf.get("color", 1.0))
        out.material_confidence = float(conf.get("material", 1.0))
        out.size_confidence = float(conf.get("size", 1.0))
        out.pose = pose_msg(*sc.object_pose_in_optical(obj, scene.camera))
        out.dimensions.x, out.dimensions.y, out.dimensions.z = world.dimensions(obj.shape, obj.size)
        msg.objects.append(out)
    return msg


def rgb_image_msg(rgb: np.ndarray, header) -> Image:
    """An rgb8 Image of an (H, W, 3) uint8 array."""
    msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg


def msg_to_scene(msg: SceneMsg) -> sc.Scene:
    """Back to the table frame, through the message's table_pose (for evaluation)."""
    p, q = msg.table_pose.position, msg.table_pose.orientation
    optical_from_table = Rotation.from_quat([q.x, q.y, q.z, q.w])
    table_origin = np.array([p.x, p.y, p.z])
    table_from_optical = optical_from_table.inv()
    camera_loc = table_from_optical.apply(-table_origin)
    objects = []
    for obj in msg.objects:
        position = np.array([obj.pose.position.x, obj.pose.position.y, obj.pose.position.z])
        o = obj.pose.orientation
        loc = table_from_optical.apply(position - table_origin)
        table_from_object = table_from_optical * Rotation.from_quat([o.x, o.y, o.z, o.w])
        yaw = table_from_object.as_euler("ZYX", degrees=True)[0]
        objects.append(
            sc.SceneObject(
                shape=obj.shape,
                color=obj.color,
                material=obj.material,
                size=obj.size,
                loc=tuple(float(v) for v in loc),
                rotation=float(world.canonical_yaw_deg(obj.shape, yaw)),
                confidence=float(obj.confidence),
                attribute_confidence={
                    "shape": float(obj.shape_confidence),
                    "color": float(obj.color_confidence),
                    "material": float(obj.material_confidence),
                    "size": float(obj.size_confidence),
                },
            )
        )
    return sc.Scene(objects=tuple(objects), camera=sc.Camera(loc=tuple(float(v) for v in camera_loc)))
