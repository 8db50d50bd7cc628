"""igllm_camera_sim: a camera that publishes rendered scenes, with their ground truth.

Publishes `image` (sensor_msgs/Image), `camera_info` and, when the source knows it, the
true scene on `scene_gt` (igllm_ros/Scene, same header as the image, posed in the optical
frame). Frames come from a pool rendered at start (pool_size > 0; cheap to publish at high
rates) or are rendered one by one (pool_size 0).

Optional black borders (pad_*_px) make it a different camera: a wider view with the same
focal length and a shifted principal point, which camera_info reports. The node has to
crop them away using camera_info to see what the model was trained on.
"""
from __future__ import annotations

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from igllm_ros.msg import Scene
from igllm_ros.program import format_program
from igllm_ros.ros import qos
from igllm_ros.ros.conversions import scene_to_msg
from igllm_ros.ros.frame_sources import make_source
from igllm_ros.ros.image_conversion import encode_compressed, rgb_to_image_fields
from igllm_ros.ros.pinhole import Intrinsics

GROUND_TRUTH_MODEL = "ground_truth"

PARAMETERS = {
    "source": ("generator", "generator (sample and render scenes), dataset (a folder from igllm-data) or images (a folder of image files)."),
    "path": ("", "Folder for source=dataset or source=images."),
    "seed": (0, "Seed of the scene generator."),
    "split": ("val_id", "Split the generator samples from (its attribute and colour rules)."),
    "width": (320, "Rendered width (pixels); the height is 3/4 of it unless set."),
    "height": (240, "Rendered height (pixels)."),
    "rate_hz": (2.0, "Frames per second."),
    "pool_size": (20, "Frames rendered up front and cycled; 0 renders every frame anew."),
    "count": (0, "Frames to publish before exiting; 0 publishes forever."),
    "frame_id": ("camera_optical_frame", "frame_id of the image, camera_info and scene_gt headers."),
    "reliability": ("best_effort", "Reliability of image and camera_info: best_effort (like camera drivers) or reliable."),
    "encoding": ("rgb8", "Encoding of the published image: rgb8, bgr8, rgba8, bgra8, mono8, rgb16, bgr16, mono16..."),
    "row_padding": (0, "Extra bytes at the end of each image row (step > width x pixel size)."),
    "publish_compressed": (False, "Also publish image/compressed (JPEG)."),
    "pad_left_px": (0, "Black border on the left (a wider camera with the same focal length)."),
    "pad_right_px": (0, "Black border on the right."),
    "pad_top_px": (0, "Black border on top."),
    "pad_bottom_px": (0, "Black border at the bottom."),
}


class CameraSim(Node):
    def __init__(self, **kwargs):
        super().__init__("igllm_camera_sim", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            descriptor = ParameterDescriptor(description=description, read_only=True)
            if isinstance(default, int) and not isinstance(default, bool):
                descriptor.integer_range = [IntegerRange(from_value=0, to_value=1 << 20, step=1)]
            self.declare_parameter(name, default, descriptor)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._p = p
        if p["rate_hz"] <= 0:
            raise ValueError(f"rate_hz must be positive, got {p['rate_hz']}")
        source = make_source(p["source"], path=p["path"], seed=p["seed"], split=p["split"], width=p["width"], height=p["height"])
        self._source = source
        self._pool = [self._prepare(*source.next()) for _ in range(p["pool_size"])]
        image_qos = qos.image_qos(p["reliability"], 1)
        self._image_pub = self.create_publisher(Image, "image", image_qos)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", qos.image_qos(p["reliability"], 5))
        self._compressed_pub = (
            self.create_publisher(CompressedImage, "image/compressed", image_qos) if p["publish_compressed"] else None
        )
        self._gt_pub = self.create_publisher(Scene, "scene_gt", qos.SCENE_QOS)
        self.published = 0
        self.create_timer(1.0 / p["rate_hz"], self._tick)
        self.get_logger().info(
            f"publishing {p['source']} frames on {self.resolve_topic_name('image')} at {p['rate_hz']} Hz "
            f"({p['encoding']}, pool {p['pool_size']}, frame_id {p['frame_id']})"
        )

    @property
    def done(self) -> bool:
        return 0 < self._p["count"] <= self.published

    def _prepare(self, rgb: np.ndarray, scene):
        """(image data, step, width, height, intrinsics, compressed bytes, scene) for one frame."""
        p = self._p
        height, width = rgb.shape[:2]
        camera = Intrinsics.pinned(width, height)
        pads = (p["pad_top_px"], p["pad_bottom_px"], p["pad_left_px"], p["pad_right_px"])
        if any(pads):
            top, bottom, left, right = pads
            rgb = np.pad(rgb, ((top, bottom), (left, right), (0, 0)))
            height, width = rgb.shape[:2]
            camera = Intrinsics(width, height, camera.fx, camera.fy, camera.cx + left, camera.cy + top)
        data, step = rgb_to_image_fields(rgb, p["encoding"], row_padding=p["row_padding"])
        compressed = encode_compressed(rgb) if p["publish_compressed"] else None
        return data, step, width, height, camera, compressed, scene

    def _tick(self) -> None:
        if self.done:
            return
        if self._pool:
            frame = self._pool[self.published % len(self._pool)]
        else:
            frame = self._prepare(*self._source.next())
        data, step, width, height, camera, compressed, scene = frame
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._p["frame_id"])

        image = Image(header=header, height=height, width=width, encoding=self._p["encoding"], step=step)
        image.data = data
        self._image_pub.publish(image)
        self._info_pub.publish(camera_info(header, camera))
        if self._compressed_pub is not None:
            self._compressed_pub.publish(CompressedImage(header=header, format="jpeg", data=compressed))
        if scene is not None:
            self._gt_pub.publish(
                scene_to_msg(scene, header, program=format_program(scene), model=GROUND_TRUTH_MODEL)
            )
        self.published += 1


def camera_info(header: Header, camera: Intrinsics) -> CameraInfo:
    info = CameraInfo(header=header, width=camera.width, height=camera.height, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def main(args=None) -> None:
    rclpy.init(args=args)
    try:
        node = CameraSim()
    except (ValueError, ImportError) as err:
        rclpy.logging.get_logger("igllm_camera_sim").fatal(str(err))
        rclpy.try_shutdown()
        raise SystemExit(2) from err
    try:
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
