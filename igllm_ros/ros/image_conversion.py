"""sensor_msgs/Image and CompressedImage <-> RGB uint8 arrays, without cv_bridge.

Works on any object with the Image fields (encoding, width, height, step, is_bigendian,
data), so it needs no ROS to test. Row padding (`step` > width x pixel size) and the
byte order of 16-bit encodings are honoured. 16-bit values map to 8 bits over the full
range (v x 255 / 65535), as cv_bridge does for display. Generic "8UC3"/"16UC3" (and the
4-channel forms) are read as BGR(A), OpenCV's convention. YUV 4:2:2 uses BT.601 with
limited range (what usb_cam and v4l2 cameras send); Bayer mosaics are demosaiced
bilinearly. Depth and float images are refused: they are not camera pictures.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from scipy.ndimage import convolve


class ImageError(ValueError):
    """An image the node cannot use; `kind` names the problem for the diagnostics counters."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class _Layout:
    channels: int
    bytes_per_channel: int
    rgb_index: tuple[int, int, int]  # which channels hold R, G, B


_RGB, _BGR, _GRAY = (0, 1, 2), (2, 1, 0), (0, 0, 0)
_LAYOUTS = {
    "rgb8": _Layout(3, 1, _RGB),
    "bgr8": _Layout(3, 1, _BGR),
    "rgba8": _Layout(4, 1, _RGB),
    "bgra8": _Layout(4, 1, _BGR),
    "mono8": _Layout(1, 1, _GRAY),
    "8UC1": _Layout(1, 1, _GRAY),
    "8UC3": _Layout(3, 1, _BGR),
    "8UC4": _Layout(4, 1, _BGR),
    "rgb16": _Layout(3, 2, _RGB),
    "bgr16": _Layout(3, 2, _BGR),
    "rgba16": _Layout(4, 2, _RGB),
    "bgra16": _Layout(4, 2, _BGR),
    "mono16": _Layout(1, 2, _GRAY),
    "16UC1": _Layout(1, 2, _GRAY),
    "16UC3": _Layout(3, 2, _BGR),
    "16UC4": _Layout(4, 2, _BGR),
}
# YUV 4:2:2, two bytes per pixel: byte offsets of (Y0, U, Y1, V) within each 4-byte pair.
_YUV422 = {"yuv422": (1, 0, 3, 2), "uyvy": (1, 0, 3, 2), "yuv422_yuy2": (0, 1, 2, 3), "yuyv": (0, 1, 2, 3)}
# Bayer: the colour of the top-left 2x2 cell, row-major.
_BAYER = {"bayer_rggb8": "RGGB", "bayer_bggr8": "BGGR", "bayer_gbrg8": "GBRG", "bayer_grbg8": "GRBG"}

SUPPORTED_ENCODINGS = tuple(_LAYOUTS) + tuple(_YUV422) + tuple(_BAYER)


def bytes_per_pixel(encoding: str) -> int:
    if encoding in _LAYOUTS:
        layout = _LAYOUTS[encoding]
        return layout.channels * layout.bytes_per_channel
    if encoding in _YUV422:
        return 2
    if encoding in _BAYER:
        return 1
    raise ImageError(
        "unknown_encoding",
        f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}",
    )


def check_image(msg, max_pixels: int | None = None) -> None:
    """Cheap checks of an Image's header fields; raises ImageError. Touches no pixels."""
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    if width == 0 or height == 0:
        raise ImageError("empty", f"empty image ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            "oversized", f"image {width}x{height} has more than max_image_pixels={max_pixels} pixels"
        )
    pixel = bytes_per_pixel(msg.encoding)
    if step < width * pixel:
        raise ImageError(
            "bad_step", f"step {step} is less than width {width} x {pixel} bytes for {msg.encoding}"
        )
    if len(msg.data) != step * height:
        raise ImageError(
            "bad_data_size", f"data has {len(msg.data)} bytes; step {step} x height {height} = {step * height}"
        )
    if (msg.encoding in _YUV422 and width % 2) or (msg.encoding in _BAYER and (width % 2 or height % 2)):
        raise ImageError("bad_dimensions", f"{msg.encoding} needs an even width (and height for Bayer); got {width}x{height}")


def image_to_rgb(msg, max_pixels: int | None = None) -> np.ndarray:
    """An Image message as a contiguous (height, width, 3) uint8 RGB array."""
    check_image(msg, max_pixels)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, step)
    rows = rows[:, : width * bytes_per_pixel(msg.encoding)]  # drop the row padding
    if msg.encoding in _YUV422:
        return _yuv422_to_rgb(rows.reshape(height, width // 2, 4), _YUV422[msg.encoding])
    if msg.encoding in _BAYER:
        return _demosaic(rows, _BAYER[msg.encoding])
    layout = _LAYOUTS[msg.encoding]
    if layout.bytes_per_channel == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        values = np.ascontiguousarray(rows).view(dtype).reshape(height, width, layout.channels)
        pixels = ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    else:
        pixels = rows.reshape(height, width, layout.channels)
    return np.ascontiguousarray(pixels[:, :, list(layout.rgb_index)])


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = "rgb8", big_endian: bool = False, row_padding: int = 0):
    """(data bytes, step) of an RGB uint8 array written in one of the plain encodings.

    The inverse of image_to_rgb for the channel layouts (not YUV or Bayer); 16-bit values
    are v x 257 so they read back exactly. Used by the camera simulator and the tests.
    """
    if encoding not in _LAYOUTS:
        raise ImageError("unknown_encoding", f"cannot write {encoding!r}; writable: {', '.join(_LAYOUTS)}")
    rgb = np.asarray(rgb, dtype=np.uint8)
    layout = _LAYOUTS[encoding]
    height, width = rgb.shape[:2]
    if layout.channels == 1:
        channels = _luma(rgb)[:, :, None]
    else:
        channels = rgb[:, :, list(layout.rgb_index)]  # the index is its own inverse
        if layout.channels == 4:
            channels = np.concatenate([channels, np.full((height, width, 1), 255, np.uint8)], axis=2)
    if layout.bytes_per_channel == 2:
        channels = (channels.astype(np.uint16) * 257).astype(">u2" if big_endian else "<u2")
    rows = channels.reshape(height, -1).view(np.uint8)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    return np.ascontiguousarray(rows).tobytes(), rows.shape[1]


def decode_compressed(data, max_pixels: int | None = None) -> np.ndarray:
    """A CompressedImage's data (JPEG, PNG, ...) as RGB uint8; the format comes from the bytes."""
    if len(data) == 0:
        raise ImageError("empty", "empty compressed image")
    try:
        with PILImage.open(io.BytesIO(bytes(data))) as image:
            width, height = image.size  # read from the header before decoding any pixels
            if max_pixels is not None and width * height > max_pixels:
                raise ImageError(
                    "oversized", f"compressed image {width}x{height} has more than max_image_pixels={max_pixels} pixels"
                )
            return np.asarray(image.convert("RGB"))
    except ImageError:
        raise
    except PILImage.DecompressionBombError as err:  # PIL refuses it from the header, before decoding
        raise ImageError("oversized", f"compressed image refused as a decompression bomb: {err}") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError("corrupt_compressed", f"cannot decode compressed image: {err}") from err


def encode_compressed(rgb: np.ndarray, image_format: str = "jpeg", quality: int = 90) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(np.asarray(rgb, dtype=np.uint8)).save(out, format=image_format.upper(), quality=quality)
    return out.getvalue()


def _luma(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(rgb.astype(np.float64) @ weights), 0, 255).astype(np.uint8)


def _yuv422_to_rgb(pairs: np.ndarray, offsets: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W/2, 4) bytes, two pixels sharing U and V, to RGB (BT.601, limited range)."""
    y0, u, y1, v = (pairs[:, :, i].astype(np.float32) for i in offsets)
    y = np.stack([y0, y1], axis=2).reshape(pairs.shape[0], -1)  # interleave the two pixels
    u = np.repeat(u - 128.0, 2, axis=1)
    v = np.repeat(v - 128.0, 2, axis=1)
    c = 1.164 * (y - 16.0)
    rgb = np.stack([c + 1.596 * v, c - 0.392 * u - 0.813 * v, c + 2.017 * u], axis=2)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _demosaic(raw: np.ndarray, pattern: str) -> np.ndarray:
    """Bilinear demosaicing as normalised convolution: each channel is the weighted mean of
    its own samples around a pixel, which also gets the image borders right."""
    height, width = raw.shape
    kernel = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
    out = np.empty((height, width, 3), np.uint8)
    values = raw.astype(np.float32)
    for channel, name in enumerate("RGB"):
        mask = np.zeros((height, width), np.float32)
        for index, cell in enumerate(pattern):
            if cell == name:
                mask[index // 2 :: 2, index % 2 :: 2] = 1.0
        weight = convolve(mask, kernel, mode="constant")
        mean = convolve(values * mask, kernel, mode="constant") / weight
        out[:, :, channel] = np.clip(np.rint(np.where(mask > 0, values, mean)), 0, 255)
    return out
