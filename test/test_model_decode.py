"""Constrained, batched, KV-cached decoding from random weights: every output parses,
max_objects holds, batching and forced-token skipping change nothing but the step count."""
import numpy as np
import pytest
import torch

from igllm_ros import model as igllm
from igllm_ros import program, world
from igllm_ros.model.decode import reconstruct

CONFIGS = {
    "float-joint": {},
    "float-separate": {"attribute_tokens": "separate"},
    "float-feedback": {"value_feedback": True},
    "char-joint": {"numbers": "char"},
    "char-separate": {"numbers": "char", "attribute_tokens": "separate"},
}


def noisy_model(changes: dict, seed: int = 0, end_bias: float = 0.0):
    """The tiny test model with loud random LLM weights, so its choices vary. end_bias is
    added to the end-of-program logit: -1e4 makes a model that never wants to stop (the
    grammar must stop it); a positive bias makes stopping likely among joint heads (96
    options against one end)."""
    torch.manual_seed(seed)
    model = igllm.build(igllm.tiny_test_config().replace(**changes)).eval()
    with torch.no_grad():
        for p in model.llm.parameters():
            p.normal_(0.0, 0.5)
    if end_bias:  # an LM head with a bias on the end token (the same weight, tied or not)
        head = model.llm.get_output_embeddings()
        biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
        biased.weight = head.weight
        with torch.no_grad():
            biased.bias.zero_()[model.grammar.eos_id] = end_bias
        model.llm.set_output_embeddings(biased.eval())
    return model


def images(count: int, seed: int = 0, size=(48, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


@pytest.mark.parametrize("name", CONFIGS)
def test_random_weights_always_write_valid_programs(name):
    counts = []
    # Biases on the end logit from "rather stop" to "rather go on" give every object count.
    for seed, end_bias in enumerate((2.0, 1.0, 0.0, -1.0, -3.0) if "separate" in name else (4.0, 3.0, 2.0, 1.0, 0.0)):
        model = noisy_model(CONFIGS[name], seed=seed, end_bias=end_bias)
        for batch in (1, 4):
            for result in model.reconstruct(images(batch, seed=10 * seed + batch, size=(120, 160)), max_objects=10):
                scene, errors = program.parse_program(result.program, strict=True)
                assert not errors and len(scene.objects) <= world.MAX_OBJECTS
                assert result.scene.camera == scene.camera and len(result.scene.objects) == len(scene.objects)
                for obj in result.scene.objects:
                    conf = obj.attribute_confidence
                    assert set(conf) == {"exists", "shape", "color", "material", "size"}
                    assert all(0.0 <= v <= 1.0 + 1e-6 for v in conf.values())
                    assert obj.confidence == pytest.approx(np.prod(list(conf.values())))
                    if obj.shape != "cube":
                        assert obj.rotation == 0.0
                    else:
                        assert -45.0 <= obj.rotation < 45.0
                counts.append(len(scene.objects))
    assert len(set(counts)) >= 3, f"random weights should give varied scenes, got counts {counts}"


@pytest.mark.parametrize("name", ["float-joint", "char-separate", "float-feedback"])
@pytest.mark.parametrize("max_objects", [0, 2, 10])
def test_max_objects_is_respected(name, max_objects):
    model = noisy_model(CONFIGS[name], end_bias=-1e4)
    for result in model.reconstruct(images(3), max_objects=max_objects):
        assert len(result.scene.objects) == max_objects  # it never wants to stop: the grammar stops it
        program.parse_program(result.program, strict=True)


@pytest.mark.parametrize("name", CONFIGS)
def test_batched_decoding_equals_one_by_one(name):
    model = noisy_model(CONFIGS[name], seed=1)
    batch = images(6, seed=3)
    together = model.reconstruct(batch)
    alone = [model.reconstruct([image])[0] for image in batch]
    assert [r.program for r in together] == [r.program for r in alone]
    assert [r.steps for r in together] == [r.steps for r in alone]
    for a, b in zip(together, alone):
        for oa, ob in zip(a.scene.objects, b.scene.objects):
            assert oa.attribute_confidence == pytest.approx(ob.attribute_confidence, abs=1e-4)


@pytest.mark.parametrize("name", CONFIGS)
def test_skipping_forced_tokens_changes_only_the_step_count(name):
    model = noisy_model(CONFIGS[name], seed=2, end_bias=-1e4)
    batch = images(3, seed=4)
    fast = reconstruct(model, batch, max_objects=3, skip_forced=True)
    slow = reconstruct(model, batch, max_objects=3, skip_forced=False)
    assert [r.program for r in fast] == [r.program for r in slow]
    for f, s in zip(fast, slow):
        assert f.steps < s.steps
        # without skipping, one forward pass per token: <bos> and the program (the end is never fed)
        assert s.steps == len(_tokens(model, f.program))


def test_float_step_counts_follow_the_grammar():
    joint = noisy_model({}, end_bias=-1e4)
    separate = noisy_model({"attribute_tokens": "separate"}, end_bias=-1e4)
    feedback = noisy_model({"value_feedback": True}, end_bias=-1e4)
    for n in (0, 3):
        assert joint.reconstruct(images(1), max_objects=n)[0].steps == 1 + n
        assert separate.reconstruct(images(1), max_objects=n)[0].steps == 1 + 5 * n
        # each <num> needs the state before it: the 3 camera numbers and 4 per object
        # (the last run, a <num> already valued and its ")", needs no pass before a forced end)
        assert feedback.reconstruct(images(1), max_objects=n)[0].steps == 1 + 3 + 5 * n - 1


def test_bad_input_gets_a_clear_error():
    model = igllm.build(igllm.tiny_test_config()).eval()
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        model.reconstruct([np.zeros((48, 64), np.uint8)])
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        model.reconstruct([np.zeros((48, 64, 3), np.float32)])
    with pytest.raises(ValueError, match="list of images"):
        model.reconstruct(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="max_objects"):
        model.reconstruct(images(1), max_objects=11)
    assert model.reconstruct([]) == []


def _tokens(model, text: str) -> list[int]:
    """The token ids of a decoded program (re-encoded through the grammar)."""
    from igllm_ros.model.grammar import encode_scene

    scene = program.parse_program(text, strict=True)[0]
    ids = encode_scene(model.grammar, scene).token_ids
    return list(ids[:-1])  # the end is never fed
