"""Endless on-the-fly samples for training, reproducible from a seed.

Sample i of a stream is exactly sample i of the dataset `igllm-data generate` writes
with the same split and seed (both use records.make_sample). Inside a torch DataLoader
worker, worker w of n yields indices w, w + n, w + 2n, ...: the workers never repeat
each other, and together they yield the same samples whatever n is.
"""
from __future__ import annotations

import itertools
import os
from typing import Iterator

from igllm_ros import world
from igllm_ros.data.dataset import Sample
from igllm_ros.data.records import make_sample, scene_from_record
from igllm_ros.data.rgb_renderers import check_available, release_all
from igllm_ros.data.splits import split_rule


def _worker_slice() -> tuple[int, int]:
    """(worker id, worker count) inside a torch DataLoader worker, else (0, 1)."""
    try:
        from torch.utils.data import get_worker_info
    except ImportError:  # torch is optional for data generation
        return 0, 1
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def generate_samples(
    split: str, seed: int, width: int = world.IMAGE_WIDTH, height: int = world.IMAGE_HEIGHT, start: int = 0
) -> Iterator[Sample]:
    """Samples start, start+1, ... of the split (this worker's share of them), forever.

    The renderer is created on first use inside the iterating process, so the generator
    can be built in the main process and iterated in DataLoader workers.
    """
    split_rule(split)  # bad arguments fail here, not at the first next()
    check_available(split)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if seed < 0 or start < 0:
        raise ValueError(f"seed and start must be non-negative, got seed={seed}, start={start}")
    return _samples(split, seed, width, height, start)


def _samples(split: str, seed: int, width: int, height: int, start: int) -> Iterator[Sample]:
    from igllm_ros.data.render import SceneRenderer

    worker, workers = _worker_slice()
    if workers > 1:
        os.environ.setdefault("LP_NUM_THREADS", "1")  # one llvmpipe thread per DataLoader worker
    renderer = SceneRenderer(width, height)
    try:
        for index in itertools.count(start + worker, workers):
            rgb, record = make_sample(split, seed, index, renderer)
            yield Sample(image=rgb, scene=scene_from_record(record), meta=record)
    finally:
        renderer.release()
        release_all()  # a Cycles renderer, if the split made one
