"""The scene data model shared by data, model, metrics and the ROS node.

Objects live in the table frame (metres); the camera is described by its position in
the table frame (it looks at the table origin with no roll, see world.py), which is
enough to express every object in the camera's optical frame (REP-103).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.spatial.transform import Rotation

from igllm_ros import world


# An object's categorical attributes, in the order programs and tables list them.
ATTRIBUTE_NAMES = tuple(world.ATTRIBUTES)  # shape, color, material, size


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    material: str
    size: str
    loc: tuple[float, float, float]  # centre in the table frame, metres
    rotation: float = 0.0  # yaw about the table normal, degrees
    confidence: float = 1.0  # overall; the product of the attribute confidences
    attribute_confidence: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def dimensions(self) -> tuple[float, float, float]:
        return world.dimensions(self.shape, self.size)

    def attributes(self) -> tuple[str, str, str, str]:
        return tuple(getattr(self, name) for name in ATTRIBUTE_NAMES)


@dataclass(frozen=True)
class Camera:
    loc: tuple[float, float, float] = world.CAMERA_NOMINAL_POSITION_M  # table frame, metres

    def table_from_optical(self) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) mapping optical-frame points into the table frame: p_table = R p_opt + t."""
        return look_at_rotation(np.asarray(self.loc, dtype=float)), np.asarray(self.loc, dtype=float)

    def to_optical(self, points_table: np.ndarray) -> np.ndarray:
        """Table-frame points (N, 3) into the optical frame."""
        rot, t = self.table_from_optical()
        return (np.asarray(points_table, dtype=float) - t) @ rot


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...] = ()
    camera: Camera = Camera()

    def with_objects(self, objects) -> "Scene":
        return replace(self, objects=tuple(objects))


def look_at_rotation(camera_position: np.ndarray, target=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Rotation (3x3) whose columns are the optical frame's axes in the table frame.

    The camera looks at `target` with no roll: optical z points at the target, optical x
    is horizontal (perpendicular to table z), optical y points down the image.
    """
    forward = np.asarray(target, dtype=float) - camera_position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    norm = np.linalg.norm(right)
    if norm < 1e-9:
        raise ValueError("camera looks straight down the table normal: roll is undefined")
    right /= norm
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


# The pinned camera matrix K in the two pixel conventions in use; both describe the same
# rays, they differ by half a pixel in where they put pixel (0, 0):
# - pixel edges (the renderer, OpenGL, masks, label projection): pixel (i, j) covers
#   [i, i + 1) x [j, j + 1), so the image centre is (W / 2, H / 2);
# - pixel centres (ROS camera_info, OpenCV): pixel (i, j) is the point (i, j), so the image
#   centre is ((W - 1) / 2, (H - 1) / 2).
def intrinsics_pixel_edges(width: int = world.IMAGE_WIDTH, height: int = world.IMAGE_HEIGHT) -> np.ndarray:
    """The pinned K with pixel edges at integer coordinates (principal point W/2, H/2)."""
    f = world.focal_length_px(width)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def intrinsics_pixel_centres(width: int = world.IMAGE_WIDTH, height: int = world.IMAGE_HEIGHT) -> np.ndarray:
    """The pinned K with pixel centres at integer coordinates, as camera_info carries it
    (principal point (W-1)/2, (H-1)/2)."""
    return intrinsics_pixel_edges(width, height) - np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]])


# The renderer's, the records' and the grammar's K (they all mean pixel edges).
intrinsics = intrinsics_pixel_edges


def project(points_optical: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Optical-frame points (N, 3) to pixel coordinates (N, 2)."""
    p = np.asarray(points_optical, dtype=float) @ k.T
    return p[:, :2] / p[:, 2:3]


def object_pose_in_optical(obj: SceneObject, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), quaternion xyzw (4,)) of an object in the camera's optical frame."""
    rot, t = camera.table_from_optical()
    position = (np.asarray(obj.loc, dtype=float) - t) @ rot
    table_from_object = Rotation.from_euler("z", obj.rotation, degrees=True)
    optical_from_object = Rotation.from_matrix(rot.T) * table_from_object
    return position, optical_from_object.as_quat()
