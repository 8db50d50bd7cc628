"""An outside client that feeds igllm_node hostile and faulty input over DDS: a camera
driver with every field open to abuse, decompression bombs, and floods that record the
diagnostics levels seen. Shared by test_ros_reliability.py and bench/bench_reliability.py.
"""
from __future__ import annotations

import struct
import time
import zlib

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from igllm_ros import world
from igllm_ros.ros import qos
from igllm_ros.ros.image_conversion import rgb_to_image_fields

from support.harness import latest_diagnostics

OK, WARN, ERROR = 0, 1, 2
WIDTH, HEIGHT = world.IMAGE_WIDTH, world.IMAGE_HEIGHT


def valid_image(seed: int = 5) -> np.ndarray:
    """A valid camera picture (smooth colours plus noise), WIDTH x HEIGHT."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    noise = np.random.default_rng(seed).integers(0, 40, (HEIGHT, WIDTH, 3))
    base = np.stack([x * 200 // WIDTH, y * 200 // HEIGHT, (x + y) % 160], axis=2)
    return (base + noise).astype(np.uint8)


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def image_msg(rgb: np.ndarray, **overrides) -> Image:
    """rgb as an rgb8 Image, with any field overridden (to make it bad)."""
    data, step = rgb_to_image_fields(rgb, "rgb8")
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=step, data=data)
    for key, value in overrides.items():
        setattr(msg, key, value)
    return msg


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height 8-bit grey pixels (the pixel data is
    one compressed row of zeros: a decoder that trusts the header allocates it all)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


class Camera:
    """The client acting as a camera driver on image, image/compressed and camera_info."""

    def __init__(self, probe, frame_id: str = "test_camera"):
        self.probe = probe
        self.frame_id = frame_id
        self.image_pub = probe.node.create_publisher(Image, "image", qos.image_qos("best_effort", 1))
        self.compressed_pub = probe.node.create_publisher(CompressedImage, "image/compressed", qos.image_qos("best_effort", 1))
        self.info_pub = probe.node.create_publisher(CameraInfo, "camera_info", qos.image_qos("best_effort", 5))

    def stamp(self, header, offset_s: float = 0.0):
        now = self.probe.node.get_clock().now().nanoseconds + int(offset_s * 1e9)
        header.stamp.sec, header.stamp.nanosec = divmod(now, 1_000_000_000)
        header.frame_id = self.frame_id
        return header

    def send(self, msg: Image, wait: float = 0.25, stamp_offset_s: float = 0.0) -> Image:
        self.stamp(msg.header, stamp_offset_s)
        self.image_pub.publish(msg)
        self.probe.spin(wait)  # best effort, depth 1: give the node time to take it
        return msg

    def image(self, rgb: np.ndarray | None = None, wait: float = 0.25, **overrides) -> Image:
        return self.send(image_msg(valid_image() if rgb is None else rgb, **overrides), wait)

    def compressed(self, data: bytes, wait: float = 0.25) -> CompressedImage:
        msg = CompressedImage(format="png", data=data)
        self.stamp(msg.header)
        self.compressed_pub.publish(msg)
        self.probe.spin(wait)
        return msg

    def camera_info(self, width=WIDTH, height=HEIGHT, fx=None, fy=None, cx=None, cy=None, binning=(0, 0),
                    wait: float = 0.25) -> CameraInfo:
        """Pinned-camera intrinsics for width x height unless given."""
        fx = world.FOCAL_OVER_WIDTH * max(width, 1) if fx is None else fx
        fy = fx if fy is None else fy
        cx = (width - 1) / 2 if cx is None else cx
        cy = (height - 1) / 2 if cy is None else cy
        msg = CameraInfo(width=width, height=height, binning_x=binning[0], binning_y=binning[1])
        msg.k = [float(fx), 0.0, float(cx), 0.0, float(fy), float(cy), 0.0, 0.0, 1.0]
        self.stamp(msg.header)
        for _ in range(3):  # best effort: say it thrice
            self.info_pub.publish(msg)
            self.probe.spin(wait / 3)
        return msg


class DiagnosticsLog:
    """Every status of one node on /diagnostics, with the client's time of arrival."""

    def __init__(self, probe, node_name: str = "igllm_node"):
        self.node_name = node_name
        self.arrays: list = []
        self.times: list[float] = []
        probe.node.create_subscription(DiagnosticArray, "/diagnostics", self._add, 50)

    def _add(self, array) -> None:
        self.arrays.append(array)
        self.times.append(time.monotonic())

    def latest(self) -> dict:
        return latest_diagnostics(self.arrays, self.node_name)

    def fresh(self, probe, timeout: float = 10.0) -> dict:
        """The latest status once two more have arrived: the second was published after this
        call, so its counts include every frame sent before it (latest() may lag a period)."""
        asked, known = time.monotonic(), len(self.times)
        probe.wait_for(lambda: len(self.times) >= known + 2 and self.times[-1] > asked, timeout, "a fresh /diagnostics status")
        return self.latest()

    def since(self, start: float) -> list[dict]:
        from support.harness import diagnostics_values

        found = (diagnostics_values(a, self.node_name) for a, t in zip(self.arrays, self.times) if t >= start)
        return [v for v in found if v]

    def count(self, kind: str) -> int:
        return int(self.latest().get(f"bad_input.{kind}", 0))


def flood(probe, send_one, seconds: float, rate_hz: float = 100.0) -> int:
    """Call send_one() rate_hz times a second for seconds (spinning the client between
    calls, so diagnostics keep arriving); returns how many were sent."""
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        send_one()
        sent += 1
        next_at = start + sent / rate_hz
        probe.executor.spin_once(timeout_sec=0.0)  # even when behind: diagnostics must come in
        while time.monotonic() < next_at:
            probe.executor.spin_once(timeout_sec=max(0.0, next_at - time.monotonic()))
    return sent


def stream_until(probe, camera: Camera, done, timeout: float, rate_hz: float = 10.0, what: str = "condition") -> float:
    """Valid images at rate_hz until done() holds; returns the seconds it took."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s of valid images waiting for {what}")
        camera.image(wait=1.0 / rate_hz)
    return time.monotonic() - start
