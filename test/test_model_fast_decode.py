"""The fast decoding path (fast_llama.py: static KV cache, lean Llama forward) against
transformers' generic forward: the same programs, steps and confidences on the shipped
default model's rendered scenes and on random small models in every mode, the same hidden
states pass by pass, and the generic path where the fast one does not apply.

Tolerance: both paths run the same float32 ops in the same order, except that the fast
path skips the last layer's outputs for image tokens (never read) and, for a matmul over
fewer rows, the BLAS kernel may accumulate in another order; states may then differ in
the last bits (asserted below 1e-4 absolute), which can move a printed number only when
its value lies within about 1e-6 of a rounding boundary. The programs are asserted equal.

Every test runs twice: with the fast path's ONNX Runtime parts (onnx_runtime.py: the
decoder layers' matmuls and the EfficientNet tower, which sum in yet another order, within
the same tolerances) and with PyTorch only (IGLLM_ONNX_RUNTIME=0).
"""
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from igllm_ros import model as igllm
from igllm_ros.model import decode, fast_llama
from igllm_ros.model.igllm import IGLLM

from test_model_decode import CONFIGS, images, noisy_model

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "igllm-tiny-float"


@pytest.fixture(autouse=True, params=["onnx-runtime", "pytorch"])
def runtime(request, monkeypatch):
    from igllm_ros.model import onnx_runtime

    if request.param == "pytorch":
        monkeypatch.setenv(onnx_runtime.ENV_SWITCH, "0")
    elif not onnx_runtime.installed():
        pytest.skip("onnxruntime is not installed (scripts/setup_env.sh installs it)")
    return request.param


@pytest.fixture(autouse=True)
def one_thread():
    # Small matmuls: one thread is far faster on a shared machine (ten times here).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_same(fast, generic):
    assert [r.program for r in fast] == [r.program for r in generic]
    assert [r.steps for r in fast] == [r.steps for r in generic]
    for f, g in zip(fast, generic):
        for of, og in zip(f.scene.objects, g.scene.objects):
            assert of.attribute_confidence == pytest.approx(og.attribute_confidence, abs=1e-5)


@pytest.fixture(scope="module")
def shipped_scenes():
    if not (SHIPPED / "model.safetensors").is_file():
        pytest.skip(f"no shipped model at {SHIPPED}")
    from igllm_ros.data.stream import generate_samples

    model = igllm.load(str(SHIPPED), device="cpu", dtype=torch.float32)
    samples = list(itertools.islice(generate_samples("val_id", 2026, *model.input_size), 96))
    return model, [s.image for s in samples]


def test_shipped_model_decodes_the_same_on_96_rendered_scenes(shipped_scenes):
    model, scenes = shipped_scenes
    assert decode.llm_path(model) == fast_llama.NAME
    for start in range(0, len(scenes), 8):
        chunk = scenes[start:start + 8]
        assert_same(decode.reconstruct(model, chunk, path="fast"), decode.reconstruct(model, chunk, path="generic"))
    alone = scenes[:6]  # one image at a time, as the node decodes
    fast = [decode.reconstruct(model, [image], path="fast")[0] for image in alone]
    assert_same(fast, decode.reconstruct(model, alone, path="generic"))


def test_the_default_lite0_model_writes_the_same_programs_with_its_folded_tower():
    # The fast path also runs an EfficientNet tower with its BatchNorms folded into the
    # convolutions (equal to float rounding, ~1e-6 relative): programs must not change.
    from igllm_ros.data.stream import generate_samples
    from igllm_ros.reconstruction import DEFAULT_MODEL

    path = Path(__file__).resolve().parents[1] / DEFAULT_MODEL
    model = igllm.load(str(path), device="cpu", dtype=torch.float32)
    if not hasattr(model.vision, "inference_features"):
        pytest.skip(f"{DEFAULT_MODEL} has no EfficientNet tower")
    scenes = [s.image for s in itertools.islice(generate_samples("val_camera", 2026, 320, 240), 32)]
    for start in range(0, len(scenes), 8):
        chunk = scenes[start:start + 8]
        fast = decode.reconstruct(model, chunk, path="fast")
        generic = decode.reconstruct(model, chunk, path="generic")
        assert [r.program for r in fast] == [r.program for r in generic]


@pytest.mark.parametrize("name", CONFIGS)
def test_random_models_decode_the_same(name):
    # end_bias -1e4: a model that never stops, cut at max_objects (the longest programs:
    # char mode grows the cache past its first capacity)
    for seed, end_bias, max_objects in ((0, 0.0, 3), (1, 2.0, 10), (2, -1e4, 4)):
        model = noisy_model(CONFIGS[name], seed=seed, end_bias=end_bias)
        assert decode.llm_path(model) == fast_llama.NAME
        batch = images(4, seed=seed, size=(120, 160))
        generic = decode.reconstruct(model, batch, max_objects, path="generic")
        assert_same(decode.reconstruct(model, batch, max_objects, path="fast"), generic)
        assert_same([decode.reconstruct(model, [image], max_objects, path="fast")[0] for image in batch], generic)
        slow = decode.reconstruct(model, batch[:1], max_objects, skip_forced=False, path="fast")
        assert slow[0].program == generic[0].program


def test_grouped_query_attention_decodes_the_same():
    config = igllm.tiny_test_config()
    config = config.replace(llm=replace(config.llm, heads=4, kv_heads=2))
    torch.manual_seed(0)
    model = igllm.build(config).eval()
    with torch.no_grad():
        for p in model.llm.parameters():
            p.normal_(0.0, 0.5)
    batch = images(4, seed=5)
    assert_same(decode.reconstruct(model, batch, path="fast"), decode.reconstruct(model, batch, path="generic"))


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-4), (torch.bfloat16, 5e-2)])
def test_hidden_states_match_pass_by_pass(dtype, atol):
    """Prefill, then a padded pass and a one-token pass, fed to both sessions alike (bf16:
    the CUDA default, whose casts the fast path must place as transformers does)."""
    model = noisy_model({}, seed=3).to(dtype)
    with torch.inference_mode():
        image = model.encode_images(torch.randint(0, 256, (3, 3, 240, 320), dtype=torch.uint8))
        assert image.dtype == dtype
        fast = fast_llama.FastLlama(model.llm).start(image)
        generic = decode._GenericSession(model, image)
        position = image.shape[1]
        for width, lengths in ((4, [4, 4, 4]), (3, [3, 1, 2]), (1, [1, 1, 0])):
            ids = torch.randint(3, model.grammar.codec.vocab_size, (3, width))
            valid = torch.tensor([[i < n for i in range(width)] for n in lengths])
            positions = position + torch.arange(width).expand(3, width)
            embeds = model.embed_tokens(ids).to(dtype)
            padded = min(lengths) != max(lengths)
            a = fast.forward(embeds, valid, positions, padded)
            b = generic.forward(embeds, valid, positions, padded)
            assert a.shape == b.shape == (3, width, embeds.shape[-1]) and a.dtype == b.dtype == dtype
            difference = (a.float() - b.float())[valid].abs().max()
            assert difference <= atol, difference
            position += width


def test_bfloat16_model_decodes_the_same():
    model = noisy_model(CONFIGS["char-separate"], seed=1).to(torch.bfloat16)
    batch = images(3, seed=1, size=(120, 160))
    assert_same(decode.reconstruct(model, batch, 4, path="fast"), decode.reconstruct(model, batch, 4, path="generic"))


def test_fast_path_follows_weight_changes():
    """The fused weight copies are rebuilt after an in-place change (a training step)."""
    model = noisy_model({}, seed=4)
    batch = images(2, seed=6)
    before = decode.reconstruct(model, batch, path="fast")
    layer = model.llm.model.layers[0]
    with torch.no_grad():
        for weight in (layer.self_attn.k_proj.weight, layer.mlp.up_proj.weight):
            weight.copy_(torch.randn_like(weight))
    generic = decode.reconstruct(model, batch, path="generic")
    assert [r.program for r in generic] != [r.program for r in before]  # the change matters
    assert_same(decode.reconstruct(model, batch, path="fast"), generic)


def test_unsupported_llms_take_the_generic_path():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = igllm.tiny_test_config()
    llama = igllm.build(config)
    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=llama.codec.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))
    model = IGLLM(config, llama.vision, qwen, llama.codec).eval()
    assert decode.llm_path(model) == decode.GENERIC
    assert decode.describe_path(model).startswith(decode.GENERIC + " (")
    with pytest.raises(ValueError, match="fast decoding path does not support"):
        decode.reconstruct(model, images(1), path="fast")
    result = decode.reconstruct(model, images(2))
    assert len(result) == 2 and all(r.steps >= 1 for r in result)
    with pytest.raises(ValueError, match="path must be"):
        decode.reconstruct(model, images(1), path="quick")


def test_biased_llama_is_refused_by_the_fast_path():
    config = igllm.tiny_test_config()
    model = igllm.build(config)
    assert fast_llama.unsupported_reason(model.llm) is None
    model.llm.config.attention_bias = True
    assert "attention bias" in fast_llama.unsupported_reason(model.llm)


def test_static_cache_grows_keeping_what_was_written():
    from igllm_ros.model.kv_cache import StaticKVCache

    cache = StaticKVCache(layers=1, batch=2, kv_heads=1, head_dim=2, capacity=3, dtype=torch.float32, device=torch.device("cpu"))
    start, end = cache.append_slots(torch.tensor([[True, True], [True, False]]), padded=True)
    keys, _ = cache.store(0, start, torch.ones(2, 1, 2, 2), torch.ones(2, 1, 2, 2))
    start, end = cache.append_slots(torch.ones(2, 4, dtype=torch.bool), padded=False)
    assert (start, end) == (2, 6) and cache.capacity >= 6 and cache.has_padding
    keys, _ = cache.store(0, start, torch.full((2, 1, 4, 2), 2.0), torch.zeros(2, 1, 4, 2))
    assert keys.shape == (2, 1, 6, 2) and keys[:, :, :2].eq(1).all() and keys[:, :, 2:].eq(2).all()
    mask = cache.mask(start, end, rows=4)
    assert mask.shape == (2, 1, 4, 6)
    assert not mask[1, 0, :, 1].any() and mask[0, 0, :, 1].all()  # the padded slot is never seen
    assert mask[0, 0, 0].tolist() == [True, True, True, False, False, False]  # causal
    with pytest.raises(ValueError):
        StaticKVCache(0, 1, 1, 1, 1, torch.float32, torch.device("cpu"))


def test_slot_major_cache_grows_keeping_what_was_written_as_one_block():
    from igllm_ros.model.kv_cache import StaticKVCache

    cache = StaticKVCache(layers=2, batch=2, kv_heads=1, head_dim=2, capacity=3, dtype=torch.float32, device=torch.device("cpu"), layout="slots")
    start, end = cache.append_slots(torch.ones(2, 2, dtype=torch.bool), padded=False)
    cache.store_slots(start, torch.ones(2, 4, 2, 1, 2))
    start, end = cache.append_slots(torch.ones(2, 4, dtype=torch.bool), padded=False)
    assert (start, end) == (2, 6) and cache.capacity >= 6
    cache.store_slots(start, torch.full((4, 4, 2, 1, 2), 2.0))
    written = cache.written_slots(end)
    assert written.shape == (6, 4, 2, 1, 2) and written.is_contiguous()
    assert written[:2].eq(1).all() and written[2:].eq(2).all()
    with pytest.raises(ValueError, match="layout"):
        StaticKVCache(1, 1, 1, 1, 1, torch.float32, torch.device("cpu"), layout="heads")
