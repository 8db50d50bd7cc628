"""The colour-shortcut countermeasure (model.gray_fraction): grayscale views of training
images whose colour loss is marginalised out, cached as a second feature view and drawn
as often as asked, resumably."""
import dataclasses
import itertools

import numpy as np
import pytest
import torch

from igllm_ros import world
from igllm_ros.images import grayscale
from igllm_ros.model.config import LLMConfig, ModelConfig, VisionConfig
from igllm_ros.model.igllm import build
from igllm_ros.model.training.data import EndlessShuffledSampler
from igllm_ros.model.vocab import head_text


def tiny_config(**changes) -> ModelConfig:
    settings = dict(
        name="gray-test",
        input_size=(128, 96),
        factorized_joint=True,
        gray_fraction=0.5,
        vision=VisionConfig(hidden=32, layers=2, heads=2, patch=16),
        llm=LLMConfig(hidden=32, layers=1, heads=2, kv_heads=2, intermediate=64, max_positions=512),
    )
    settings.update(changes)
    return ModelConfig(**settings)


def test_grayscale_is_the_luma_on_three_equal_channels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    gray = grayscale(image)
    assert gray.shape == image.shape and gray.dtype == np.uint8
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    expected = np.rint(image.astype(np.float64) @ [0.299, 0.587, 0.114])
    assert np.abs(gray[..., 0] - expected).max() <= 1
    assert np.array_equal(grayscale(np.full((2, 2, 3), 200, np.uint8)), np.full((2, 2, 3), 200, np.uint8))


def test_a_masked_colour_target_costs_its_colour_group_and_other_tokens_as_before():
    torch.manual_seed(0)
    model = build(tiny_config())
    codec = model.codec
    red_cube = codec.encode(head_text("cube", "red", "metal", "large"))[0]
    blue_cube = codec.encode(head_text("cube", "blue", "metal", "large"))[0]
    red_sphere = codec.encode(head_text("sphere", "red", "metal", "large"))[0]
    comma = codec.encode(", ")[0]
    targets = torch.tensor([red_cube, blue_cube, red_sphere, comma])
    logits = torch.randn(4, codec.vocab_size) * 3
    plain = model._token_nll(logits, targets, None)
    masked = model._token_nll(logits, targets, torch.ones(4, dtype=torch.bool))
    group = [codec.encode(head_text("cube", c, "metal", "large"))[0] for c in world.ATTRIBUTES["color"]]
    expected = -torch.log_softmax(logits[0], -1)[group].logsumexp(-1)
    assert torch.allclose(masked[0], expected)
    # only the colour is marginalised: other shapes (other groups) still cost, commas as before
    assert not torch.allclose(masked[0], masked[2])
    assert torch.equal(masked[3], plain[3])
    assert torch.all(masked[:3] < plain[:3])
    # unmasked rows of a partly masked batch are untouched
    partly = model._token_nll(logits, targets, torch.tensor([False, True, False, False]))
    assert torch.equal(partly[[0, 2, 3]], plain[[0, 2, 3]]) and torch.allclose(partly[1], masked[1])


def test_without_gray_fraction_a_masked_batch_is_refused():
    model = build(tiny_config(gray_fraction=0.0))
    targets = torch.tensor([model.codec.encode(", ")[0]])
    with pytest.raises(ValueError, match="gray_fraction"):
        model._token_nll(torch.zeros(1, model.codec.vocab_size), targets, torch.ones(1, dtype=torch.bool))


def test_augmenting_collate_grays_about_the_asked_fraction_and_flags_it():
    from igllm_ros.data.stream import generate_samples

    model = build(tiny_config())
    samples = list(itertools.islice(generate_samples("val_id", 3, 128, 96), 8))
    flags = []
    for _ in range(10):
        batch = model.collate(samples, augment=True)
        pixels = batch["pixel_values"]
        gray = (pixels[:, 0] == pixels[:, 1]).flatten(1).all(1) & (pixels[:, 1] == pixels[:, 2]).flatten(1).all(1)
        assert torch.equal(gray, batch["colour_masked"])  # gray images, and only they, are flagged
        flags += batch["colour_masked"].tolist()
    assert 0.3 < np.mean(flags) < 0.7
    assert not model.collate(samples, augment=False)["colour_masked"].any()  # validation stays colour


def test_the_sampler_draws_the_second_view_that_often_and_resumes_exactly():
    full = list(itertools.islice(iter(EndlessShuffledSampler(50, seed=2, views=(0.3,))), 500))
    for epoch in range(10):  # every image once per epoch, in one view or the other
        assert sorted(i % 50 for i in full[50 * epoch : 50 * epoch + 50]) == list(range(50))
    assert 0.2 < np.mean([i >= 50 for i in full]) < 0.4
    resumed = list(itertools.islice(iter(EndlessShuffledSampler(50, seed=2, start=123, views=(0.3,))), 377))
    assert resumed == full[123:]
    plain = list(itertools.islice(iter(EndlessShuffledSampler(50, seed=2)), 500))
    assert [i % 50 for i in full] == plain  # the view draw leaves the order as it was


def test_feature_source_caches_the_gray_view_beside_the_colour_one(tmp_path, monkeypatch):
    from igllm_ros.data.writer import generate
    from igllm_ros.model import feature_cache, views
    from igllm_ros.model.samples import DataSpec
    from igllm_ros.model.training.data import collate_fn, train_batches

    monkeypatch.setenv("IGLLM_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = build(tiny_config(vision=VisionConfig(kind="efficientnet_lite0", freeze=True))).eval()
    generate(tmp_path, "val_id", 6, seed=5, width=160, height=120, progress=False)
    folder = tmp_path / "val_id"
    batches = train_batches(
        DataSpec.parse(f"features:{folder}"), collate_fn(model, False), batch_size=6, workers=0,
        seed=0, start_sample=0, start_step=0, default_size=model.input_size, model=model,
    )
    colour_dir = feature_cache.cache_folder(folder, model, "colour")
    gray_dir = feature_cache.cache_folder(folder, model, "gray")
    assert colour_dir != gray_dir and (gray_dir / "features.npy").is_file()
    colour = np.load(colour_dir / "features.npy")
    gray = np.load(gray_dir / "features.npy")
    assert not np.allclose(colour, gray)
    # the gray view is the tower on the grayscale image
    from igllm_ros.data.dataset import SceneDataset

    expected = feature_cache._features(model, [grayscale(SceneDataset(folder)[2].image)])[0]
    assert np.allclose(gray[2], expected, atol=1e-2)
    flags = torch.cat([next(batches)["colour_masked"] for _ in range(6)])
    assert 0 < flags.float().mean() < 1


# ---- the recoloured view (model.recolour_fraction) -------------------------------------
def _two_object_image():
    from igllm_ros.data.render import SceneRenderer
    from igllm_ros.scene import Camera, Scene, SceneObject

    scene = Scene(
        objects=(
            SceneObject("cube", "gray", "rubber", "large", (-0.06, 0.0, 0.025), 20.0),
            SceneObject("cylinder", "red", "metal", "large", (0.07, 0.03, 0.025), 0.0),
        ),
        camera=Camera(),
    )
    with SceneRenderer(160, 120) as renderer:
        render = renderer.render(scene)
    return render.rgb, render.mask


def test_recolouring_changes_each_objects_colour_and_keeps_its_luma_and_the_ground():
    from scipy.ndimage import binary_dilation

    from igllm_ros.images import _TO_YCC, recolour_objects

    image, mask = _two_object_image()
    assert set(np.unique(mask)) == {-1, 0, 1}
    out = recolour_objects(image, mask, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8
    near = binary_dilation(mask >= 0)
    assert np.array_equal(out[~near], image[~near])  # the ground, one pixel away from objects, as it was
    luma = lambda im: im.astype(np.float32) @ _TO_YCC[0]
    inside = mask >= 0
    unclipped = inside & (out.min(axis=2) > 0) & (out.max(axis=2) < 255)
    assert np.abs(luma(out) - luma(image))[unclipped].max() < 1.5  # shading kept: only chroma moves
    chroma = lambda im, where: (im.astype(np.float32) @ _TO_YCC[1:].T)[where].mean(axis=0)
    shifts = [
        [np.linalg.norm(chroma(recolour_objects(image, mask, np.random.default_rng(seed)), mask == i) - chroma(image, mask == i)) for i in (0, 1)]
        for seed in range(10)
    ]
    assert np.mean(np.array(shifts) > 5.0) >= 0.8  # nearly always a new colour, the gray cube included
    assert np.array_equal(out, recolour_objects(image, mask, np.random.default_rng(0)))  # seeded
    assert not np.array_equal(out, recolour_objects(image, mask, np.random.default_rng(1)))
    with pytest.raises(ValueError, match="mask"):
        recolour_objects(image, mask[:-1], np.random.default_rng(0))


def test_the_sampler_draws_two_extra_views_as_often_as_asked():
    full = list(itertools.islice(iter(EndlessShuffledSampler(50, seed=2, views=(0.25, 0.35))), 2000))
    views = np.array(full) // 50
    assert 0.18 < np.mean(views == 1) < 0.32 and 0.28 < np.mean(views == 2) < 0.42
    plain = list(itertools.islice(iter(EndlessShuffledSampler(50, seed=2)), 2000))
    assert [i % 50 for i in full] == plain
    gray_only = list(itertools.islice(iter(EndlessShuffledSampler(50, seed=2, views=(0.25,))), 2000))
    assert [v == 1 for v in np.array(gray_only) // 50] == list(views == 1)  # the gray draws are the one-view draws
    with pytest.raises(ValueError, match="sum"):
        EndlessShuffledSampler(50, seed=2, views=(0.5, 0.5))


def test_recolour_fraction_is_checked_and_needs_a_feature_source():
    from igllm_ros.model.samples import DataSpec
    from igllm_ros.model.training.data import collate_fn, train_batches

    with pytest.raises(ValueError, match="together < 1"):
        tiny_config(gray_fraction=0.5, recolour_fraction=0.5)
    model = build(tiny_config(gray_fraction=0.0, recolour_fraction=0.3))
    assert model.colour_alternatives is not None  # the colour groups exist for the masked views
    with pytest.raises(ValueError, match="features: source"):
        train_batches(
            DataSpec.parse("generator:val_id"), collate_fn(model, True), batch_size=2, workers=0,
            seed=0, start_sample=0, start_step=0, default_size=model.input_size, model=model,
        )


def _close(a, b) -> bool:  # fp16 features of batched vs single-image convolutions
    return np.abs(a.astype(np.float32) - b.astype(np.float32)).max() <= 2e-2 + 2e-3 * np.abs(b).max()


def test_feature_source_caches_the_recoloured_and_reshaped_views_of_each_image(tmp_path, monkeypatch):
    from igllm_ros.data.dataset import SceneDataset
    from igllm_ros.data.records import render_spec, spec_from_record
    from igllm_ros.data.render import SceneRenderer
    from igllm_ros.data.writer import generate
    from igllm_ros.images import recolour_objects
    from igllm_ros.model import feature_cache, views
    from igllm_ros.model.samples import DataSpec
    from igllm_ros.model.training.data import collate_fn, train_batches

    monkeypatch.setenv("IGLLM_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    config = tiny_config(
        gray_fraction=0.2, recolour_fraction=0.3, reshape_fraction=0.3, vision=VisionConfig(kind="efficientnet_lite0", freeze=True),
    )
    model = build(config).eval()
    generate(tmp_path, "val_id", 6, seed=5, width=160, height=120, progress=False)
    folder = tmp_path / "val_id"
    batches = train_batches(
        DataSpec.parse(f"features:{folder}"), collate_fn(model, False), batch_size=6, workers=0,
        seed=0, start_sample=0, start_step=0, default_size=model.input_size, model=model,
    )
    folders = {view: feature_cache.cache_folder(folder, model, view) for view in feature_cache.VIEWS}
    assert len(set(folders.values())) == 4 and all((f / "features.npy").is_file() for f in folders.values())
    dataset = SceneDataset(folder)
    sample = dataset[4]
    with SceneRenderer(160, 120) as renderer:
        mask, _ = renderer.render_labels(sample.scene)
        recoloured = recolour_objects(sample.image, mask, np.random.default_rng([views.RECOLOUR_SEED, 4]))
        reshaped_scene = views.reshaped_scene(sample.scene, np.random.default_rng([views.RESHAPE_SEED, 4]))
        spec = spec_from_record(dataset.record(4))
        reshaped = render_spec(dataclasses.replace(spec, scene=reshaped_scene), renderer)
    expected = feature_cache._features(model, [recoloured, reshaped])
    cached = {view: np.load(f / "features.npy")[4] for view, f in folders.items()}
    assert _close(cached["recolour"], expected[0]) and _close(cached["reshape"], expected[1])
    assert not _close(cached["colour"], expected[0]) and not _close(cached["colour"], expected[1])
    # the reshaped view's labels are the reshaped scene's, masked on shape
    item = feature_cache.CachedFeatureDataset(folder, model, "reshape")[4]
    assert item.scene == reshaped_scene and item.shape_masked and not item.colour_masked
    drawn = [next(batches) for _ in range(10)]
    colour = torch.cat([b["colour_masked"] for b in drawn]).float().mean()
    shape = torch.cat([b["shape_masked"] for b in drawn]).float().mean()
    assert 0.3 < colour < 0.7 and 0.1 < shape < 0.5
    assert not (torch.cat([b["colour_masked"] & b["shape_masked"] for b in drawn])).any()


def test_a_reshaped_scene_keeps_everything_but_the_shapes_and_stands_on_the_table():
    from igllm_ros.model import views
    from igllm_ros.scene import Camera, Scene, SceneObject

    scene = Scene(
        objects=(
            SceneObject("cube", "gray", "rubber", "large", (-0.06, 0.0, world.centre_height("cube", "large")), 20.0),
            SceneObject("cylinder", "red", "metal", "small", (0.07, 0.03, world.centre_height("cylinder", "small")), 0.0),
            SceneObject("sphere", "blue", "metal", "small", (0.0, -0.08, world.centre_height("sphere", "small")), 0.0),
        ),
        camera=Camera(),
    )
    shapes = set()
    for seed in range(20):
        new = views.reshaped_scene(scene, np.random.default_rng(seed))
        assert new.camera == scene.camera and len(new.objects) == 3
        for old, obj in zip(scene.objects, new.objects):
            assert (obj.color, obj.material, obj.size, obj.loc[:2]) == (old.color, old.material, old.size, old.loc[:2])
            assert obj.loc[2] == world.centre_height(obj.shape, obj.size)
            assert obj.rotation == world.canonical_yaw_deg(obj.shape, obj.rotation)
            if obj.shape == "cube" and old.shape == "cube":
                assert obj.rotation == old.rotation
        shapes |= {(i, o.shape) for i, o in enumerate(new.objects)}
    assert len(shapes) == 9  # every object took every shape
    assert views.view_scene("reshape", scene, 7) == views.view_scene("reshape", scene, 7)
    assert views.view_scene("colour", scene, 7) is scene


def test_a_masked_shape_target_costs_its_shape_group():
    torch.manual_seed(0)
    model = build(tiny_config(gray_fraction=0.0, reshape_fraction=0.3))
    codec = model.codec
    red_cube = codec.encode(head_text("cube", "red", "metal", "large"))[0]
    logits = torch.randn(2, codec.vocab_size) * 3
    targets = torch.tensor([red_cube, codec.encode(", ")[0]])
    masked = model._token_nll(logits, targets, None, torch.ones(2, dtype=torch.bool))
    group = [codec.encode(head_text(s, "red", "metal", "large"))[0] for s in world.SHAPES]
    assert torch.allclose(masked[0], -torch.log_softmax(logits[0], -1)[group].logsumexp(-1))
    assert torch.equal(masked[1], model._token_nll(logits, targets, None)[1])
    with pytest.raises(ValueError, match="gray_fraction or recolour_fraction"):
        model._token_nll(logits, targets, torch.ones(2, dtype=torch.bool))
