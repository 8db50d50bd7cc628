"""Scene <-> Scene message, markers and the debug overlay agree with the scene geometry."""
import numpy as np
import pytest

pytest.importorskip("rclpy")
from scipy.spatial.transform import Rotation  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from igllm_ros import world  # noqa: E402
from igllm_ros.program import format_program  # noqa: E402
from igllm_ros.ros.conversions import msg_to_scene, scene_to_msg  # noqa: E402
from igllm_ros.ros.debug_image import draw_overlay  # noqa: E402
from igllm_ros.ros.markers import LABELS_NS, OBJECTS_NS, scene_markers  # noqa: E402
from igllm_ros.ros.pinhole import Intrinsics  # noqa: E402
from igllm_ros.scene import Camera, Scene, SceneObject, intrinsics, object_pose_in_optical, project  # noqa: E402

CAMERA = Camera(loc=(0.39, -0.31, 0.28))
OBJECTS = (
    SceneObject("cube", "red", "metal", "large", (0.05, -0.02, 0.0248), 20.0, 0.9,
                {"shape": 0.99, "color": 0.95, "material": 0.97, "size": 0.98}),
    SceneObject("sphere", "cyan", "rubber", "small", (-0.08, 0.06, 0.0175), 0.0, 0.4),
    SceneObject("cylinder", "yellow", "rubber", "large", (0.0, 0.1, 0.035), 0.0, 0.7),
)
SCENE = Scene(objects=OBJECTS, camera=CAMERA)


def header():
    h = Header(frame_id="cam_opt")
    h.stamp.sec, h.stamp.nanosec = 1234, 567
    return h


def test_objects_are_posed_in_the_optical_frame():
    msg = scene_to_msg(SCENE, header(), program=format_program(SCENE), model="m")
    assert msg.header.frame_id == "cam_opt" and msg.header.stamp.nanosec == 567
    assert [o.id for o in msg.objects] == ["obj0", "obj1", "obj2"]
    rot, t = CAMERA.table_from_optical()
    for obj, out in zip(OBJECTS, msg.objects):
        p = np.array([out.pose.position.x, out.pose.position.y, out.pose.position.z])
        np.testing.assert_allclose(rot @ p + t, obj.loc, atol=1e-9)  # back in the table frame
        assert p[2] > 0.3  # in front of the camera
        assert (out.dimensions.x, out.dimensions.y, out.dimensions.z) == pytest.approx(world.dimensions(obj.shape, obj.size))
    red = msg.objects[0]
    assert (red.shape, red.color, red.material, red.size) == ("cube", "red", "metal", "large")
    assert red.confidence == pytest.approx(0.9) and red.color_confidence == pytest.approx(0.95)


def test_table_pose_maps_table_points_into_the_optical_frame():
    msg = scene_to_msg(SCENE, header())
    p, q = msg.table_pose.position, msg.table_pose.orientation
    optical_from_table = Rotation.from_quat([q.x, q.y, q.z, q.w])
    point = np.array([0.1, -0.05, 0.02])
    expected = CAMERA.to_optical(point[None])[0]
    np.testing.assert_allclose(optical_from_table.apply(point) + [p.x, p.y, p.z], expected, atol=1e-12)


def test_message_round_trips_to_the_table_frame():
    back = msg_to_scene(scene_to_msg(SCENE, header()))
    assert back.camera.loc == pytest.approx(CAMERA.loc, abs=1e-9)
    for a, b in zip(OBJECTS, back.objects):
        assert a.attributes() == b.attributes()
        assert b.loc == pytest.approx(a.loc, abs=1e-9)
        assert b.rotation == pytest.approx(world.canonical_yaw_deg(a.shape, a.rotation), abs=1e-6)
        assert b.confidence == pytest.approx(a.confidence, abs=1e-6)


def test_confidence_threshold_drops_objects_but_keeps_ids():
    msg = scene_to_msg(SCENE, header(), min_confidence=0.5)
    assert [o.id for o in msg.objects] == ["obj0", "obj2"]


def test_markers_match_the_scene():
    msg = scene_to_msg(SCENE, header())
    markers = scene_markers(msg).markers
    assert markers[0].action == Marker.DELETEALL
    solids = [m for m in markers if m.ns == OBJECTS_NS]
    labels = [m for m in markers if m.ns == LABELS_NS]
    assert len(solids) == len(labels) == len(OBJECTS) and len(markers) == 1 + 2 * len(OBJECTS)
    assert [m.type for m in solids] == [Marker.CUBE, Marker.SPHERE, Marker.CYLINDER]
    assert [m.id for m in solids] == [m.id for m in labels] == [0, 1, 2]
    for obj, solid, label in zip(msg.objects, solids, labels):
        assert solid.header.frame_id == "cam_opt" and solid.header.stamp.sec == 1234
        assert solid.pose == obj.pose and solid.scale == obj.dimensions
        r, g, b = world.COLORS_RGB[obj.color]
        assert (solid.color.r, solid.color.g, solid.color.b) == pytest.approx((r / 255, g / 255, b / 255))
        assert label.type == Marker.TEXT_VIEW_FACING and obj.color in label.text and obj.shape in label.text
        # The label floats above the object along the table's up axis.
        rot, _ = CAMERA.table_from_optical()
        above = rot @ np.array([label.pose.position.x - obj.pose.position.x,
                                label.pose.position.y - obj.pose.position.y,
                                label.pose.position.z - obj.pose.position.z])
        assert above[:2] == pytest.approx([0, 0], abs=1e-9) and above[2] > obj.dimensions.z / 2


def test_overlay_draws_each_object_where_it_projects():
    msg = scene_to_msg(SCENE, header())
    blank = np.zeros((240, 320, 3), np.uint8)
    drawn = draw_overlay(blank, msg, Intrinsics.pinned(320, 240))
    k = intrinsics(320, 240)
    for obj in OBJECTS:
        centre = project(object_pose_in_optical(obj, CAMERA)[0][None], k)[0]
        u, v = int(round(centre[0])), int(round(centre[1]))
        patch = drawn[max(0, v - 14) : v + 15, max(0, u - 14) : u + 15]
        colour = np.array(world.COLORS_RGB[obj.color])
        assert (np.abs(patch.astype(int) - colour).sum(axis=2) == 0).any(), obj.color
    assert drawn.sum() > 0 and blank.sum() == 0
