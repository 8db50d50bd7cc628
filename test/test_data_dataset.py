"""Dataset folders: ground truth records, loader round trip, determinism, resume, bad folders,
the on-the-fly stream and the CLI."""
import json
import shutil

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from igllm_ros import world
from igllm_ros.data import cli
from igllm_ros.data.dataset import DatasetError, Sample, SceneDataset
from igllm_ros.data.records import make_sample, spec_from_record
from igllm_ros.data.render import SceneRenderer
from igllm_ros.data.stream import generate_samples
from igllm_ros.data.writer import generate
from igllm_ros.program import parse_program
from igllm_ros.scene import intrinsics, object_pose_in_optical

W, H = 160, 120
SEED = 3


def _bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def renderer():
    r = SceneRenderer(W, H)
    yield r
    r.release()


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    return generate(out, "val_id", 6, seed=SEED, width=W, height=H, workers=1, chunk_size=4, progress=False)


def test_loader_round_trip(dataset_dir, renderer):
    ds = SceneDataset(dataset_dir)
    assert len(ds) == 6 and ds.split == "val_id"
    assert ds.meta["count"] == 6 and ds.meta["width"] == W and ds.meta["complete"] is True
    for i in range(len(ds)):
        sample = ds[i]
        assert isinstance(sample, Sample)
        rgb, record = make_sample("val_id", SEED, i, renderer)
        assert sample.image.dtype == np.uint8 and sample.image.shape == (H, W, 3) and sample.image.flags.writeable
        assert np.array_equal(sample.image, rgb)  # PNG is lossless
        assert sample.scene == spec_from_record(record).scene
        assert sample.scene == parse_program(record["program"], strict=True)[0]
        assert sample.meta["id"] == f"val_id_{i:06d}" and sample.meta["image"] == f"images/{i:06d}.png"
    assert ds[-1].meta["index"] == 5
    with pytest.raises(IndexError):
        ds[6]


def test_record_ground_truth_is_consistent(dataset_dir, renderer):
    ds = SceneDataset(dataset_dir)
    k = intrinsics(W, H)
    for record in ds.records():
        assert np.allclose(record["camera"]["K"], k)
        rot = np.array(record["camera"]["table_from_optical"]["R"])
        t = np.array(record["camera"]["table_from_optical"]["t"])
        assert np.allclose(rot.T @ rot, np.eye(3)) and np.allclose(t, record["camera"]["loc"])
        # re-rendering from the record gives the same image
        spec = spec_from_record(record)
        assert np.array_equal(renderer.render_rgb(spec.scene, spec.lighting), ds[record["index"]].image)
        mask, _ = renderer.render_labels(spec.scene)
        for obj, o in zip(spec.scene.objects, record["objects"]):
            position, quat = object_pose_in_optical(obj, spec.scene.camera)  # the shared definition
            assert np.allclose(o["loc_optical"], position, atol=1e-12)
            assert np.allclose(Rotation.from_quat(o["quat_optical_xyzw"]).as_matrix(), Rotation.from_quat(quat).as_matrix(), atol=1e-12)
            table, opt = np.array(o["loc_table"]), np.array(o["loc_optical"])
            assert np.allclose(rot @ opt + t, table, atol=1e-9)
            # the optical pose is the table pose seen from the camera
            r_opt = Rotation.from_quat(o["quat_optical_xyzw"]).as_matrix()
            r_tab = Rotation.from_quat(o["quat_table_xyzw"]).as_matrix()
            assert np.allclose(rot @ r_opt, r_tab, atol=1e-9)
            assert o["dimensions"] == list(world.dimensions(o["shape"], o["size"]))
            u, v = o["centre_px"]
            assert np.allclose([u, v], (k @ opt)[:2] / opt[2])
            ys, xs = np.nonzero(mask == o["index"])
            assert o["visible_pixels"] == xs.size >= 50
            assert o["bbox_xyxy"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_same_seed_same_bytes_whatever_the_workers(dataset_dir, tmp_path):
    again = generate(tmp_path / "a", "val_id", 6, seed=SEED, width=W, height=H, workers=1, chunk_size=2, progress=False)
    assert _bytes(again) == _bytes(dataset_dir)
    other = generate(tmp_path / "b", "val_id", 6, seed=SEED + 1, width=W, height=H, workers=1, progress=False)
    assert _bytes(other)["scenes.jsonl"] != _bytes(dataset_dir)["scenes.jsonl"]


@pytest.mark.slow
def test_parallel_workers_write_the_same_bytes(dataset_dir, tmp_path):
    parallel = generate(tmp_path / "p", "val_id", 6, seed=SEED, width=W, height=H, workers=2, chunk_size=2, progress=False)
    assert _bytes(parallel) == _bytes(dataset_dir)


def test_interrupted_then_resumed_equals_one_shot(dataset_dir, tmp_path):
    out = tmp_path / "r"
    folder = generate(out, "val_id", 6, seed=SEED, width=W, height=H, chunk_size=2, progress=False, stop_after_chunks=1)
    with pytest.raises(DatasetError, match="incomplete"):
        SceneDataset(folder)
    # a half-written image of the chunk in flight must not count as done
    (folder / "images" / "000004.png").write_bytes(b"\x89PNG garbage")
    generate(out, "val_id", 6, seed=SEED, width=W, height=H, chunk_size=2, progress=False)
    assert _bytes(folder) == _bytes(dataset_dir)


def test_extending_a_dataset_equals_one_shot(dataset_dir, tmp_path):
    out = tmp_path / "e"
    generate(out, "val_id", 4, seed=SEED, width=W, height=H, progress=False)
    folder = generate(out, "val_id", 6, seed=SEED, width=W, height=H, progress=False)
    assert _bytes(folder) == _bytes(dataset_dir)
    with pytest.raises(DatasetError, match="shrink"):
        generate(out, "val_id", 3, seed=SEED, width=W, height=H, progress=False)


def test_resume_refuses_other_settings(dataset_dir, tmp_path):
    out = tmp_path / "s"
    shutil.copytree(dataset_dir, out / "val_id")
    with pytest.raises(DatasetError, match="seed"):
        generate(out, "val_id", 6, seed=SEED + 1, width=W, height=H, progress=False)
    with pytest.raises(DatasetError, match="width"):
        generate(out, "val_id", 6, seed=SEED, width=W * 2, height=H * 2, progress=False)


def test_missing_and_corrupt_datasets_fail_clearly(dataset_dir, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        SceneDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no meta.json"):
        SceneDataset(tmp_path / "empty")

    broken = tmp_path / "broken"
    shutil.copytree(dataset_dir, broken)
    lines = (broken / "scenes.jsonl").read_text().splitlines()
    (broken / "scenes.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DatasetError, match="says 6 samples"):
        SceneDataset(broken)
    (broken / "scenes.jsonl").write_text("\n".join(lines[:2] + ["{not json"] + lines[3:]) + "\n")
    with pytest.raises(DatasetError, match="line 3 is corrupt"):
        SceneDataset(broken)[2]
    (broken / "scenes.jsonl").write_text("\n".join(lines) + "\n")
    (broken / "images" / "000001.png").unlink()
    with pytest.raises(DatasetError, match="cannot read image"):
        SceneDataset(broken)[1]
    (broken / "meta.json").write_text("{")
    with pytest.raises(DatasetError, match="corrupt JSON"):
        SceneDataset(broken)
    (broken / "meta.json").write_text(json.dumps({"format": "igllm-scenes", "format_version": 99}))
    with pytest.raises(DatasetError, match="format version"):
        SceneDataset(broken)


def test_stream_yields_the_dataset_samples(dataset_dir):
    ds = SceneDataset(dataset_dir)
    stream = generate_samples("val_id", SEED, W, H)
    for i in range(3):
        sample = next(stream)
        assert np.array_equal(sample.image, ds[i].image)
        assert sample.scene == ds[i].scene and sample.meta["index"] == i
    stream.close()
    with pytest.raises(ValueError, match="unknown split"):
        generate_samples("nope", 0, W, H)


try:  # module level, so spawned DataLoader workers can unpickle it
    from torch.utils.data import IterableDataset
except ImportError:
    IterableDataset = object


class _IndexStream(IterableDataset):
    """The indices of a training stream, as a DataLoader sees them."""

    def __iter__(self):
        return (s.meta["index"] for s in generate_samples("train", 0, 64, 48))


@pytest.mark.slow
def test_stream_splits_work_across_dataloader_workers():
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(_IndexStream(), batch_size=None, num_workers=2, multiprocessing_context="spawn")
    indices = []
    for index in loader:
        indices.append(int(index))
        if len(indices) == 8:
            break
    assert sorted(indices) == list(range(8))  # interleaved, no repeats, none skipped


def test_cli_generate_show_summary(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["generate", "--split", "val_cogent_b", "--count", "4", "--out", str(out), "--width", str(W),
                     "--height", str(H), "--workers", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "images 4" in printed and "objects per scene" in printed and "cube colors" in printed
    sheet = tmp_path / "sheet.png"
    assert cli.main(["show", "--data", str(out / "val_cogent_b"), "--out", str(sheet), "--count", "4"]) == 0
    assert sheet.stat().st_size > 1000
    assert cli.main(["summary", "--data", str(out / "val_cogent_b")]) == 0
    assert "split val_cogent_b" in capsys.readouterr().out
    assert cli.main(["summary", "--data", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 7, 3), (240, 320, 3)])
def test_png_encoder_round_trips_through_pil(shape):
    import io

    from PIL import Image

    from igllm_ros.data import png

    rng = np.random.default_rng(sum(shape))
    rgb = rng.integers(0, 256, shape, dtype=np.uint8)
    rgb[: shape[0] // 2] = rgb[: shape[0] // 2] // 16 * 16  # smooth and noisy rows alike
    with Image.open(io.BytesIO(png.encode_rgb(rgb))) as decoded:
        assert decoded.format == "PNG" and decoded.mode == "RGB" and decoded.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(decoded), rgb)
    for bad in (rgb.astype(np.uint16), rgb[..., :2], np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError, match="uint8"):
            png.encode_rgb(bad)
