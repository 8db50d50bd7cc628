"""The scene language: exact round trips, precise errors, partial results."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from igllm_ros import world
from igllm_ros.program import (
    ProgramParseError,
    format_object,
    format_program,
    parse_program,
    quantize,
)
from igllm_ros.scene import Camera, Scene, SceneObject

coordinate = st.floats(-0.5, 0.5, allow_nan=False)
objects = st.builds(
    SceneObject,
    shape=st.sampled_from(world.SHAPES),
    color=st.sampled_from(world.COLORS),
    material=st.sampled_from(world.MATERIALS),
    size=st.sampled_from(world.SIZES),
    loc=st.tuples(coordinate, coordinate, coordinate),
    rotation=st.floats(-180, 180, allow_nan=False),
)
scenes = st.builds(
    Scene,
    objects=st.lists(objects, max_size=world.MAX_OBJECTS).map(tuple),
    camera=st.builds(Camera, loc=st.tuples(coordinate, coordinate, coordinate)),
)


@settings(max_examples=200, deadline=None)
@given(scenes)
def test_format_parse_round_trip_is_exact(scene):
    text = format_program(scene)
    parsed, errors = parse_program(text)
    assert errors == []
    assert format_program(parsed) == text
    assert parsed == quantize(scene)
    assert quantize(parsed) == parsed


@settings(max_examples=100, deadline=None)
@given(scenes)
def test_quantized_values_are_within_half_a_unit(scene):
    q = quantize(scene)
    for a, b in zip(scene.objects, q.objects):
        assert all(abs(x - y) <= 0.0005 + 1e-12 for x, y in zip(a.loc, b.loc))
        assert abs(a.rotation - b.rotation) <= 0.05 + 1e-9


def test_example_line_matches_the_documented_format():
    obj = SceneObject("cube", "red", "metal", "large", (0.012, -0.034, 0.0247), 12.54)
    assert format_object(obj) == (
        "add(shape='cube', color='red', material='metal', size='large', "
        "loc=(+0.012, -0.034, +0.025), rotation=+12.5)"
    )


def test_negative_zero_is_written_as_plus_zero():
    obj = SceneObject("sphere", "gray", "rubber", "small", (-0.0001, 0.0, 0.0), -0.01)
    assert "loc=(+0.000, +0.000, +0.000), rotation=+0.0" in format_object(obj)


GOOD = (
    "camera(loc=(+0.380, -0.320, +0.270))\n"
    "add(shape='cube', color='red', material='metal', size='large', loc=(+0.012, -0.034, +0.025), rotation=+12.5)\n"
)


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("add(shape='cone', color='red', material='metal', size='large', loc=(+0.0, +0.0, +0.0), rotation=+0.0)",
         "unknown shape 'cone'"),
        ("add(shape='cube', color='pink', material='metal', size='large', loc=(+0.0, +0.0, +0.0), rotation=+0.0)",
         "unknown color 'pink'"),
        ("add(shape='cube', color='red', material='wood', size='large', loc=(+0.0, +0.0, +0.0), rotation=+0.0)",
         "unknown material 'wood'"),
        ("add(shape='cube', color='red', material='metal', size='huge', loc=(+0.0, +0.0, +0.0), rotation=+0.0)",
         "unknown size 'huge'"),
        ("add(shape='cube', color='red', material='metal', size='large', loc=(+0.0, +0.0), rotation=+0.0)",
         "malformed add line"),
        ("add(shape='cube', color='red', material='metal', size='large', loc=(+0.0, +0.0, +0.0)",
         "malformed add line"),
        ("remove(shape='cube')", "expected a line starting with"),
        ("camera(loc=(+0.1, +0.2))", "malformed camera line"),
        ("camera(loc=(+0.1, +0.2, +0.3))", "a second camera line"),
    ],
)
def test_malformed_line_is_named_and_good_lines_are_kept(bad_line, message):
    text = GOOD + bad_line + "\n" + GOOD.splitlines()[1]
    scene, errors = parse_program(text)
    assert len(errors) == 1
    assert errors[0].line_number == 3
    assert errors[0].line == bad_line
    assert message in errors[0].message
    assert len(scene.objects) == 2
    assert scene.camera.loc == (0.38, -0.32, 0.27)
    with pytest.raises(ProgramParseError, match="line 3"):
        parse_program(text, strict=True)


def test_too_many_objects_is_an_error():
    line = GOOD.splitlines()[1]
    scene, errors = parse_program("\n".join([line] * (world.MAX_OBJECTS + 1)))
    assert len(scene.objects) == world.MAX_OBJECTS + 1
    assert [e.line_number for e in errors] == [0]
    assert "at most 10" in errors[0].message


def test_missing_camera_line_leaves_the_nominal_camera_and_empty_text_parses():
    scene, errors = parse_program(GOOD.splitlines()[1])
    assert errors == [] and scene.camera == Camera()
    assert parse_program("") == (Scene(), [])
