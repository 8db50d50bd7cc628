"""Where the camera simulator's pictures come from: the scene generator, a dataset folder
written by `igllm-data`, or a folder of image files. Each gives (RGB uint8, Scene or None).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


class GeneratorSource:
    """Freshly sampled and rendered scenes (igllm_ros.data), reproducible from the seed."""

    def __init__(self, seed: int, split: str, width: int, height: int):
        from igllm_ros.data.render import SceneRenderer
        from igllm_ros.data.sampling import sample_scene

        self._sample = sample_scene
        self._rng = np.random.default_rng(seed)
        self._split = split
        self._renderer = SceneRenderer(width=width, height=height)

    def __len__(self) -> int:
        return 0  # endless

    def next(self):
        # Check visibility with the same renderer (one GL context, the published size).
        renderer = self._renderer
        spec = self._sample(self._rng, split=self._split, width=renderer.width, height=renderer.height, renderer=renderer)
        return renderer.render(spec.scene, lighting=spec.lighting).rgb, spec.scene


class DatasetSource:
    """The samples of a dataset folder, in order."""

    def __init__(self, path: str):
        from igllm_ros.data.dataset import SceneDataset

        self._dataset = SceneDataset(path)
        if len(self._dataset) == 0:
            raise ValueError(f"dataset {path!r} has no samples")
        self._index = 0

    def __len__(self) -> int:
        return len(self._dataset)

    def next(self):
        sample = self._dataset[self._index % len(self._dataset)]
        self._index += 1
        return np.asarray(sample.image, dtype=np.uint8)[:, :, :3], sample.scene


class ImageFolderSource:
    """Image files in name order; no ground truth."""

    def __init__(self, path: str):
        folder = Path(path)
        if not folder.is_dir():
            raise ValueError(f"image folder {path!r} does not exist")
        self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path!r}")
        self._index = 0

    def __len__(self) -> int:
        return len(self._files)

    def next(self):
        file = self._files[self._index % len(self._files)]
        self._index += 1
        with PILImage.open(file) as image:
            return np.asarray(image.convert("RGB")), None


def make_source(kind: str, *, path: str = "", seed: int = 0, split: str = "train", width: int = 320, height: int = 240):
    if kind == "generator":
        return GeneratorSource(seed, split, width, height)
    if kind == "dataset":
        return DatasetSource(path)
    if kind == "images":
        return ImageFolderSource(path)
    raise ValueError(f"unknown source {kind!r}; expected generator, dataset or images")
