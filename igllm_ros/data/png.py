"""A fast lossless PNG encoder for the dataset's 8-bit RGB images.

Why not PIL: for the sensor-noisy randomized renders, PIL's encoder (even with
Huffman-only deflate) spent about 9 ms per 320x240 image, a fifth of the whole generation
cost. Filtering every row with PNG's Sub filter (each byte minus the byte one pixel to its
left, modulo 256) in numpy, then Huffman-only deflate, takes about half that and gives
files of the same size (docs/data.md, Performance). The result is a standard PNG: any
reader decodes it (test_data_dataset.py round-trips it through PIL).
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SUB_FILTER = 1
_RGB8 = (8, 2, 0, 0, 0)  # bit depth, colour type truecolour, compression, filter method, no interlace


def encode_rgb(rgb: np.ndarray) -> bytes:
    """uint8 (H, W, 3) -> PNG file bytes."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"encode_rgb needs a non-empty uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    height, width, _ = rgb.shape
    flat = np.ascontiguousarray(rgb).reshape(height, 3 * width)
    rows = np.empty((height, 1 + 3 * width), np.uint8)
    rows[:, 0] = _SUB_FILTER
    rows[:, 1:4] = flat[:, :3]
    np.subtract(flat[:, 3:], flat[:, :-3], out=rows[:, 4:])  # uint8 arithmetic wraps modulo 256, as PNG's Sub does
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    data = deflate.compress(rows) + deflate.flush()
    header = struct.pack(">II5B", width, height, *_RGB8)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
