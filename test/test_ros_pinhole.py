"""Mapping any pinhole camera onto the model's pinned camera keeps the rays where they were."""
import tracemalloc

import numpy as np
import pytest

from igllm_ros import world
from igllm_ros.ros.image_conversion import ImageError
from igllm_ros.ros.pinhole import (Intrinsics, ViewLimits, fallback_intrinsics, from_camera_info, pinned_region,
                                   to_pinned)

W, H = 320, 240
RNG = np.random.default_rng(3)


def smooth_image(width, height):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 255 // width), (y * 255 // height), ((x + y) % 64) * 4], axis=2).astype(np.uint8)


def draw_dot(width, height, u, v, radius=3.0):
    y, x = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.uint8)
    image[(x - u) ** 2 + (y - v) ** 2 <= radius**2] = 255
    return image


def centroid(image):
    mass = image[:, :, 0].astype(float)
    y, x = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    return (x * mass).sum() / mass.sum(), (y * mass).sum() / mass.sum()


def project(point, camera):
    x, y, z = point
    return camera.cx + camera.fx * x / z, camera.cy + camera.fy * y / z


def test_the_pinned_camera_passes_unchanged():
    image = smooth_image(W, H)
    assert to_pinned(image, Intrinsics.pinned(W, H), W, H) is image
    pinned = Intrinsics.pinned(W, H)
    assert pinned.fx == pytest.approx(world.FOCAL_OVER_WIDTH * W) and pinned.cx == pytest.approx((W - 1) / 2)


def test_black_borders_reported_in_camera_info_are_cropped_away():
    image = smooth_image(W, H)
    left, top, right, bottom = 40, 10, 8, 30  # asymmetric: the principal point moves off-centre
    padded = np.pad(image, ((top, bottom), (left, right), (0, 0)))
    p = Intrinsics.pinned(W, H)
    camera = Intrinsics(W + left + right, H + top + bottom, p.fx, p.fy, p.cx + left, p.cy + top)
    np.testing.assert_array_equal(to_pinned(padded, camera, W, H), image)


def test_a_larger_image_of_the_same_camera_shrinks_to_the_same_picture():
    image = smooth_image(W, H)
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    out = to_pinned(big, Intrinsics.pinned(2 * W, 2 * H), W, H)
    assert np.abs(out.astype(int) - image).mean() < 1.0


@pytest.mark.parametrize(
    "camera",
    [
        Intrinsics(640, 480, 500.0, 500.0, 319.5, 239.5),  # a typical wide webcam: crop
        Intrinsics(640, 480, 900.0, 700.0, 300.0, 260.0),  # non-square pixels, off-centre
        Intrinsics(160, 120, 300.0, 300.0, 70.0, 50.0),  # narrower than pinned: pad
        Intrinsics(1280, 720, 1000.0, 1000.0, 640.0, 360.0),  # 16:9
    ],
)
def test_a_3d_point_lands_where_the_pinned_camera_would_see_it(camera):
    pinned = Intrinsics.pinned(W, H)
    checked = 0
    for _ in range(8):
        # A point the pinned camera sees, away from its border.
        u, v = RNG.uniform(40, W - 40), RNG.uniform(40, H - 40)
        z = 0.5
        point = ((u - pinned.cx) * z / pinned.fx, (v - pinned.cy) * z / pinned.fy, z)
        iu, iv = project(point, camera)
        if not (5 < iu < camera.width - 5 and 5 < iv < camera.height - 5):
            continue  # outside the input camera's view
        image = draw_dot(camera.width, camera.height, iu, iv, radius=max(3.0, 3.0 * camera.fx / pinned.fx))
        mu, mv = centroid(to_pinned(image, camera, W, H))
        assert mu == pytest.approx(u, abs=0.35) and mv == pytest.approx(v, abs=0.35)
        checked += 1
    assert checked >= 3


def test_region_of_a_narrow_camera_reaches_beyond_its_image():
    camera = Intrinsics(160, 120, 300.0, 300.0, 79.5, 59.5)
    left, top, right, bottom = pinned_region(camera, W, H)
    half_w = 300.0 / (2 * world.FOCAL_OVER_WIDTH)
    assert (left, right) == pytest.approx((80 - half_w, 80 + half_w))
    assert (top, bottom) == pytest.approx((60 - half_w * 0.75, 60 + half_w * 0.75))
    out = to_pinned(np.full((120, 160, 3), 200, np.uint8), camera, W, H)
    assert out.shape == (H, W, 3)
    assert out[H // 2, W // 2].tolist() == [200, 200, 200] and out[H // 2, 2].tolist() == [0, 0, 0]


def test_intrinsics_problems_are_named():
    assert Intrinsics(640, 480, float("nan"), 1.0, 1.0, 1.0).problem().startswith("non-finite")
    assert "positive" in Intrinsics(640, 480, 0.0, 500.0, 320.0, 240.0).problem()
    assert Intrinsics(640, 480, 500.0, 500.0, 320.0, 240.0).problem() is None


def test_scaling_intrinsics_keeps_the_image_centre_the_image_centre():
    scaled = Intrinsics.pinned(640, 480).scaled_to(320, 240)
    assert (scaled.width, scaled.height) == (320, 240)
    assert (scaled.fx, scaled.fy, scaled.cx, scaled.cy) == pytest.approx((350.0, 350.0, 159.5, 119.5))


class _Roi:
    def __init__(self, x_offset=0, y_offset=0, width=0, height=0):
        self.x_offset, self.y_offset, self.width, self.height = x_offset, y_offset, width, height


class _Info:
    """The CameraInfo fields from_camera_info reads (a real CameraInfo has the same)."""

    def __init__(self, width, height, fx, cx, cy, binning=(0, 0), roi=None):
        self.width, self.height = width, height
        self.k = [fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0]
        self.binning_x, self.binning_y = binning
        self.roi = roi or _Roi()


def test_camera_info_of_size_zero_with_binning_is_refused_not_divided_by():
    with pytest.raises(ValueError, match="size must be positive"):
        from_camera_info(_Info(0, 0, 500.0, 160.0, 120.0, binning=(2, 2)))
    with pytest.raises(ValueError, match="binning 4x4 leaves no pixels"):
        from_camera_info(_Info(3, 3, 500.0, 1.0, 1.0, binning=(4, 4)))
    with pytest.raises(ValueError):
        Intrinsics(0, 0, 1.0, 1.0, 0.0, 0.0).scaled_to(10, 10)


def test_camera_info_roi_then_binning():
    camera = from_camera_info(_Info(1280, 960, 700.0, 639.5, 479.5, binning=(2, 2), roi=_Roi(320, 240, 640, 480)))
    assert (camera.width, camera.height) == (320, 240)
    assert (camera.fx, camera.cx, camera.cy) == pytest.approx((350.0, 159.5, 119.5))


def test_fallback_intrinsics_from_parameters():
    assert fallback_intrinsics(W, H, 0.0, 0.0, -1.0, -1.0) == Intrinsics.pinned(W, H)
    assert fallback_intrinsics(W, H, 400.0, 0.0, 100.0, -1.0) == Intrinsics(W, H, 400.0, 400.0, 100.0, (H - 1) / 2)


@pytest.mark.parametrize("width, height, kind", [(1, 1, "too_small"), (3, 1000, "too_small"), (20000, 1, "too_small"),
                                                 (1000, 40, "bad_aspect_ratio")])
def test_images_no_camera_model_can_use_are_refused(width, height, kind):
    with pytest.raises(ImageError) as err:
        ViewLimits().check_image(width, height)
    assert err.value.kind == kind
    ViewLimits().check_image(640, 480)
    ViewLimits().check_image(1280, 360)  # 32:9 is still a camera


@pytest.mark.parametrize("camera, kind", [
    (Intrinsics(W, H, 1e6, 1e6, 159.5, 119.5), "bad_intrinsics"),  # the image is a speck in the view
    (Intrinsics(W, H, 350.0, 350.0, -5000.0, 119.5), "bad_intrinsics"),  # principal point far outside
    (Intrinsics(W, H, 1e-4, 1e-4, 159.5, 119.5), "bad_intrinsics"),  # the view spans a fraction of a pixel
    (Intrinsics(6000, 4500, 3 * 6562.5, 3 * 6562.5, 2999.5, 2249.5), "view_too_large"),  # 3x long lens, 6000 px
])
def test_implausible_intrinsics_are_refused_before_allocating(camera, kind):
    with pytest.raises(ImageError) as err:
        ViewLimits().check_view(camera, W, H)
    assert err.value.kind == kind


def test_plausible_intrinsics_pass():
    for camera in (Intrinsics.pinned(W, H), Intrinsics(640, 480, 500.0, 500.0, 319.5, 239.5),
                   Intrinsics(160, 120, 300.0, 300.0, 70.0, 50.0), Intrinsics.pinned(4096, 3072)):
        ViewLimits().check_view(camera, W, H)


def test_padding_allocates_about_the_view_not_the_view_plus_the_image():
    # A wide image with a long lens: the view is a small part of it, padded on one side.
    image = np.full((480, 8000, 3), 90, np.uint8)
    camera = Intrinsics(8000, 480, 700.0, 700.0, 7990.0, 239.5)
    tracemalloc.start()
    out = to_pinned(image, camera, W, H)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (H, W, 3) and out[H // 2, 10].tolist() == [90, 90, 90] and out[H // 2, -10].tolist() == [0, 0, 0]
    assert peak < 4 * 640 * 480 * 3, f"{peak / 2**20:.1f} MiB for a {W}x{H} view"
