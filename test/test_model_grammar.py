"""The program grammar over token ids: training targets round-trip through the decoding
cursor to exactly the program the scene language writes, in every mode."""
import math

import numpy as np
import pytest

from igllm_ros import program, world
from igllm_ros.model.config import ModelConfig
from igllm_ros.model.fields import FIELDS, canonical_rotation
from igllm_ros.model.grammar import END, Cursor, Grammar, Trie, encode_scene, image_order, target_scene
from igllm_ros.model.vocab import DomainVocab
from igllm_ros.scene import Camera, Scene, SceneObject, intrinsics, project

MODES = [("char", "separate"), ("char", "joint"), ("float", "separate"), ("float", "joint")]


def random_scene(rng: np.random.Generator, count: int | None = None) -> Scene:
    """A scene inside the world's ranges (no rendering: only the numbers matter here)."""
    count = int(rng.integers(0, world.MAX_OBJECTS + 1)) if count is None else count
    objects = []
    for _ in range(count):
        shape, size = rng.choice(world.SHAPES), rng.choice(world.SIZES)
        x, y = rng.uniform(-world.TABLE_HALF_EXTENT_M, world.TABLE_HALF_EXTENT_M, 2)
        objects.append(SceneObject(str(shape), str(rng.choice(world.COLORS)), str(rng.choice(world.MATERIALS)), str(size),
                                   (float(x), float(y), world.centre_height(shape, size)), float(rng.uniform(-180, 180))))
    camera = Camera(tuple(float(c + rng.uniform(-world.CAMERA_JITTER_M, world.CAMERA_JITTER_M)) for c in world.CAMERA_NOMINAL_POSITION_M))
    return Scene(objects=tuple(objects), camera=camera)


def replay(grammar: Grammar, token_ids, num_values) -> Cursor:
    """Feed a target sequence (after <bos>) through a fresh cursor, as decoding would."""
    cursor = Cursor(grammar)
    for token, value in zip(token_ids[1:], num_values[1:]):
        assert int(token) in cursor.allowed()
        cursor.feed(int(token))
        if grammar.numbers == "float" and int(token) == grammar.num_id:
            done = cursor.done[-1]
            done.value = FIELDS[done.segment.name].denormalise(float(value))
    return cursor


@pytest.mark.parametrize("numbers, attribute_tokens", MODES)
def test_targets_replay_to_the_scene_language(numbers, attribute_tokens):
    vocab = DomainVocab(joint=attribute_tokens == "joint")
    grammar = Grammar(vocab, numbers, attribute_tokens)
    rng = np.random.default_rng(0)
    for count in list(range(world.MAX_OBJECTS + 1)) + [None] * 20:
        scene = target_scene(random_scene(rng, count))
        encoded = encode_scene(grammar, scene)
        assert encoded.token_ids[0] == grammar.bos_id and encoded.token_ids[-1] == grammar.eos_id
        cursor = replay(grammar, encoded.token_ids, encoded.num_values)
        assert cursor.finished and cursor.objects == len(scene.objects)
        text = cursor.text()
        assert text == program.format_program(scene)
        assert program.parse_program(text, strict=True)[0] == scene
        nums = encoded.token_ids == grammar.num_id
        if numbers == "float":
            assert nums.sum() == 3 + 4 * len(scene.objects)
            assert np.all(np.abs(encoded.num_values[nums]) <= 1.0 + 1e-6)  # normalised to [-1, 1]
        else:
            assert not nums.any()


def test_joint_heads_make_one_token_per_object_head():
    joint = Grammar(DomainVocab(joint=True), "float", "joint")
    separate = Grammar(DomainVocab(), "float", "separate")
    scene = target_scene(random_scene(np.random.default_rng(1), 5))
    # separate: add-or-end + shape + 3 x (fragment, value) per object; joint: 1 token.
    assert len(encode_scene(separate, scene).token_ids) - len(encode_scene(joint, scene).token_ids) == 5 * 7


def test_char_numbers_allow_only_in_range_values_with_exact_decimals():
    grammar = Grammar(DomainVocab(), "char", "separate")
    for name, spec in FIELDS.items():
        texts = spec.all_texts()
        assert texts == sorted(set(texts), key=float) and len(texts) == len(set(texts))
        assert float(texts[0]) == pytest.approx(spec.lo) and float(texts[-1]) == pytest.approx(spec.hi)
        for text in texts:
            assert text[0] in "+-" and len(text.split(".")[1]) == spec.decimals
        assert set(grammar.number[name].trie.paths) == set(texts)
    assert FIELDS["rotation"].hi == pytest.approx(44.9) and FIELDS["rotation"].lo == -45.0
    assert FIELDS["x"].lo == -0.15 and FIELDS["z"].lo == 0.0 and FIELDS["z"].hi == 0.035


def test_out_of_range_scene_values_are_refused_with_the_field_name():
    grammar = Grammar(DomainVocab(), "float", "separate")
    scene = Scene(objects=(SceneObject("cube", "red", "metal", "large", (0.2, 0.0, 0.025), 0.0),))
    with pytest.raises(ValueError, match="x=0.2"):
        encode_scene(grammar, target_scene(scene))


def test_canonical_rotation_wraps_and_zeroes_round_shapes():
    assert canonical_rotation("sphere", 33.0) == 0.0
    assert canonical_rotation("cube", 95.0) == pytest.approx(5.0)
    assert canonical_rotation("cube", 44.97) == pytest.approx(-45.0)  # rounds to +45.0, which wraps
    assert canonical_rotation("cube", -45.0) == pytest.approx(-45.0)


def test_objects_are_ordered_left_to_right_in_the_image():
    scene = random_scene(np.random.default_rng(2), 8)
    ordered = image_order(scene)
    u = project(scene.camera.to_optical(np.array([o.loc for o in ordered])), intrinsics())[:, 0]
    assert np.all(np.diff(u) >= 0)


def test_max_objects_forces_the_end():
    grammar = Grammar(DomainVocab(), "float", "separate")
    cursor = Cursor(grammar, max_objects=0)
    while not cursor.finished:
        allowed = cursor.allowed()
        assert len(allowed) == 1  # camera line and the forced end: nothing to choose
        cursor.feed(allowed[0])
        if cursor.done and cursor.done[-1].segment.kind == "number":
            cursor.done[-1].value = 0.0
    assert cursor.done[-1].option == END and cursor.objects == 0


def test_a_trie_refuses_options_that_prefix_each_other():
    with pytest.raises(ValueError, match="prefix"):
        Trie("t", {"a": (1, 2), "ab": (1, 2, 3)})
    with pytest.raises(ValueError, match="prefix"):
        Trie("t", {"ab": (1, 2, 3), "a": (1, 2)})


def test_config_checks_name_the_key():
    with pytest.raises(ValueError, match="input_size"):
        ModelConfig(input_size=(160, 160))
    with pytest.raises(ValueError, match="numbers"):
        ModelConfig(numbers="int")
    with pytest.raises(ValueError, match="value_feedback"):
        ModelConfig(numbers="char", value_feedback=True)
    with pytest.raises(ValueError, match=r"unknown option.*model\.vision"):
        ModelConfig.from_dict({"vision": {"hiden": 3}})
    with pytest.raises(ValueError, match="joint needs the domain vocabulary"):
        ModelConfig.from_dict({"attribute_tokens": "joint", "llm": {"pretrained_path": "/x"}})
    assert ModelConfig.from_dict({"llm": {"pretrained_path": "/x"}}).attribute_tokens == "separate"
    assert ModelConfig().attribute_tokens == "joint"
    config = ModelConfig.from_dict({"numbers": "char", "vision": {"hidden": 64, "heads": 4}, "lora": {"r": 8, "alpha": 16}})
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["kind"] == "igllm"
    assert math.isclose(FIELDS["cx"].scale, world.CAMERA_JITTER_M)


def test_joint_head_confidences_are_the_marginals_of_the_distribution():
    """exists = 1 - P(end); an attribute's confidence: the mass of the heads sharing the
    chosen value, among the heads; checked against a loop over a random distribution."""
    grammar = Grammar(DomainVocab(joint=True), "float", "joint")
    cursor = Cursor(grammar)
    while len(cursor.allowed()) == 1:
        cursor.feed(cursor.allowed()[0], 1.0)
    allowed = cursor.allowed()
    assert grammar.eos_id in allowed and len(allowed) == len(grammar.heads) + 1
    p = np.random.default_rng(4).dirichlet(np.ones(len(allowed)))
    distribution = dict(zip(allowed, p.tolist()))
    token = max(t for t in allowed if t != grammar.eos_id)
    cursor.feed(token, distribution[token], distribution)
    head_of = {ids[0]: grammar.heads[text] for text, ids in grammar.more.trie.paths.items() if text in grammar.heads}
    chosen = head_of[token]
    exists = sum(q for t, q in distribution.items() if t in head_of)
    expected = {"exists": exists}
    for i, name in enumerate(program.ATTRIBUTE_FIELDS):
        expected[name] = sum(q for t, q in distribution.items() if t in head_of and head_of[t][i] == chosen[i]) / exists
    (confidences,) = cursor.attribute_confidences()
    assert confidences.keys() == expected.keys()
    for name, value in expected.items():
        assert confidences[name] == pytest.approx(value, rel=1e-12), name
    assert 0 < confidences["exists"] < 1 and all(0 < confidences[n] < 1 for n in program.ATTRIBUTE_FIELDS)
