"""Mapping any pinhole camera onto the model's pinned camera keeps the rays where they were."""
import numpy as np
import pytest

from igllm_ros import world
from igllm_ros.ros.pinhole import Intrinsics, pinned_region, to_pinned

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
