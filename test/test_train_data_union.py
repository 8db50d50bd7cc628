"""Training on the union of several dataset folders (e.g. moderngl renders plus Cycles
renders): a YAML list in data.train, drawn as one dataset, with the gray view of every
image lined up behind the colour views."""
import numpy as np
import pytest
import torch

from igllm_ros.data.splits import split_rule
from igllm_ros.model.samples import DataSpec, load_samples
from igllm_ros.model.training.data import collate_fn, train_batches


def test_a_list_is_the_union_of_its_directories_and_says_so():
    spec = DataSpec.parse(["features:data/a", "features:data/b"])
    assert spec.source == "features" and spec.paths == ("data/a", "data/b")
    assert spec.describe() == "features:data/a + features:data/b"
    assert spec.to_dict()["extra_paths"] == ["data/b"]
    assert DataSpec.parse("data/a").paths == ("data/a",) and "extra_paths" not in DataSpec.parse("data/a").to_dict()
    for bad, message in (
        (["data/a", "features:data/b"], "all datasets or all features"),
        (["generator:train", "generator:train_robust"], "all datasets or all features"),
        (["data/a", "data/a"], "twice"),
        ([], "empty"),
    ):
        with pytest.raises(ValueError, match=message):
            DataSpec.parse(bad)


def test_the_cycles_training_split_renders_with_cycles_from_its_own_seeds():
    rule = split_rule("train_cycles")
    assert rule.renderer == "cycles" and rule.camera == "robot" and rule.condition == "A"
    assert rule.seed_split is None  # never val_cycles' (val_id's) scenes


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory):
    from igllm_ros.data.writer import generate

    out = tmp_path_factory.mktemp("union")
    generate(out, "val_id", 3, seed=1, width=160, height=120, progress=False)
    generate(out, "val_camera", 2, seed=2, width=160, height=120, progress=False)
    return out / "val_id", out / "val_camera"


def _scene_keys(samples):
    return sorted(tuple(round(v, 4) for v in s.scene.camera.loc) for s in samples)


def test_dataset_union_draws_every_image_of_both_folders_each_epoch(two_folders):
    from igllm_ros.model.config import LLMConfig, ModelConfig, VisionConfig
    from igllm_ros.model.igllm import build

    model = build(ModelConfig(
        input_size=(128, 96), camera_range="robot", vision=VisionConfig(hidden=32, layers=2, heads=2, patch=16),
        llm=LLMConfig(hidden=32, layers=1, heads=2, kv_heads=2, intermediate=64, max_positions=512),
    ))
    spec = DataSpec.parse([str(p) for p in two_folders])
    everything = load_samples(spec, default_size=model.input_size)
    assert len(everything) == 5 and len(load_samples(spec, model.input_size, count=4)) == 4
    seen = []
    batches = train_batches(
        spec, lambda samples: samples, batch_size=5, workers=0, seed=0, start_sample=0, start_step=0,
        default_size=model.input_size,
    )
    seen = next(batches)
    assert _scene_keys(seen) == _scene_keys(everything)  # one epoch: all five, from both folders
    assert "input_ids" in collate_fn(model, False)(seen)


def test_feature_union_lines_each_gray_view_up_with_its_colour_view(two_folders, tmp_path, monkeypatch):
    from igllm_ros.model.config import LLMConfig, ModelConfig, VisionConfig
    from igllm_ros.model.igllm import build

    monkeypatch.setenv("IGLLM_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = build(ModelConfig(
        input_size=(128, 96), camera_range="robot", factorized_joint=True, gray_fraction=0.5,
        vision=VisionConfig(kind="efficientnet_lite0", freeze=True),
        llm=LLMConfig(hidden=32, layers=1, heads=2, kv_heads=2, intermediate=64, max_positions=512),
    )).eval()
    spec = DataSpec.parse([f"features:{p}" for p in two_folders])
    batches = train_batches(
        spec, lambda samples: samples, batch_size=5, workers=0, seed=3, start_sample=0, start_step=0,
        default_size=model.input_size, model=model,
    )
    drawn = [s for _ in range(8) for s in next(batches)]
    images = load_samples(DataSpec.parse([str(p) for p in two_folders]), model.input_size)
    for epoch in range(8):  # each epoch shows every image once, in one view or the other
        assert _scene_keys(drawn[5 * epoch : 5 * epoch + 5]) == _scene_keys(images)
    assert {s.colour_masked for s in drawn} == {False, True}
    # every draw carries the features of its own image in its own view
    from igllm_ros.images import grayscale
    from igllm_ros.model.feature_cache import _features

    for s in drawn[:10]:
        image = next(i.image for i in images if i.scene == s.scene)
        expected = _features(model, [grayscale(image) if s.colour_masked else image])[0]
        diff = np.abs(s.features.astype(np.float32) - expected.astype(np.float32))
        assert diff.max() <= 2e-2 + 2e-3 * np.abs(expected).max(), diff.max()  # fp16 of batched vs single-image convs


def test_a_cycles_images_reshaped_view_is_drawn_by_moderngl_without_blender(monkeypatch):
    """The reshape view re-renders the scene: for a Cycles record that is moderngl (the
    nominal look), never a second Blender render per image (~1 s each on this CPU)."""
    from igllm_ros.data import records
    from igllm_ros.data.render import SceneRenderer
    from igllm_ros.data.sampling import sample_scene_with_labels
    from igllm_ros.model import views

    def no_blender(*_args, **_kwargs):
        raise AssertionError("the reshaped view asked for the Cycles renderer")

    monkeypatch.setattr(records, "blender_renderer", no_blender)
    with SceneRenderer(160, 120) as renderer:
        spec, mask, _ = sample_scene_with_labels(np.random.default_rng(3), "train_cycles", 160, 120, renderer)
        record = records.make_record(spec, mask, index=0, seed=3)
        assert record["renderer"] == "cycles"
        with pytest.raises(AssertionError, match="Cycles renderer"):
            records.render_spec(spec, renderer)  # the split's own RGB renderer is Blender's

        class OneRecord:  # the part of SceneDataset that the reshape view reads
            def record(self, i):
                return record

        reshaped = views.view_images("reshape", OneRecord())(0)
        expected_scene = views.view_scene("reshape", records.spec_from_record(record).scene, 0)
        expected = renderer.render_rgb(expected_scene, spec.lighting, spec.look)
    assert reshaped.shape == (120, 160, 3) and spec.look is None
    assert np.array_equal(reshaped, expected)  # nominal look: no sensor effects on top
    assert expected_scene != spec.scene  # the view draws its own scene, not the record's
