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
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from igllm_ros import world


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
        """The model's camera at this image size."""
        f = world.focal_length_px(width)
        return cls(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

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
        sx, sy = width / self.width, height / self.height
        # Scale pixel-edge coordinates (centre + 0.5), not pixel-centre ones.
        return Intrinsics(
            width, height, self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5
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
