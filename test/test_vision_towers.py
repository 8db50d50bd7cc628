"""Pretrained vision towers: the real ImageNet weights, loaded safely, frozen when asked,
saved and loaded through checkpoints, and cached features equal to computed ones."""
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from igllm_ros.model.config import LLMConfig, ModelConfig, VisionConfig
from igllm_ros.model.igllm import build
from igllm_ros.model.vision import efficientnet, weights
from igllm_ros.model.vision.weights import WeightsError, WeightSource

MILITARY_UNIFORM = 652  # ImageNet-1k class of matplotlib's grace_hopper.jpg


@pytest.fixture(autouse=True)
def weight_cache(tmp_path_factory, monkeypatch):
    # One converted-weights cache for the module: conversion is part of what is tested.
    monkeypatch.setenv("IGLLM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "igllm-cache"))


def small_config(**vision) -> ModelConfig:
    return ModelConfig(
        name="lite0-test",
        input_size=(128, 96),
        vision=VisionConfig(kind="efficientnet_lite0", freeze=True, **vision),
        llm=LLMConfig(hidden=64, layers=2, heads=2, kv_heads=2, intermediate=128, max_positions=512),
    )


def grace_hopper(size=224) -> torch.Tensor:
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None]


def test_pretrained_lite0_classifies_a_real_photo():
    net = efficientnet.geffnet_model("efficientnet_lite0")
    net.load_state_dict(efficientnet.pretrained_state("efficientnet_lite0"), strict=True)
    net.eval()
    x = (grace_hopper().float() / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        probs = net(x).softmax(-1)[0]
    assert int(probs.argmax()) == MILITARY_UNIFORM
    assert float(probs[MILITARY_UNIFORM]) > 0.3
    # The same network with random weights knows nothing.
    torch.manual_seed(0)
    random_net = efficientnet.geffnet_model("efficientnet_lite0").eval()
    with torch.no_grad():
        random_probs = random_net(x).softmax(-1)[0]
    assert float(random_probs[MILITARY_UNIFORM]) < 0.05 and float(random_probs.max()) < 0.2


def test_tower_loads_every_backbone_tensor_of_the_pretrained_weights():
    tower = build(small_config()).vision
    state = efficientnet.pretrained_state("efficientnet_lite0")
    for name, tensor in tower.state_dict().items():
        if name != "position":
            assert torch.equal(tensor, state[name]), name
    random_tower = build(small_config(pretrained=False)).vision
    assert not torch.equal(random_tower.state_dict()["conv_stem.weight"], state["conv_stem.weight"])


def _fake_package(root: Path, payload: bytes) -> WeightSource:
    package = root / "fake_weights_pkg"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('a weights package is located, never imported')\n")
    (package / "models" / "w.pth").write_bytes(payload)
    return WeightSource("fake", "fake-weights-pkg", "fake_weights_pkg", "models/w.pth", efficientnet.SOURCES["efficientnet_lite0"].sha256)


def test_a_replaced_weight_file_is_refused(tmp_path, monkeypatch):
    real = weights.source_file(efficientnet.SOURCES["efficientnet_lite0"]).read_bytes()
    tampered = bytearray(real)
    tampered[len(tampered) // 2] ^= 0xFF
    source = _fake_package(tmp_path, bytes(tampered))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("IGLLM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(WeightsError, match="refusing a replaced or corrupt weight file"):
        weights.load_converted(source, weights.read_state_dict_pth)
    assert not (tmp_path / "cache" / "weights").exists() or not any((tmp_path / "cache" / "weights").iterdir())


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch boom-was-executed",))


def test_pickled_code_in_a_pth_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"w": _Boom()}, handle)
    with pytest.raises(WeightsError, match="not a plain tensor state dict"):
        weights.read_state_dict_pth(path)
    assert not (tmp_path / "boom-was-executed").exists()


def test_a_tampered_cached_conversion_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("IGLLM_CACHE_DIR", str(tmp_path))
    efficientnet.pretrained_state("efficientnet_lite0")
    (cached,) = (tmp_path / "weights").glob("*.safetensors")
    data = bytearray(cached.read_bytes())
    data[-10] ^= 0xFF
    cached.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="do not match their recorded sha256"):
        efficientnet.pretrained_state("efficientnet_lite0")


def _batch(model, count=2, seed=3):
    from igllm_ros.data.stream import generate_samples
    import itertools

    samples = list(itertools.islice(generate_samples("val_id", seed, 160, 120), count))
    return samples, model.collate(samples)


def test_a_training_step_leaves_a_frozen_tower_unchanged():
    torch.manual_seed(0)
    model = build(small_config())
    before = {k: v.clone() for k, v in model.vision.state_dict().items()}
    model.train()
    _, batch = _batch(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss, _ = model.training_loss(batch)
    loss.backward()
    optimizer.step()
    after = model.vision.state_dict()
    for name, tensor in before.items():
        if name == "position":
            assert not torch.equal(tensor, after[name]), "the position embedding must train"
        else:
            assert torch.equal(tensor, after[name]), f"{name} changed (BatchNorm statistics included)"
    assert all(not p.requires_grad for n, p in model.vision.named_parameters() if n != "position")


def test_last_stages_train_when_asked():
    model = build(small_config(train_last_stages=2))
    trains = {n.split(".")[1] for n, p in model.vision.named_parameters() if p.requires_grad and n.startswith("blocks.")}
    assert trains == {"5", "6"}
    assert not model.vision.cacheable
    assert not model.vision.conv_stem.weight.requires_grad


def test_a_fine_tuned_tower_learns_at_its_own_rate():
    model = build(small_config(train_last_stages=2))
    groups = model.param_groups(1e-3, 1e-2, 0.01, tower_lr=1e-4)
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert set(rate) == {id(p) for p in model.parameters() if p.requires_grad}
    assert rate[id(model.vision.blocks[6][0].conv_pwl.weight)] == 1e-4
    assert rate[id(model.vision.position)] == 1e-3  # fresh, so it learns with the body
    assert rate[id(next(model.projector.parameters()))] == 1e-3
    assert rate[id(next(model.numeric_head.parameters()))] == 1e-2
    same = model.param_groups(1e-3, 1e-2, 0.01)
    assert {g["lr"] for g in same} == {1e-3, 1e-2}


def test_cached_feature_training_equals_uncached_on_the_same_batch(tmp_path):
    from igllm_ros.data.writer import generate
    from igllm_ros.model import feature_cache

    torch.manual_seed(0)
    model = build(small_config()).eval()
    generate(tmp_path, "val_id", 4, seed=11, width=160, height=120, progress=False)
    folder = feature_cache.build(model, tmp_path / "val_id", batch_size=3, progress=False)
    cached = feature_cache.CachedFeatureDataset(tmp_path / "val_id", model)
    from igllm_ros.data.dataset import SceneDataset

    images = SceneDataset(tmp_path / "val_id")
    pixel_batch = model.collate([images[i] for i in range(4)])
    feature_batch = model.collate([cached[i] for i in range(4)])
    assert "features" in feature_batch and "pixel_values" not in feature_batch
    for key in ("input_ids", "num_values", "num_mask"):
        assert torch.equal(pixel_batch[key], feature_batch[key])
    with torch.no_grad():
        loss_pixels, _ = model.training_loss(pixel_batch)
        loss_cached, _ = model.training_loss(feature_batch)
    # float16 storage of the features is the only difference
    assert abs(float(loss_pixels) - float(loss_cached)) < 1e-3 * max(1.0, abs(float(loss_pixels)))
    # a second build resumes nothing and rewrites nothing
    assert feature_cache.build(model, tmp_path / "val_id", progress=False) == folder


def test_decoding_features_with_folded_batch_norms_equal_the_tower_and_follow_its_weights():
    torch.manual_seed(0)
    model = build(small_config()).eval()
    tower = model.vision
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 96, 128), dtype=np.uint8))
    with torch.inference_mode():
        reference = tower.features(pixels)
        folded = tower.inference_features(pixels)
    assert folded.shape == reference.shape
    assert torch.allclose(folded, reference, atol=1e-4 * float(reference.abs().max()))
    copy = efficientnet._folded(tower)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in copy.modules())  # every BatchNorm folded
    assert efficientnet._folded(tower) is copy  # made once
    with torch.no_grad():
        tower.blocks[3][0].bn2.running_var.mul_(4.0)  # a changed weight: the copy is rebuilt
    with torch.inference_mode():
        changed = tower.features(pixels)
        assert not torch.allclose(changed, reference, atol=1e-3)
        assert torch.allclose(tower.inference_features(pixels), changed, atol=1e-4 * float(changed.abs().max()))
    assert efficientnet._folded(tower) is not copy
    tower.double()  # .to() keeps the parameters' identity and version: the copy must follow anyway
    with torch.inference_mode():
        assert tower.inference_features(pixels).dtype == torch.float64


def test_checkpoint_round_trip_keeps_the_tower(tmp_path):
    from igllm_ros.model.loading import load

    torch.manual_seed(0)
    model = build(small_config()).eval()
    model.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    samples, _ = _batch(model, count=2)
    images = [s.image for s in samples]
    assert [r.program for r in model.reconstruct(images)] == [r.program for r in loaded.reconstruct(images)]


def test_dinov2_weights_from_onnx_match_the_onnx_graph():
    """The ViT-S/14 rebuilt from the ONNX initializers computes what the ONNX graph's own
    backbone computes (ONNX's reference evaluator, on a small non-square input so that
    the position-table interpolation is exercised too)."""
    import onnx.utils
    from onnx.reference import ReferenceEvaluator

    from igllm_ros.model.vision import dinov2

    tower = dinov2.Dinov2Tower((56, 42))
    tower.load_pretrained()
    tower.eval()
    backbone = Path(os.environ["IGLLM_CACHE_DIR"]) / "dinov2_backbone.onnx"
    onnx.utils.extract_model(str(weights.source_file(dinov2.SOURCE)), str(backbone), ["input_image"], ["/backbone/layernorm/Add_1_output_0"])
    x = np.random.default_rng(0).uniform(-2, 2, (1, 3, 42, 56)).astype(np.float32)
    (expected,) = ReferenceEvaluator(str(backbone)).run(None, {"input_image": x})
    with torch.no_grad():
        ours = tower.model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
    assert ours.shape == expected.shape == (1, 1 + 4 * 3, 384)
    assert np.abs(ours - expected).max() < 1e-3
    # and a random init does not
    random_tower = dinov2.Dinov2Tower((56, 42)).eval()
    with torch.no_grad():
        assert np.abs(random_tower.model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy() - expected).max() > 0.5


def test_dinov2_tower_through_the_model_and_a_checkpoint(tmp_path):
    from igllm_ros.model.loading import load

    config = ModelConfig(
        name="dinov2-test", input_size=(56, 42), vision=VisionConfig(kind="dinov2_small", freeze=True),
        llm=LLMConfig(hidden=64, layers=2, heads=2, kv_heads=2, intermediate=128, max_positions=512),
    )
    model = build(config).eval()
    assert model.image_tokens == 12 and model.vision.cacheable
    model.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert all(torch.equal(t, loaded.state_dict()[n]) for n, t in model.state_dict().items())
