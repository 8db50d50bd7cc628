"""Map any pinhole camera's image onto the model's pinned camera, keeping the optical frame.

The model was trained on one camera: fx = fy = world.FOCAL_OVER_WIDTH x width, principal
point at the image centre, 4:3. An input camera (fx, fy, cx, cy) sees the same rays if we
cut out the image region that the pinned camera would see from the same optical centre
and orientation, and resample it to the model's input size:

    pinned pixel (u', v')  <->  ray ((u' - W'/2) / f', (v' - H'/2) / f', 1),  f' = F W'
    input pixel  (u, v)    =   (cx + fx x, cy + fy y)

so the region is [cx - fx W'/(2 f'), cx + fx W'/(2 f')] x [cy - fy H'/(2 f'), ...] — centred
on the principal point, cropped where the input sees more than the pinned camera and padded
with black where it sees less, with non-square pixels (fx != fy) undone by the resize. The
optical centre and axes do not move, so poses the model gives in its (pinned) optical frame
are poses in the input image's optical frame.

Pixel coordinates follow ROS/OpenCV (camera_info K): pixel centres at integer coordinates,
so the image centre of a W-wide image is (W - 1) / 2. Lens distortion is not undone: feed
rectified images (image_rect).

Before any pixel is touched, ViewLimits.check bounds the work: an image too small or too
thin to be a camera picture, intrinsics whose pinned view barely overlaps the image, and a
pinned view so large that padding it would take more memory than the model's input is
worth are refused with a bad-input kind of their own (ImageError.kind).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from igllm_ros import world
from igllm_ros.ros.image_conversion import ImageError


@dataclass(frozen=True)
class Intrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def pinned(cls, width: int, height: int) -> "Intrinsics":
        """The model's camera at this image size, pixel centres at integers as camera_info
        has them (igllm_ros.scene.intrinsics_pixel_centres)."""
        from igllm_ros.scene import intrinsics_pixel_centres

        k = intrinsics_pixel_centres(width, height)
        return cls(width, height, k[0, 0], k[1, 1], k[0, 2], k[1, 2])

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def problem(self) -> str | None:
        """Why these intrinsics are unusable, or None."""
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            return f"non-finite intrinsics fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}"
        if self.fx <= 0 or self.fy <= 0:
            return f"focal lengths must be positive (fx={self.fx}, fy={self.fy})"
        if self.width <= 0 or self.height <= 0:
            return f"image size must be positive ({self.width}x{self.height})"
        return None

    def scaled_to(self, width: int, height: int) -> "Intrinsics":
        """The same camera at another resolution (binning or a resized stream)."""
        if min(self.width, self.height, width, height) <= 0:
            raise ValueError(f"cannot scale intrinsics from {self.width}x{self.height} to {width}x{height}")
        sx, sy = width / self.width, height / self.height
        # Scale pixel-edge coordinates (centre + 0.5), not pixel-centre ones.
        return Intrinsics(
            width, height, self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5
        )


def from_camera_info(info) -> Intrinsics:
    """The intrinsics of the image a sensor_msgs/CameraInfo describes (any object with its
    fields): K, then the ROI (the image is that region of the sensor), then binning.
    Raises ValueError with the reason when they are unusable."""
    k = [float(v) for v in info.k]
    camera = Intrinsics(int(info.width), int(info.height), k[0], k[4], k[2], k[5])
    roi = info.roi
    if roi.width > 0 and roi.height > 0:
        camera = Intrinsics(int(roi.width), int(roi.height), camera.fx, camera.fy,
                            camera.cx - roi.x_offset, camera.cy - roi.y_offset)
    problem = camera.problem()  # before binning: a 0x0 camera cannot be scaled
    if problem is None:
        bx, by = max(1, int(info.binning_x)), max(1, int(info.binning_y))
        if (bx, by) != (1, 1):
            if camera.width < bx or camera.height < by:
                problem = f"binning {bx}x{by} leaves no pixels of a {camera.width}x{camera.height} image"
            else:
                camera = camera.scaled_to(camera.width // bx, camera.height // by)
                problem = camera.problem()
    if problem:
        raise ValueError(problem)
    return camera


def fallback_intrinsics(width: int, height: int, fx: float, fy: float, cx: float, cy: float) -> Intrinsics:
    """Intrinsics from the node's parameters: fx 0 is the pinned camera's, fy 0 is fx, and a
    negative cx/cy is the image centre."""
    pinned = Intrinsics.pinned(width, height)
    fx = fx or pinned.fx
    return Intrinsics(width, height, fx, fy or fx, cx if cx >= 0 else pinned.cx, cy if cy >= 0 else pinned.cy)


@dataclass(frozen=True)
class ViewLimits:
    """What the node accepts before it allocates anything for a frame."""

    min_side_px: int = 32  # smaller images carry too little for the model
    max_aspect_ratio: float = 4.0  # long side / short side
    max_view_scale: float = 16.0  # the pinned view spans at most this many model inputs per side
    min_view_overlap: float = 0.1  # the image must fill this fraction of the pinned view

    def check_image(self, width: int, height: int) -> None:
        """ImageError ('too_small', 'bad_aspect_ratio') for an image no camera model can use."""
        if min(width, height) < self.min_side_px:
            raise ImageError("too_small", f"image {width}x{height} is smaller than min_image_side_px={self.min_side_px}")
        aspect = max(width, height) / min(width, height)
        if aspect > self.max_aspect_ratio:
            raise ImageError(
                "bad_aspect_ratio",
                f"image {width}x{height} has aspect ratio {aspect:.1f}, more than max_aspect_ratio={self.max_aspect_ratio:g}",
            )

    def check_view(self, camera: Intrinsics, out_width: int, out_height: int) -> None:
        """ImageError ('bad_intrinsics', 'view_too_large') when mapping this camera onto the
        pinned one would be meaningless or would need a padded view far larger than the image."""
        left, top, right, bottom = pinned_region(camera, out_width, out_height)
        view_w, view_h = right - left, bottom - top
        covered_w = max(0.0, min(right, camera.width) - max(left, 0.0))
        covered_h = max(0.0, min(bottom, camera.height) - max(top, 0.0))
        overlap = covered_w * covered_h / (view_w * view_h)
        where = f"fx={camera.fx:g} fy={camera.fy:g} cx={camera.cx:g} cy={camera.cy:g} for {camera.width}x{camera.height}"
        if overlap < self.min_view_overlap:
            raise ImageError(
                "bad_intrinsics",
                f"intrinsics {where}: the image fills {overlap:.2%} of the model's view "
                f"(min_view_overlap={self.min_view_overlap:g}); wrong camera_info or fx/fy/cx/cy?",
            )
        if min(view_w, view_h) < 1.0:
            raise ImageError("bad_intrinsics", f"intrinsics {where}: the model's view spans {view_w:.2g}x{view_h:.2g} pixels")
        if view_w > self.max_view_scale * out_width or view_h > self.max_view_scale * out_height:
            raise ImageError(
                "view_too_large",
                f"intrinsics {where}: the model's view spans {view_w:.0f}x{view_h:.0f} input pixels, more than "
                f"max_view_scale={self.max_view_scale:g} x the model input {out_width}x{out_height}",
            )


def pinned_region(camera: Intrinsics, out_width: int, out_height: int) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) in the input image's pixel-edge coordinates (pixel i spans
    [i, i + 1]) that the pinned camera of size out_width x out_height sees."""
    f_out = world.focal_length_px(out_width)
    half_w = camera.fx * out_width / (2.0 * f_out)
    half_h = camera.fy * out_height / (2.0 * f_out)
    cx, cy = camera.cx + 0.5, camera.cy + 0.5  # to pixel-edge coordinates
    return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def to_pinned(rgb: np.ndarray, camera: Intrinsics, out_width: int, out_height: int) -> np.ndarray:
    """The image the pinned camera (out_width x out_height) would take from the same pose."""
    height, width = rgb.shape[:2]
    left, top, right, bottom = pinned_region(camera, out_width, out_height)
    if (width, height) == (out_width, out_height) and np.allclose((left, top, right, bottom), (0, 0, width, height)):
        return rgb  # already the pinned camera
    # Keep only the part of the image the view (and the resize filter's reach) covers, so
    # padding allocates about the view, never the view plus the whole image.
    reach = math.ceil(max(1.0, (right - left) / out_width, (bottom - top) / out_height)) + 1
    x0, y0 = max(0, math.floor(left) - reach), max(0, math.floor(top) - reach)
    x1, y1 = min(width, math.ceil(right) + reach), min(height, math.ceil(bottom) + reach)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((out_height, out_width, 3), np.uint8)  # the view misses the image
    rgb = rgb[y0:y1, x0:x1]
    height, width = rgb.shape[:2]
    left, right, top, bottom = left - x0, right - x0, top - y0, bottom - y0
    # Pad with black so the region lies inside the array, then crop + resize in one step
    # (PIL's resize with a box filters properly when it shrinks).
    pad_left = max(0, math.ceil(-left))
    pad_top = max(0, math.ceil(-top))
    pad_right = max(0, math.ceil(right - width))
    pad_bottom = max(0, math.ceil(bottom - height))
    if pad_left or pad_top or pad_right or pad_bottom:
        rgb = np.pad(rgb, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0)))
    box = (left + pad_left, top + pad_top, right + pad_left, bottom + pad_top)
    resized = PILImage.fromarray(rgb).resize((out_width, out_height), PILImage.BILINEAR, box=box)
    return np.asarray(resized)
