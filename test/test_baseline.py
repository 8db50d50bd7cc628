"""The DETR-style baseline: targets, Hungarian loss, reconstruct, checkpoints, collate.
The overfit test lives in test_baseline_overfit.py."""
import itertools
import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from igllm_ros import baseline, program, world
from igllm_ros.baseline import targets
from igllm_ros.baseline.matching import hungarian_match, set_loss

SMALL = dict(kind="detr_baseline", d_model=32, ffn_dim=64, heads=4, encoder_layers=1, decoder_layers=2,
             backbone_channels=(8, 16, 32), input_size=(96, 72))


def _load_errors():
    """What a failed load raises: the reconstructor contract's ModelLoadError."""
    from igllm_ros.reconstruction import ModelLoadError

    return (ModelLoadError,)


@pytest.fixture(scope="module")
def samples():
    from igllm_ros.data.stream import generate_samples

    stream = generate_samples("train", 7, world.IMAGE_WIDTH, world.IMAGE_HEIGHT)
    out = list(itertools.islice(stream, 6))
    stream.close()
    return out


@pytest.fixture
def model():
    torch.manual_seed(0)
    return baseline.build(SMALL)


# ---- targets -----------------------------------------------------------------------------
def test_targets_round_trip_locations_camera_and_yaw(samples):
    scene = samples[0].scene
    enc = targets.encode_scene(scene, world.MAX_OBJECTS)
    n = len(scene.objects)
    assert enc["mask"].sum() == n and enc["mask"][:n].all()
    np.testing.assert_allclose(targets.decode_loc(enc["loc"][:n]), [o.loc for o in scene.objects], atol=1e-6)
    np.testing.assert_allclose(targets.decode_camera(enc["camera"]), scene.camera.loc, atol=1e-6)
    assert np.abs(enc["loc"][:n]).max() <= 1.1  # about [-1, 1] (ground truth is rounded to mm)
    for yaw in (-45.0, -30.2, 0.0, 12.5, 44.9, 60.0, 135.0):
        assert targets.sincos_to_yaw(*targets.yaw_to_sincos(yaw)) == pytest.approx(world.canonical_yaw_deg("cube", yaw), abs=1e-9)


def test_targets_reject_too_many_objects(samples):
    scene = samples[0].scene
    with pytest.raises(ValueError, match="queries"):
        targets.encode_scene(scene, len(scene.objects) - 1)


# ---- Hungarian loss ----------------------------------------------------------------------
def test_hungarian_loss_is_invariant_to_the_order_of_true_objects(model, samples):
    batch = model.collate(samples[:3])
    rng = np.random.default_rng(0)
    shuffled = [SimpleNamespace(image=s.image, scene=s.scene.with_objects(
        [s.scene.objects[i] for i in rng.permutation(len(s.scene.objects))])) for s in samples[:3]]
    assert any(a.scene != b.scene for a, b in zip(samples, shuffled))
    permuted = model.collate(shuffled)
    assert not torch.equal(batch["labels"], permuted["labels"])
    loss, logs = model.training_loss(batch)
    loss_p, logs_p = model.training_loss(permuted)
    assert loss_p.item() == pytest.approx(loss.item(), rel=1e-5)
    for key in logs:
        assert logs_p[key] == pytest.approx(logs[key], rel=1e-5, abs=1e-7)
    # ...while the loss does depend on the objects themselves.
    moved = dict(batch, loc=batch["loc"] + 0.1 * batch["mask"][..., None])
    assert abs(model.training_loss(moved)[0].item() - loss.item()) > 1e-3


def test_matching_recovers_a_permutation_of_perfect_predictions():
    config = baseline.BaselineConfig()
    q, n = config.max_objects, 4
    rng = np.random.default_rng(1)
    labels = torch.tensor([[[0, 1, 0, 1], [1, 2, 1, 0], [2, 7, 0, 0], [0, 3, 1, 1]]])
    loc = torch.tensor(rng.uniform(-1, 1, (1, n, 3)), dtype=torch.float32)
    queries = [7, 2, 5, 0]  # object i is predicted exactly by query queries[i]
    out = {"exists": torch.full((1, q), -5.0), "loc": torch.zeros(1, q, 3), "yaw": torch.zeros(1, q, 2),
           "camera": torch.zeros(1, 3)}
    for j, name in enumerate(targets.ATTRIBUTE_NAMES):
        out[name] = torch.zeros(1, q, len(world.ATTRIBUTES[name]))
    for i, qi in enumerate(queries):
        out["exists"][0, qi] = 5.0
        out["loc"][0, qi] = loc[0, i]
        for j, name in enumerate(targets.ATTRIBUTE_NAMES):
            out[name][0, qi, labels[0, i, j]] = 10.0
    pad = lambda t, v: torch.cat([t, torch.full((1, q - n) + t.shape[2:], v, dtype=t.dtype)], 1)
    batch = {"labels": pad(labels, -1), "loc": pad(loc, 0.0), "yaw": torch.zeros(1, q, 2),
             "mask": pad(torch.ones(1, n, dtype=torch.bool), False), "camera": torch.zeros(1, 3)}
    b, qi, oi = hungarian_match(out, batch, config)
    assert dict(zip(oi.tolist(), qi.tolist())) == dict(enumerate(queries))
    loss, logs = set_loss(out, batch, config)
    assert logs["loc"] == pytest.approx(0.0, abs=1e-6) and logs["attr_acc"] == 1.0
    assert logs["exists"] < 0.01 and logs["class"] < 0.01


def test_training_step_reduces_the_loss(model, samples):
    batch = model.collate(samples[:2])
    opt = torch.optim.AdamW(model.param_groups(1e-3, 1e-3, 0.0))
    first = model.training_loss(batch)[0]
    for _ in range(5):
        opt.zero_grad()
        loss = model.training_loss(batch)[0]
        loss.backward()
        opt.step()
    assert model.training_loss(batch)[0].item() < first.item()


# ---- reconstruct -------------------------------------------------------------------------
def test_reconstruct_output_parses_and_follows_the_contract(model, samples):
    with torch.no_grad():
        model.network.heads.exists.bias.fill_(10.0)  # every query exists: exercises truncation
    images = [s.image for s in samples]
    for max_objects in (10, 3, 0):
        recs = model.reconstruct(images, max_objects=max_objects)
        assert len(recs) == len(images)
        for rec in recs:
            parsed, errors = program.parse_program(rec.program, strict=True)
            assert not errors and rec.steps == 1
            # the scene holds exactly what its program says (confidences aside)
            assert parsed == rec.scene.with_objects(replace(o, confidence=1.0) for o in rec.scene.objects)
            assert len(rec.scene.objects) == max_objects
            for obj in rec.scene.objects:
                assert set(obj.attribute_confidence) == {"shape", "color", "material", "size", "exists"}
                assert all(0.0 < c <= 1.0 for c in obj.attribute_confidence.values())
                assert obj.confidence == pytest.approx(np.prod(list(obj.attribute_confidence.values())))
                assert obj.loc[2] == pytest.approx(world.centre_height(obj.shape, obj.size), abs=1e-3)
                if obj.shape == "cube":
                    assert -45.0 <= obj.rotation < 45.0
                else:
                    assert obj.rotation == 0.0
            exists = [o.attribute_confidence["exists"] for o in rec.scene.objects]
            assert exists == sorted(exists, reverse=True)
    with torch.no_grad():
        model.network.heads.exists.bias.fill_(-10.0)
    assert all(not r.scene.objects for r in model.reconstruct(images))
    assert model.reconstruct([]) == []


def test_reconstruct_batched_equals_one_by_one(model, samples):
    images = [s.image for s in samples[:4]]
    batched = model.predict(images)
    for i, image in enumerate(images):
        single = model.predict([image])
        for key in batched:
            np.testing.assert_allclose(single[key][0], batched[key][i], atol=1e-4)  # BLAS batching noise


def test_reconstruct_rejects_bad_images(model):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        model.reconstruct([np.zeros((72, 96), np.uint8)])
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        model.reconstruct([np.zeros((72, 96, 3), np.float32)])


# ---- collate, config, param groups -------------------------------------------------------
def test_collate_resizes_and_augment_changes_pixels_only(model, samples):
    plain = model.collate(samples[:3])
    assert plain["images"].shape == (3, 3, 72, 96) and plain["images"].dtype == torch.uint8
    torch.manual_seed(3)
    augmented = model.collate(samples[:3], augment=True)
    assert not torch.equal(plain["images"], augmented["images"])
    assert (augmented["images"].float() - plain["images"].float()).abs().mean() < 40
    for key in ("labels", "loc", "yaw", "mask", "camera"):
        assert torch.equal(plain[key], augmented[key])
    with pytest.raises(ValueError, match="at least one"):
        model.collate([])


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="unknown baseline model option"):
        baseline.build(dict(kind="detr_baseline", d_modle=64))
    with pytest.raises(ValueError, match="4:3"):
        baseline.build(dict(kind="detr_baseline", input_size=[160, 160]))
    with pytest.raises(ValueError, match="detr_baseline"):
        baseline.build(dict(kind="igllm"))


def test_param_groups_cover_every_parameter_once(model):
    groups = model.param_groups(1e-3, 5e-3, 0.05)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len(list(model.parameters()))
    heads = [g for g in groups if g["name"].startswith("heads")]
    assert heads and all(g["lr"] == 5e-3 for g in heads)
    assert all(g["weight_decay"] == 0.0 for g in groups if g["name"].endswith("no_decay"))
    torch.optim.AdamW(groups)  # a valid optimizer spec
    with pytest.raises(ValueError, match="tower_lr"):
        model.param_groups(1e-3, 5e-3, 0.05, tower_lr=1e-4)  # no pretrained tower to slow down


# ---- checkpoints -------------------------------------------------------------------------
def test_save_load_gives_identical_outputs(model, samples, tmp_path):
    images = [s.image for s in samples[:3]]
    model.save(tmp_path / "m", card={"steps": 0, "data": {"split": "train"}})
    assert json.loads((tmp_path / "m" / "config.json").read_text())["kind"] == "detr_baseline"
    assert "parameters" in (tmp_path / "m" / "card.md").read_text()
    loaded = baseline.load(tmp_path / "m")
    assert not loaded.training and loaded.input_size == model.input_size
    a, b = model.predict(images), loaded.predict(images)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert [r.program for r in model.reconstruct(images)] == [r.program for r in loaded.reconstruct(images)]
    half = baseline.load(tmp_path / "m", dtype=torch.bfloat16)  # what the node asks for on CUDA
    assert half.dtype == torch.bfloat16
    for rec in half.reconstruct(images):
        program.parse_program(rec.program, strict=True)


def test_load_errors_are_clear(model, tmp_path):
    errors = _load_errors()
    with pytest.raises(errors, match="does not exist"):
        baseline.load(tmp_path / "nowhere")
    good = tmp_path / "good"
    model.save(good)

    def broken(name, edit):
        d = tmp_path / name
        model.save(d)
        edit(d)
        return d

    no_weights = broken("no_weights", lambda d: (d / "model.safetensors").unlink())
    with pytest.raises(errors, match="has no model.safetensors"):
        baseline.load(no_weights)
    bad_json = broken("bad_json", lambda d: (d / "config.json").write_text("{not json"))
    with pytest.raises(errors, match="not readable JSON"):
        baseline.load(bad_json)
    wrong_kind = broken("wrong_kind", lambda d: (d / "config.json").write_text(json.dumps({"kind": "igllm"})))
    with pytest.raises(errors, match="kind 'igllm'"):
        baseline.load(wrong_kind)
    truncated = broken("truncated", lambda d: (d / "model.safetensors").write_bytes(
        (d / "model.safetensors").read_bytes()[:100]))
    with pytest.raises(errors, match="not a readable safetensors"):
        baseline.load(truncated)

    def bigger(d):
        config = json.loads((d / "config.json").read_text())
        config["d_model"] = 64
        (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(errors, match="does not match"):
        baseline.load(broken("shapes", bigger))


def test_weights_stored_as_float16_load_and_run(model, samples, tmp_path):
    """scripts/train_suite.py --export stores weights as float16; load casts them back."""
    from safetensors.torch import load_file, save_file

    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    save_file({k: v.half() for k, v in load_file(str(weights)).items()}, str(weights))
    loaded = baseline.load(tmp_path / "m")
    images = [s.image for s in samples[:2]]
    a, b = model.predict(images), loaded.predict(images)
    np.testing.assert_allclose(a["loc"], b["loc"], atol=0.05)
    assert loaded.dtype == torch.float32


def test_decoded_yaw_is_canonical_and_exact_in_the_program():
    for raw, expected in ((26.7, 26.7), (44.96, -45.0), (-45.0, -45.0), (-0.01, 0.0), (71.7, -18.3), (134.99, -45.0)):
        yaw = program.canonical_rotation("cube", raw)  # what the baseline's decoder writes
        assert yaw == expected and -45.0 <= yaw < 45.0
        assert float(program.format_number(yaw, program.ROTATION_DECIMALS)) == yaw


def test_anchor_projection_matches_the_camera_model(model):
    from igllm_ros.scene import Camera, intrinsics, project

    anchors = model.network.anchors
    xy = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-0.5, 0.8]])
    uv = anchors.image_points(xy).numpy()
    table = np.c_[xy.numpy() * targets.LOC_SCALE[:2], np.full(3, targets.Z_CENTRE)]
    expected = project(Camera().to_optical(table), intrinsics(320, 240)) / [320, 240]
    np.testing.assert_allclose(uv, expected, atol=1e-6)
    assert np.all((uv > 0) & (uv < 1))  # the table is in view


def test_plain_detr_queries_still_work(samples):
    torch.manual_seed(0)
    plain = baseline.build(dict(SMALL, anchors=False))
    assert plain.network.anchors is None
    loss, logs = plain.training_loss(plain.collate(samples[:2]))
    loss.backward()
    for rec in plain.reconstruct([s.image for s in samples[:2]]):
        program.parse_program(rec.program, strict=True)


def test_the_shipped_preset_builds():
    from pathlib import Path

    from igllm_ros.model.training.preset import load_preset

    preset = load_preset(Path(__file__).resolve().parents[1] / "config" / "train" / "baseline.yaml")
    model = baseline.build(preset.model)
    assert model.input_size == (160, 120) and 1e6 < model.num_parameters() < 5e6


def test_training_step_under_bf16_autocast(model, samples):
    """igllm-train uses bf16 autocast on CUDA; the attention bias must follow the query dtype."""
    batch = model.collate(samples[:2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logs = model.training_loss(batch)
    loss.backward()
    assert np.isfinite(loss.item()) and all(np.isfinite(v) for v in logs.values())
