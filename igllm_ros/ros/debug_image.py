"""The debug image: the model's view with the reconstruction drawn over it, and optionally
the reconstruction re-rendered beside it (same camera, same size) for a direct comparison.

Drawn in the pinned camera's image (what the model saw, see pinhole.py), where the
published optical-frame poses project with the pinned intrinsics. DebugImageComposer puts
it together and owns the OpenGL renderer for the re-rendering.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw
from scipy.spatial.transform import Rotation

from igllm_ros import world
from igllm_ros.ros.pinhole import Intrinsics

_CIRCLE = np.linspace(0.0, 2.0 * np.pi, 25)


class DebugImageComposer:
    """The debug image of one frame: overlay, and the re-rendered reconstruction beside it.

    An OpenGL context belongs to the thread that made it, so the renderer lives on a thread
    of its own, made once and kept until close() (the node's lifetime): activating and
    deactivating the node never makes a new context. If no context can be made, the
    re-rendering is off (one warning) and the overlay alone is published.
    """

    def __init__(self, warn=print, info=print):
        self._warn, self._info = warn, info
        self._gl_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="igllm_debug_gl")
        self._renderer = None  # None: not made yet; False: cannot be made here

    def compose(self, pinned_rgb: np.ndarray, scene_msg, scene, rerender: bool) -> np.ndarray:
        view = enlarged(pinned_rgb)  # the pinned camera scales with the image: overlay stays exact
        height, width = view.shape[:2]
        picture = draw_overlay(view, scene_msg, Intrinsics.pinned(width, height))
        if rerender and self._renderer is not False:
            rendered = self._gl_thread.submit(self._render, scene, width, height).result()
            if rendered is not None:
                picture = side_by_side(picture, rendered)
        return picture

    def close(self) -> None:
        if self._gl_thread is not None:
            self._gl_thread.submit(self._release).result()
            self._gl_thread.shutdown()
            self._gl_thread = None

    def _render(self, scene, width: int, height: int):
        """On the GL thread: the scene rendered at this size, or None without OpenGL."""
        renderer = self._renderer
        if renderer and (renderer.width, renderer.height) != (width, height):
            self._release()  # a model with another input size was loaded
            renderer = None
        if renderer is None:
            try:
                from igllm_ros.data.render import SceneRenderer

                renderer = SceneRenderer(width=width, height=height)
                self._info(f"debug_rerender: made the OpenGL renderer ({width}x{height}); it is kept until shutdown")
            except Exception as err:  # no OpenGL here: the overlay alone still helps
                self._warn(f"debug_rerender off: cannot create the renderer ({err})")
                renderer = False
            self._renderer = renderer
        return renderer.render(scene).rgb if renderer else None

    def _release(self) -> None:
        if self._renderer:
            self._renderer.release()
        self._renderer = None


def object_outline(shape: str, dims, position, quat_xyzw) -> list[np.ndarray]:
    """Polylines (each (N, 3), optical frame) outlining an object: a cube's edges, a
    cylinder's rims and sides, a sphere's equator and meridian."""
    half = np.asarray(dims, dtype=float) / 2.0
    rot = Rotation.from_quat(quat_xyzw)
    if shape == "cube":
        signs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float)
        bottom = np.column_stack([signs * half[:2], np.full(5, -half[2])])
        top = np.column_stack([signs * half[:2], np.full(5, half[2])])
        lines = [bottom, top] + [np.stack([bottom[i], top[i]]) for i in range(4)]
    elif shape == "cylinder":
        ring = np.column_stack([np.cos(_CIRCLE) * half[0], np.sin(_CIRCLE) * half[1]])
        bottom = np.column_stack([ring, np.full(len(ring), -half[2])])
        top = np.column_stack([ring, np.full(len(ring), half[2])])
        lines = [bottom, top] + [np.stack([bottom[i], top[i]]) for i in range(0, 24, 6)]
    else:
        c, s = np.cos(_CIRCLE), np.sin(_CIRCLE)
        zeros = np.zeros_like(c)
        lines = [np.column_stack([c, s, zeros]) * half, np.column_stack([c, zeros, s]) * half]
    return [rot.apply(line) + np.asarray(position, dtype=float) for line in lines]


def draw_overlay(rgb: np.ndarray, scene_msg, camera: Intrinsics) -> np.ndarray:
    """rgb with each object of scene_msg outlined in its colour and labelled."""
    image = PILImage.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(image)
    k = camera.matrix()
    table = _table_outline(scene_msg.table_pose)
    _polyline(draw, table, k, (255, 255, 255), 1)
    for obj in scene_msg.objects:
        p, q = obj.pose.position, obj.pose.orientation
        position = (p.x, p.y, p.z)
        dims = (obj.dimensions.x, obj.dimensions.y, obj.dimensions.z)
        colour = world.COLORS_RGB.get(obj.color, (255, 255, 255))
        for line in object_outline(obj.shape, dims, position, (q.x, q.y, q.z, q.w)):
            _polyline(draw, line, k, (255, 255, 255), 3)  # halo, so dark colours show
            _polyline(draw, line, k, colour, 1)
        if p.z > 1e-3:
            u, v = _project(np.array([position]), k)[0]
            draw.text((u + 4, v - 4), f"{obj.id} {obj.confidence:.2f}", fill=(255, 255, 255))
    return np.asarray(image)


def enlarged(rgb: np.ndarray, min_height: int = 240) -> np.ndarray:
    """rgb scaled up by a whole factor to at least min_height rows (small model inputs such
    as 160x120 leave no room for readable outlines and labels); unchanged if tall enough."""
    scale = max(1, min_height // rgb.shape[0])
    if scale == 1:
        return rgb
    return np.asarray(PILImage.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), PILImage.BILINEAR))


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    if left.shape[0] != right.shape[0]:
        right = np.asarray(PILImage.fromarray(right).resize((right.shape[1] * left.shape[0] // right.shape[0], left.shape[0])))
    return np.ascontiguousarray(np.concatenate([left, right], axis=1))


def _table_outline(table_pose) -> np.ndarray:
    e = world.TABLE_HALF_EXTENT_M
    corners = np.array([[-e, -e, 0], [e, -e, 0], [e, e, 0], [-e, e, 0], [-e, -e, 0]], dtype=float)
    p, q = table_pose.position, table_pose.orientation
    return Rotation.from_quat([q.x, q.y, q.z, q.w]).apply(corners) + np.array([p.x, p.y, p.z])


def _project(points: np.ndarray, k: np.ndarray) -> np.ndarray:
    p = points @ k.T
    return p[:, :2] / p[:, 2:3]


def _polyline(draw: ImageDraw.ImageDraw, points: np.ndarray, k: np.ndarray, colour, width: int) -> None:
    if np.any(points[:, 2] <= 1e-3):  # behind the camera: nothing sensible to draw
        return
    uv = _project(points, k)
    draw.line([tuple(map(float, p)) for p in uv], fill=tuple(colour), width=width)
