"""The pinned world's constants and the camera geometry derived from them."""
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from igllm_ros import world
from igllm_ros.scene import Camera, SceneObject, intrinsics, look_at_rotation, object_pose_in_optical, project


def test_dimensions_match_the_spec():
    assert world.dimensions("sphere", "large") == pytest.approx((0.07, 0.07, 0.07))
    assert world.dimensions("cylinder", "large") == pytest.approx((0.07, 0.07, 0.07))
    assert world.dimensions("cube", "large") == pytest.approx((0.0495,) * 3, abs=1e-4)
    assert world.dimensions("cube", "small") == pytest.approx((0.02475,) * 3, abs=1e-4)
    assert world.dimensions("cylinder", "small") == pytest.approx((0.035, 0.035, 0.035))
    assert world.centre_height("sphere", "small") == pytest.approx(0.0175)


def test_cogent_conditions_swap_cube_and_cylinder_colors():
    a, b = world.COGENT_COLORS["A"], world.COGENT_COLORS["B"]
    assert set(a["cube"]) == set(b["cylinder"]) and set(a["cylinder"]) == set(b["cube"])
    assert not set(a["cube"]) & set(a["cylinder"])
    assert set(a["sphere"]) == set(b["sphere"]) == set(world.COLORS)
    with pytest.raises(ValueError, match="condition"):
        world.allowed_colors("cube", "C")


@pytest.mark.parametrize("yaw, expected", [(0, 0), (44, 44), (46, -44), (90, 0), (-50, 40), (135, -45)])
def test_cube_yaw_is_canonical_modulo_90(yaw, expected):
    assert world.canonical_yaw_deg("cube", yaw) == pytest.approx(expected)
    assert world.canonical_yaw_deg("sphere", yaw) == 0.0


def test_origin_projects_to_the_principal_point_and_camera_has_no_roll():
    camera = Camera()
    k = intrinsics(320, 240)
    assert k[0, 0] == pytest.approx(350.0) and k[0, 2] == 160 and k[1, 2] == 120
    pixel = project(camera.to_optical(np.zeros((1, 3))), k)[0]
    assert pixel == pytest.approx((160.0, 120.0))
    rot = look_at_rotation(np.array(camera.loc))
    assert rot[2, 0] == pytest.approx(0.0)  # optical x is horizontal: no roll
    assert rot[2, 1] < 0  # optical y (image down) points down towards the table
    assert np.linalg.det(rot) == pytest.approx(1.0)


def test_a_point_right_of_the_origin_as_seen_from_the_camera_projects_right():
    camera = Camera()
    rot, _ = camera.table_from_optical()
    right_in_table = rot[:, 0] * 0.05
    pixel = project(camera.to_optical(right_in_table[None]), intrinsics())[0]
    assert pixel[0] > 160 and pixel[1] == pytest.approx(120.0, abs=1e-6)


def test_object_pose_in_optical_frame_round_trips_to_the_table_frame():
    camera = Camera(loc=(0.35, -0.30, 0.28))
    obj = SceneObject("cube", "red", "metal", "large", (0.05, -0.02, 0.02475), 30.0)
    position, quat = object_pose_in_optical(obj, camera)
    rot, t = camera.table_from_optical()
    assert rot @ position + t == pytest.approx(np.array(obj.loc))
    table_from_object = Rotation.from_matrix(rot) * Rotation.from_quat(quat)
    assert table_from_object.as_euler("zyx", degrees=True) == pytest.approx([30.0, 0.0, 0.0], abs=1e-9)
    assert math.isclose(np.linalg.norm(quat), 1.0)


def test_robot_camera_ranges_contain_the_nominal_camera():
    distance, elevation, azimuth = world.camera_spherical(world.CAMERA_NOMINAL_POSITION_M)
    assert distance == pytest.approx(0.5631, abs=1e-4)
    assert elevation == pytest.approx(28.30, abs=0.01) and azimuth == pytest.approx(-41.03, abs=0.01)
    assert azimuth == world.nominal_camera_azimuth_deg()
    lo_d, hi_d = world.ROBOT_CAMERA_DISTANCE_M
    lo_e, hi_e = world.ROBOT_CAMERA_ELEVATION_DEG
    assert (lo_d, hi_d) == (0.40, 0.85) and (lo_e, hi_e) == (20.0, 60.0)
    assert world.ROBOT_CAMERA_AZIMUTH_HALF_RANGE_DEG == 10.0
    assert lo_d < distance < hi_d and lo_e < elevation < hi_e
    # round trip: a point placed from (distance, elevation, azimuth) reads back the same
    el, az = math.radians(45.0), math.radians(-35.0)
    loc = (0.7 * math.cos(el) * math.cos(az), 0.7 * math.cos(el) * math.sin(az), 0.7 * math.sin(el))
    assert world.camera_spherical(loc) == pytest.approx((0.7, 45.0, -35.0))
