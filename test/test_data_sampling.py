"""Scene sampling: the world's constraints and the splits' rules hold on sampled scenes."""
import itertools
import math

import numpy as np
import pytest

from igllm_ros import world
from igllm_ros.data.lighting import NOMINAL, VISUAL_SHIFT, Lighting
from igllm_ros.data.render import SceneRenderer
from igllm_ros.data.sampling import SPLITS, SceneSpec, min_visible_pixels, sample_scene, sample_yaw_deg
from igllm_ros.data.splits import HELD_OUT_YAW_BANDS_DECIDEG, TRAIN_YAW_BANDS_DECIDEG, split_rule, yaw_in_bands
from igllm_ros.program import quantize

SCENES_PER_SPLIT = 12


@pytest.fixture(scope="module")
def renderer():
    r = SceneRenderer(320, 240)
    yield r
    r.release()


@pytest.fixture(scope="module")
def sampled(renderer):
    rng = np.random.default_rng(2024)
    return {split: [sample_scene(rng, split, renderer=renderer) for _ in range(SCENES_PER_SPLIT)] for split in SPLITS}


def _all(sampled):
    return [spec for specs in sampled.values() for spec in specs]


def test_counts_bounds_heights_and_grid(sampled):
    for spec in _all(sampled):
        assert isinstance(spec, SceneSpec) and (spec.width, spec.height) == (320, 240)
        scene = spec.scene
        assert world.MIN_OBJECTS <= len(scene.objects) <= world.MAX_OBJECTS
        assert quantize(scene) == scene  # ground truth is exactly what a program can say
        for o in scene.objects:
            x, y, z = o.loc
            assert abs(x) <= world.TABLE_HALF_EXTENT_M and abs(y) <= world.TABLE_HALF_EXTENT_M
            assert abs(z - world.centre_height(o.shape, o.size)) <= 0.0005  # centre height, to the mm
            assert o.rotation == pytest.approx(world.canonical_yaw_deg(o.shape, o.rotation), abs=1e-9)
            assert -45.0 <= o.rotation < 45.0
            if o.shape != "cube":
                assert o.rotation == 0.0


def test_spacing_rule(sampled):
    for spec in _all(sampled):
        for a, b in itertools.combinations(spec.scene.objects, 2):
            gap = math.hypot(a.loc[0] - b.loc[0], a.loc[1] - b.loc[1]) - world.radius(a.shape, a.size) - world.radius(b.shape, b.size)
            assert gap >= world.MIN_GAP_M - 1e-9


def test_camera_jitter(sampled):
    nominal = [spec for split, specs in sampled.items() if split_rule(split).camera == "nominal" for spec in specs]
    cameras = np.array([spec.scene.camera.loc for spec in nominal])
    offsets = cameras - np.asarray(world.CAMERA_NOMINAL_POSITION_M)
    assert np.all(np.abs(offsets) <= world.CAMERA_JITTER_M + 1e-9)
    assert np.all(offsets.std(axis=0) > 0.005)  # actually jittered


def test_every_object_is_visible(sampled, renderer):
    threshold = min_visible_pixels(320, 240)
    assert threshold == world.MIN_VISIBLE_PIXELS
    for spec in _all(sampled):
        mask, _ = renderer.render_labels(spec.scene)
        counts = np.bincount(mask[mask >= 0], minlength=len(spec.scene.objects))
        assert counts.min() >= threshold


def test_cogent_colours_per_split(sampled):
    for split, specs in sampled.items():
        condition = split_rule(split).condition
        for spec in specs:
            for o in spec.scene.objects:
                assert o.color in world.allowed_colors(o.shape, condition), (split, o)


def test_yaw_bands_per_split(sampled):
    for split, specs in sampled.items():
        bands = HELD_OUT_YAW_BANDS_DECIDEG if split == "val_param" else TRAIN_YAW_BANDS_DECIDEG
        yaws = [o.rotation for spec in specs for o in spec.scene.objects if o.shape == "cube"]
        assert yaws, split
        assert all(yaw_in_bands(y, bands) for y in yaws), (split, yaws)


def test_no_condition_b_combination_and_no_held_out_yaw_in_train(renderer):
    # more train scenes than the shared fixture: the rules must hold on every object
    rng = np.random.default_rng(99)
    forbidden = {(s, c) for s in ("cube", "cylinder") for c in world.allowed_colors(s, "B")}
    seen = set()
    for _ in range(60):
        for o in sample_scene(rng, "train", renderer=renderer).scene.objects:
            assert (o.shape, o.color) not in forbidden
            assert not (o.shape == "cube" and 0.0 <= o.rotation < 30.0)
            seen.add((o.shape, o.color))
    # and condition A's combinations do all show up
    assert {("cube", c) for c in world.allowed_colors("cube", "A")} <= seen


def test_yaw_sampler_covers_its_bands_uniformly():
    rng = np.random.default_rng(0)
    train = np.array([sample_yaw_deg(rng, TRAIN_YAW_BANDS_DECIDEG) for _ in range(6000)])
    assert train.min() >= -45.0 and train.max() < 45.0
    assert not np.any((train >= 0.0) & (train < 30.0))
    # 45 of the band's 60 degrees are below zero
    assert abs(np.mean(train < 0) - 0.75) < 0.03
    held = np.array([sample_yaw_deg(rng, HELD_OUT_YAW_BANDS_DECIDEG) for _ in range(2000)])
    assert held.min() >= 0.0 and held.max() < 30.0
    assert np.allclose(held * 10, np.round(held * 10))


def test_visual_split_shifts_the_lights_and_others_do_not(sampled):
    for split, specs in sampled.items():
        if split_rule(split).randomize:
            continue  # randomized looks: test_data_randomization.py
        for spec in specs:
            base = VISUAL_SHIFT if split == "val_visual" else NOMINAL
            assert spec.lighting.ground_color[0] == pytest.approx(base.ground_color[0], abs=0.05)
            assert spec.lighting.key_color == base.key_color
            assert spec.look is None
    lights = [spec.lighting for spec in _all(sampled)]
    assert len({lt.key_azimuth_deg for lt in lights}) == len(lights)  # jittered


def test_same_seed_same_scene(renderer):
    a = sample_scene(np.random.default_rng(5), "val_id", renderer=renderer)
    b = sample_scene(np.random.default_rng(5), "val_id", renderer=renderer)
    c = sample_scene(np.random.default_rng(6), "val_id", renderer=renderer)
    assert a == b and a != c


def test_lighting_round_trips_through_a_dict():
    light = VISUAL_SHIFT
    assert Lighting.from_dict(light.to_dict()) == light
    with pytest.raises(ValueError, match="unknown lighting"):
        Lighting.from_dict({"sun": 1.0})


def test_bad_arguments(renderer):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown split"):
        sample_scene(rng, "val_everything", renderer=renderer)
    with pytest.raises(ValueError, match="renderer is 320x240"):
        sample_scene(rng, "train", 160, 120, renderer=renderer)


def test_threshold_scales_with_pixel_count():
    assert min_visible_pixels(160, 120) == 50
    assert min_visible_pixels(640, 480) == 800


def test_sampling_without_a_renderer_uses_a_shared_one():
    spec = sample_scene(np.random.default_rng(1), "train", 160, 120)
    assert (spec.width, spec.height) == (160, 120) and spec.split == "train"
