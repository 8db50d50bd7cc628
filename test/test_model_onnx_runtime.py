"""ONNX Runtime on a CPU in float32 (model/onnx_runtime.py): the frozen EfficientNet tower
(vision/onnx_tower.py) and the decoder layers' matmul work (onnx_llama.py) against their
PyTorch paths, on the shipped default model and rendered robot-camera scenes.

Tolerance: both compute the same float32 network from the same weights, but their kernels
sum in different orders, so tower features and hidden states differ in the last bits
(asserted below 1e-6 of the features' magnitude, 1e-4 absolute for hidden states).
Decoded programs are then the same except where a printed number lies at a rounding
boundary: attribute tokens and the object count are asserted equal, and every number
within one printed step (1 mm, 0.1 degree).
"""
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from igllm_ros import model as igllm
from igllm_ros.model import fast_llama, onnx_runtime
from igllm_ros.model.vision import efficientnet, onnx_tower

pytest.importorskip("onnxruntime", reason="onnxruntime is a project dependency (scripts/setup_env.sh)")

MODELS = Path(__file__).resolve().parents[1] / "models"
# The shipped default (tokens at stride 32: 8 x 6) and the stride-16 option (16 x 12 tokens).
SHIPPED = {"igllm-lite0-cycles2": (8, 6), "igllm-lite0-s16": (16, 12)}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request):
    return request.param


@pytest.fixture(scope="module")
def model_and_scenes(shipped):
    from igllm_ros.data.stream import generate_samples

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = igllm.load(str(MODELS / shipped), device="cpu", dtype=torch.float32)
    assert model.vision.grid(model.input_size) == SHIPPED[shipped]
    samples = list(itertools.islice(generate_samples("val_camera", 77, *model.input_size), 24))
    yield model, [s.image for s in samples]
    torch.set_num_threads(threads)


def pixels_of(model, images):
    return torch.stack([torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1))) for i in images])


def test_features_equal_pytorch_to_float_rounding(model_and_scenes, monkeypatch):
    model, images = model_and_scenes
    pixels = pixels_of(model, images[:8])
    assert onnx_tower.available(efficientnet._folded(model.vision), pixels)
    with torch.inference_mode():
        ours = model.vision.inference_features(pixels)
        monkeypatch.setenv(onnx_runtime.ENV_SWITCH, "0")
        assert not onnx_tower.available(efficientnet._folded(model.vision), pixels)
        folded = model.vision.inference_features(pixels)
        reference = model.vision.features(pixels)
    columns, rows = model.vision.grid(model.input_size)
    assert ours.shape == reference.shape == (8, columns * rows, model.vision.out_dim)
    scale = reference.abs().max().item()
    assert scale > 1.0
    assert (ours - folded).abs().max().item() < 1e-6 * scale * 10
    assert (ours - reference).abs().max().item() < 1e-5 * scale
    # One image alone equals itself in a batch (the graph's batch axis is dynamic).
    with torch.inference_mode():
        monkeypatch.setenv(onnx_runtime.ENV_SWITCH, "1")
        single = model.vision.inference_features(pixels[3:4])
    assert (single[0] - ours[3]).abs().max().item() < 1e-6 * scale * 10


def test_decoder_layers_equal_pytorch_pass_by_pass(model_and_scenes, monkeypatch):
    model, images = model_and_scenes
    with torch.inference_mode():
        image = model.encode_images(pixels_of(model, images[:2]), fast=True)
        ours = fast_llama.FastLlama(model.llm)
        monkeypatch.setenv(onnx_runtime.ENV_SWITCH, "0")
        theirs = fast_llama.FastLlama(model.llm)
        assert ours.onnx and not theirs.onnx
        a, b = ours.start(image), theirs.start(image)
        embeds = model.llm.get_input_embeddings()
        for step, width in enumerate([1, 9, 1, 12]):  # the prefill, then runs as decoding feeds them
            ids = torch.randint(4, 60, (2, width))
            start = image.shape[1] + sum([1, 9, 1, 12][:step])
            positions = torch.arange(start, start + width).expand(2, width)
            valid = torch.ones((2, width), dtype=torch.bool)
            ha, hb = a.forward(embeds(ids), valid, positions, False), b.forward(embeds(ids), valid, positions, False)
            assert ha.shape == hb.shape == (2, width, model.llm.config.hidden_size)
            assert (ha - hb).abs().max().item() < 1e-4


def test_programs_match_pytorch_on_24_robot_camera_scenes(model_and_scenes, monkeypatch):
    model, images = model_and_scenes
    ours = model.reconstruct(images)
    monkeypatch.setenv(onnx_runtime.ENV_SWITCH, "0")
    theirs = model.reconstruct(images)
    assert sum(len(r.scene.objects) for r in theirs) > 48  # real scenes, objects read
    for a, b in zip(ours, theirs):
        assert len(a.scene.objects) == len(b.scene.objects)
        for oa, ob in zip(a.scene.objects, b.scene.objects):
            assert (oa.shape, oa.color, oa.material, oa.size) == (ob.shape, ob.color, ob.material, ob.size)
            assert np.allclose(oa.loc, ob.loc, atol=0.0011)
            assert abs(oa.rotation - ob.rotation) <= 0.11 or abs(abs(oa.rotation - ob.rotation) - 90) <= 0.11
        assert np.allclose(a.scene.camera.loc, b.scene.camera.loc, atol=0.0011)


def test_pytorch_path_where_it_does_not_apply(model_and_scenes, shipped):
    model, images = model_and_scenes
    pixels = pixels_of(model, images[:1])
    half = igllm.load(str(MODELS / shipped), device="cpu", dtype=torch.bfloat16)
    assert not onnx_tower.available(efficientnet._folded(half.vision), pixels)
    assert onnx_tower.available(efficientnet._folded(model.vision), pixels)


def test_grouped_query_attention_and_padded_batches_decode_as_pytorch(monkeypatch):
    # kv_heads < heads (SmolLM2-style grouped queries) and batches whose runs differ in
    # length (padded slots masked), through the whole-pass graph and the per-layer ones.
    from dataclasses import replace

    from igllm_ros.model import decode
    from test_model_decode import images, noisy_model

    config = igllm.tiny_test_config()
    llm = replace(config.llm, heads=4, kv_heads=2)
    model = noisy_model({"llm": llm}, seed=3, end_bias=2.0)
    assert model.llm.config.num_key_value_heads == 2
    pictures = images(6, seed=5, size=(120, 160))
    ours = decode.reconstruct(model, pictures, path="fast")
    monkeypatch.setenv(onnx_runtime.ENV_SWITCH, "0")
    generic = decode.reconstruct(model, pictures, path="generic")
    assert [r.program for r in ours] == [r.program for r in generic]
    assert len({len(r.scene.objects) for r in ours}) > 1  # runs of different lengths in one batch
