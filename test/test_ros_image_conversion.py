"""Image conversion without cv_bridge: every encoding, row padding, byte order, bad input.

The expected bytes are built pixel by pixel with struct here, independently of the code
under test, so a mistake shared by reader and writer cannot hide.
"""
import io
import struct
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image as PILImage

from igllm_ros.ros.image_conversion import (
    ImageError,
    SUPPORTED_ENCODINGS,
    check_image,
    decode_compressed,
    image_to_rgb,
    rgb_to_image_fields,
)

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)  # odd width: padding matters

# encoding -> (channel order written, bytes per channel, alpha?)
PLAIN = {
    "rgb8": ("rgb", 1),
    "bgr8": ("bgr", 1),
    "rgba8": ("rgba", 1),
    "bgra8": ("bgra", 1),
    "8UC3": ("bgr", 1),
    "8UC4": ("bgra", 1),
    "rgb16": ("rgb", 2),
    "bgr16": ("bgr", 2),
    "rgba16": ("rgba", 2),
    "bgra16": ("bgra", 2),
    "16UC3": ("bgr", 2),
    "16UC4": ("bgra", 2),
}
MONO = {"mono8": 1, "8UC1": 1, "mono16": 2, "16UC1": 2}


def message(encoding, width, height, step, data, big_endian=False):
    return SimpleNamespace(encoding=encoding, width=width, height=height, step=step, data=data, is_bigendian=big_endian)


def pack(values, bytes_per_channel, big_endian):
    if bytes_per_channel == 1:
        return bytes(values)
    fmt = (">" if big_endian else "<") + "H" * len(values)
    return struct.pack(fmt, *values)


def hand_made(rgb, order, bytes_per_channel, padding, big_endian, value16):
    """Row by row, pixel by pixel, channel by channel."""
    rows = []
    for row in rgb:
        out = b""
        for r, g, b in row.tolist():
            channel = {"r": r, "g": g, "b": b, "a": 255}
            values = [channel[c] for c in order]
            if bytes_per_channel == 2:
                values = [value16(v) for v in values]
            out += pack(values, bytes_per_channel, big_endian)
        rows.append(out + b"\xee" * padding)  # padding bytes must be ignored, whatever they hold
    return b"".join(rows), len(rows[0])


@pytest.mark.parametrize("encoding", sorted(PLAIN))
@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("big_endian", [False, True])
def test_colour_encodings_read_back_the_picture(encoding, padding, big_endian):
    order, bpc = PLAIN[encoding]
    # 16-bit: v*257 maps exactly back to v; the +100 probes rounding of values between.
    for value16, tolerance in ((lambda v: v * 257, 0), (lambda v: min(65535, v * 257 + 100), 0)):
        data, step = hand_made(RGB, order, bpc, padding, big_endian, value16)
        height, width = RGB.shape[:2]
        rgb = image_to_rgb(message(encoding, width, height, step, data, big_endian))
        assert rgb.dtype == np.uint8 and rgb.shape == RGB.shape and rgb.flags.c_contiguous
        np.testing.assert_array_equal(rgb, RGB)


@pytest.mark.parametrize("encoding", sorted(MONO))
@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("big_endian", [False, True])
def test_mono_encodings_give_grey_rgb(encoding, padding, big_endian):
    bpc = MONO[encoding]
    grey = RGB[:, :, 0]
    rows = []
    for row in grey.tolist():
        values = [v * 257 for v in row] if bpc == 2 else row
        rows.append(pack(values, bpc, big_endian) + b"\x01" * padding)
    height, width = grey.shape
    rgb = image_to_rgb(message(encoding, width, height, len(rows[0]), b"".join(rows), big_endian))
    np.testing.assert_array_equal(rgb, np.repeat(grey[:, :, None], 3, axis=2))


def test_sixteen_bit_values_scale_to_the_full_8_bit_range():
    values = [0, 128, 129, 32767, 65400, 65535]  # v x 255 / 65535 rounded: 128 -> 0.498 -> 0, 129 -> 0.502 -> 1, 65400 -> 254.47
    data = struct.pack("<6H", *values)
    rgb = image_to_rgb(message("mono16", 6, 1, 12, data))
    assert rgb[0, :, 0].tolist() == [0, 0, 1, 127, 254, 255]


def test_byte_order_matters_for_16_bit():
    data = struct.pack(">H", 0xFF00)  # 65280 big-endian -> 254; read little-endian it is 255 -> 1
    assert image_to_rgb(message("mono16", 1, 1, 2, data, big_endian=True))[0, 0, 0] == 254
    assert image_to_rgb(message("mono16", 1, 1, 2, data, big_endian=False))[0, 0, 0] == 1


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_known_colours(encoding):
    # BT.601 limited range: (Y, U, V) of white, black, and pure red (81, 90, 240).
    pixels = [(235, 128, 128), (16, 128, 128), (81, 90, 240), (81, 90, 240)]
    out = b""
    for (y0, u, v), (y1, _, _) in zip(pixels[::2], pixels[1::2]):
        out += bytes([u, y0, v, y1]) if encoding in ("yuv422", "uyvy") else bytes([y0, u, y1, v])
    out += b"\x00\x00"  # row padding
    rgb = image_to_rgb(message(encoding, 4, 1, 10, out)).astype(int)
    np.testing.assert_allclose(rgb[0, 0], [255, 255, 255], atol=1)
    np.testing.assert_allclose(rgb[0, 1], [0, 0, 0], atol=1)
    np.testing.assert_allclose(rgb[0, 2], [255, 0, 0], atol=3)
    np.testing.assert_allclose(rgb[0, 3], [255, 0, 0], atol=3)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns_demosaic_to_the_right_colours(pattern):
    colour = {"r": 200, "g": 120, "b": 40}
    height, width, padding = 6, 8, 2
    rows = []
    for y in range(height):
        row = [colour[pattern[(y % 2) * 2 + (x % 2)]] for x in range(width)]
        rows.append(bytes(row) + b"\xff" * padding)
    rgb = image_to_rgb(message(f"bayer_{pattern}8", width, height, width + padding, b"".join(rows)))
    assert (rgb == np.array([200, 120, 40], np.uint8)).all()


def test_bayer_keeps_a_gradient_smooth():
    # A horizontal ramp seen through an RGGB mosaic: every channel should come back as the ramp.
    ramp = np.tile(np.arange(0, 160, 10, dtype=np.uint8), (4, 1))
    rgb = image_to_rgb(message("bayer_rggb8", 16, 4, 16, ramp.tobytes()))
    interior = rgb[:, 1:-1].astype(int)
    assert np.abs(interior - ramp[:, 1:-1, None].astype(int)).max() <= 5


@pytest.mark.parametrize("encoding", sorted(PLAIN) + sorted(MONO))
def test_writer_round_trips_for_the_simulator(encoding):
    data, step = rgb_to_image_fields(RGB, encoding, big_endian=True, row_padding=3)
    rgb = image_to_rgb(message(encoding, 7, 5, step, data, big_endian=True))
    if encoding in MONO:
        assert rgb.shape == RGB.shape and (rgb[:, :, 0] == rgb[:, :, 1]).all()
    else:
        np.testing.assert_array_equal(rgb, RGB)


@pytest.mark.parametrize(
    "fields, kind",
    [
        (dict(width=0, height=5), "empty"),
        (dict(width=7, height=0, data=b""), "empty"),
        (dict(step=20), "bad_step"),  # less than 7 x 3
        (dict(data=b"\x00" * 10), "bad_data_size"),
        (dict(encoding="32FC1"), "unknown_encoding"),
        (dict(encoding="h264"), "unknown_encoding"),
        (dict(encoding="yuv422", step=14, data=b"\x00" * 70), "bad_dimensions"),  # odd width
    ],
)
def test_bad_images_raise_with_their_kind(fields, kind):
    msg = message("rgb8", 7, 5, 21, b"\x00" * 105)
    for key, value in fields.items():
        setattr(msg, key, value)
    with pytest.raises(ImageError) as err:
        image_to_rgb(msg)
    assert err.value.kind == kind and str(err.value)


def test_oversized_image_is_refused_before_touching_pixels():
    msg = message("rgb8", 4000, 3000, 12000, b"")  # no data: the size check must come first
    with pytest.raises(ImageError) as err:
        check_image(msg, max_pixels=1_000_000)
    assert err.value.kind == "oversized" and "4000x3000" in str(err.value)


def test_unknown_encoding_message_lists_the_supported_ones():
    with pytest.raises(ImageError) as err:
        image_to_rgb(message("nv12", 2, 2, 2, b"\x00" * 4))
    assert "rgb8" in str(err.value) and len(SUPPORTED_ENCODINGS) >= 20


def png_bytes(rgb):
    out = io.BytesIO()
    PILImage.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def test_compressed_png_decodes_exactly_and_jpeg_closely():
    np.testing.assert_array_equal(decode_compressed(png_bytes(RGB)), RGB)
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
    out = io.BytesIO()
    PILImage.fromarray(smooth).save(out, format="JPEG", quality=95)
    assert np.abs(decode_compressed(out.getvalue()).astype(int) - smooth).mean() < 2


@pytest.mark.parametrize("data", [b"", b"not an image at all", png_bytes(RGB)[:40]])
def test_corrupt_compressed_data_is_an_image_error(data):
    with pytest.raises(ImageError) as err:
        decode_compressed(data)
    assert err.value.kind in ("corrupt_compressed", "empty")


def test_compressed_oversized_is_refused_from_its_header():
    big = png_bytes(np.zeros((300, 400, 3), np.uint8))
    with pytest.raises(ImageError) as err:
        decode_compressed(big, max_pixels=100_000)
    assert err.value.kind == "oversized"


def test_a_png_decompression_bomb_is_oversized_not_corrupt():
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    def bomb(width, height):  # a header claiming width x height, a few bytes of data
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")

    for data, max_pixels in ((bomb(30000, 30000), None), (bomb(30000, 30000), 4096 * 4096), (bomb(5000, 5000), 4096 * 4096)):
        with pytest.raises(ImageError) as err:
            decode_compressed(data, max_pixels)
        assert err.value.kind == "oversized", str(err.value)
