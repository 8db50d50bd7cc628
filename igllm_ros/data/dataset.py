"""Reading a dataset folder written by `igllm-data generate` (format in docs/data.md).

    <out>/<split>/meta.json       split, seed, width, height, count, format version, complete
    <out>/<split>/images/000000.png ...
    <out>/<split>/scenes.jsonl    one record per image, in index order

The loader indexes line offsets once and parses a record only when asked, so it is
light in memory and safe to use from DataLoader worker processes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from igllm_ros.data.records import scene_from_record
from igllm_ros.scene import Scene

FORMAT_NAME = "igllm-scenes"
FORMAT_VERSION = 1
META_FILE = "meta.json"
SCENES_FILE = "scenes.jsonl"
IMAGES_DIR = "images"


class DatasetError(ValueError):
    """A missing, incomplete or corrupt dataset folder."""


@dataclass
class Sample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    scene: Scene  # ground truth, table frame, camera set
    meta: dict  # the JSON record (ids, split, seed, intrinsics/extrinsics, per-object ground truth)


def image_name(index: int) -> str:
    return f"{IMAGES_DIR}/{index:06d}.png"


def read_meta(folder: Path) -> dict:
    path = folder / META_FILE
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {str(folder)!r} does not exist")
    if not path.is_file():
        raise DatasetError(f"{str(folder)!r} is not a dataset folder (no {META_FILE}); write one with `igllm-data generate`")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: corrupt JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DatasetError(f"{path}: not an {FORMAT_NAME} meta file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{path}: format version {meta.get('format_version')!r}, this loader reads {FORMAT_VERSION}")
    return meta


class SceneDataset:
    """A dataset folder (`<out>/<split>`): `ds[i]` is a Sample, in index order."""

    def __init__(self, path):
        self.path = Path(path)
        self.meta = read_meta(self.path)
        if not self.meta.get("complete"):
            raise DatasetError(
                f"dataset {str(self.path)!r} is incomplete (generation was interrupted?); run the same "
                "`igllm-data generate` command again to finish it"
            )
        self._offsets = self._index_lines()
        if len(self._offsets) != self.meta["count"]:
            raise DatasetError(
                f"dataset {str(self.path)!r} is corrupt: meta.json says {self.meta['count']} samples, "
                f"{SCENES_FILE} has {len(self._offsets)}"
            )
        self._file = None

    @property
    def split(self) -> str:
        return self.meta["split"]

    def __len__(self) -> int:
        return len(self._offsets)

    def record(self, i: int) -> dict:
        i = self._check_index(i)
        if self._file is None:
            self._file = open(self.path / SCENES_FILE, "rb")
        self._file.seek(self._offsets[i])
        line = self._file.readline()
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{self.path / SCENES_FILE}: line {i + 1} is corrupt ({err})") from err
        if record.get("index") != i:
            raise DatasetError(f"{self.path / SCENES_FILE}: line {i + 1} holds index {record.get('index')!r}, expected {i}")
        return record

    def __getitem__(self, i: int) -> Sample:
        record = self.record(i)
        file = self.path / record["image"]
        try:
            with Image.open(file) as img:
                image = np.array(img.convert("RGB"))  # a writable copy (torch.from_numpy warns on read-only)
        except (FileNotFoundError, OSError) as err:
            raise DatasetError(f"dataset {str(self.path)!r}: cannot read image {record['image']!r} ({err})") from err
        if image.shape[:2] != (record["height"], record["width"]):
            raise DatasetError(f"{file}: image is {image.shape[1]}x{image.shape[0]}, record says {record['width']}x{record['height']}")
        return Sample(image=image, scene=scene_from_record(record), meta=record)

    def records(self):
        """All records in order (parsed one at a time)."""
        for i in range(len(self)):
            yield self.record(i)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self):  # picklable into DataLoader workers: each opens its own handle
        state = dict(self.__dict__)
        state["_file"] = None
        return state

    def _check_index(self, i: int) -> int:
        n = len(self._offsets)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"dataset index must be an int, got {type(i).__name__}")
        if i < -n or i >= n:
            raise IndexError(f"index {i} out of range for a dataset of {n} samples")
        return int(i) % n

    def _index_lines(self) -> list[int]:
        path = self.path / SCENES_FILE
        if not path.is_file():
            raise DatasetError(f"dataset {str(self.path)!r} is corrupt: {SCENES_FILE} is missing")
        offsets, position = [], 0
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    offsets.append(position)
                position += len(line)
        return offsets
