"""Frozen-tower features computed once per image, so a CPU can train the rest.

With a frozen vision tower (`features()` has no trainable parameter) every epoch would
recompute the same tower outputs. The cache stores them per dataset image as float16:

    <dataset>/features/<key>/features.npy   (N, P, C) float16, a .npy memory map
    <dataset>/features/<key>/meta.json      tower description, key, count, done

`key` hashes the tower's saved config and its frozen weights, so a different tower (or
different weights) never reads another's cache. A second *view* of the same images, the
grayscale, recoloured or reshaped one of views.py, has its own key (the colour view's key
is the one caches had before views existed). Building is resumable: `done` counts the
images written, in index order. Training then reads FeatureSample items (features +
scene) whose collate skips the tower (IGLLM.collate, encode_features).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from igllm_ros.images import resize_rgb
from igllm_ros.model import views
from igllm_ros.scene import Scene

FEATURES_DIR = "features"
FEATURES_FILE = "features.npy"
META_FILE = "meta.json"
VIEWS = views.VIEWS


class FeatureCacheError(ValueError):
    """A cache cannot be built or read for this tower and dataset."""


@dataclass
class FeatureSample:
    features: np.ndarray  # (P, C) float16: the tower's features() of the image
    scene: Scene
    meta: dict
    image: None = None  # no pixels: collate uses the features
    colour_masked: bool = False  # a gray or recoloured view: no colour target (IGLLM.training_loss)
    shape_masked: bool = False  # a reshaped view: no shape target


def tower_key(tower: torch.nn.Module, input_size: tuple[int, int], view: str = "colour") -> str:
    """A short hash of what features() computes: view, architecture, input size, frozen weights."""
    described = {"tower": tower.saved_config(), "input": list(input_size)}
    if view != "colour":
        described["view"] = view
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode())
    for name, tensor in sorted(tower.state_dict().items()):
        if name == "position":  # adapt()'s, trained: not part of the cached features
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_folder(dataset_dir, model, view: str = "colour") -> Path:
    if view not in VIEWS:
        raise FeatureCacheError(f"feature view {view!r}; expected one of {VIEWS}")
    return Path(dataset_dir) / FEATURES_DIR / tower_key(model.vision, model.input_size, view)


def build(model, dataset_dir, batch_size: int = 32, progress: bool = True, view: str = "colour") -> Path:
    """Compute (or finish computing) the cache of `dataset_dir` for model's tower."""
    from tqdm import tqdm

    from igllm_ros.data.dataset import SceneDataset

    if not model.vision.cacheable:
        raise FeatureCacheError("the vision tower trains (not frozen): its features cannot be cached")
    dataset = SceneDataset(dataset_dir)
    folder = cache_folder(dataset_dir, model, view)
    folder.mkdir(parents=True, exist_ok=True)
    meta = _read_meta(folder) or {
        "tower": model.vision.saved_config(), "input_size": list(model.input_size), "view": view,
        "count": len(dataset), "done": 0,
    }
    if meta["count"] != len(dataset):
        raise FeatureCacheError(f"{folder}: cache of {meta['count']} images, dataset has {len(dataset)}")
    shape = (len(dataset), model.image_tokens, model.vision.out_dim)
    path = folder / FEATURES_FILE
    array = np.lib.format.open_memmap(path, mode="r+" if path.is_file() else "w+", dtype=np.float16, shape=shape)
    if array.shape != shape:
        raise FeatureCacheError(f"{path} has shape {array.shape}, expected {shape}")
    was_training = model.vision.training
    model.vision.eval()
    bar = tqdm(total=len(dataset), initial=meta["done"], desc=f"tower features ({view})", unit="img", disable=not progress)
    view_of = views.view_images(view, dataset)
    try:
        for start in range(meta["done"], len(dataset), batch_size):
            stop = min(start + batch_size, len(dataset))
            array[start:stop] = _features(model, [view_of(i) for i in range(start, stop)])
            array.flush()
            meta["done"] = stop
            _write_meta(folder, meta)
            bar.update(stop - start)
    finally:
        bar.close()
        getattr(view_of, "release", lambda: None)()
        model.vision.train(was_training)
    return folder


@torch.inference_mode()
def _features(model, images) -> np.ndarray:
    pixels = torch.from_numpy(np.stack([resize_rgb(im, model.input_size) for im in images])).permute(0, 3, 1, 2)
    # The tower's decoding computation where it has one (EfficientNet: BatchNorm folded,
    # ONNX Runtime on a CPU; equal to features() to float rounding, 3-4x faster here), so
    # training reads what decoding computes.
    tower = getattr(model.vision, "inference_features", model.vision.features)
    out = tower(pixels.to(model.device))
    return out.float().cpu().numpy().astype(np.float16)


class CachedFeatureDataset(torch.utils.data.Dataset):
    """A dataset folder's records with the cached features of one view of its images."""

    def __init__(self, dataset_dir, model, view: str = "colour"):
        from igllm_ros.data.dataset import SceneDataset

        self.scenes = SceneDataset(dataset_dir)
        self.view = view
        self.colour_masked, self.shape_masked = views.MASKED[view] == "color", views.MASKED[view] == "shape"
        self.folder = cache_folder(dataset_dir, model, view)
        meta = _read_meta(self.folder)
        if meta is None or meta["done"] != meta["count"] or meta["count"] != len(self.scenes):
            raise FeatureCacheError(f"{self.folder}: no complete feature cache; build it first (feature_cache.build)")
        self._array = None  # opened lazily: one memory map per DataLoader worker

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> FeatureSample:
        if self._array is None:
            self._array = np.load(self.folder / FEATURES_FILE, mmap_mode="r")
        record = self.scenes.record(index)
        from igllm_ros.data.records import scene_from_record

        return FeatureSample(
            features=np.array(self._array[index]), scene=views.view_scene(self.view, scene_from_record(record), index),
            meta=record, colour_masked=self.colour_masked, shape_masked=self.shape_masked,
        )


def _read_meta(folder: Path) -> dict | None:
    path = folder / META_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _write_meta(folder: Path, meta: dict) -> None:
    tmp = folder / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(folder / META_FILE)
