"""Training batches: the endless stream the training loop reads (fixed sample lists for
validation and evaluation are igllm_ros.model.samples).

Training data is an endless stream of batches that can start anywhere, so that a resumed
run sees exactly what an uninterrupted one would:
- a dataset directory: seeded permutations, one per epoch, read from a sample position;
- the generator of a split: fresh scenes rendered in DataLoader workers; sample i of the
  stream is sample i of `igllm-data generate` with the same split and seed. A resumed run
  starts at the first index no worker had reached: exactly where an uninterrupted run
  goes on with workers 0; with n workers it skips at most (n - 1) batches of scenes and
  never repeats one (each worker renders every n-th index).
`model.collate` runs inside the workers (collate_fn).
"""
from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

from igllm_ros.model.samples import DataSpec
from igllm_ros.model.views import RENDERED, extra_views


class EndlessShuffledSampler(Sampler):
    """Dataset indices, epoch after epoch, each epoch a permutation seeded by (seed, epoch).

    Starting at sample position `start` gives the same indices an uninterrupted run
    yields from that position on. `views` are the fractions of draws that take another
    view of the image (k = 1, 2, ...: index + k * size, views of equal length stacked
    behind the first: the feature views of model/views.py), chosen per draw, also
    seeded; the draw of one extra view is what it was before a second one existed.
    """

    def __init__(self, size: int, seed: int, start: int = 0, views: tuple[float, ...] = ()):
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        if any(f < 0 for f in views) or sum(views) >= 1:
            raise ValueError(f"view fractions {views} must be >= 0 and sum to under 1")
        self.size, self.seed, self.start, self.views = size, seed, start, tuple(views)

    def permutation(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng(np.random.SeedSequence([self.seed, epoch])).permutation(self.size)
        if any(f > 0 for f in self.views):
            draw = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, 1])).random(self.size)
            view = np.searchsorted(np.cumsum(self.views), draw, side="right")  # 0 .. len(views) - 1 inside
            view = np.where(view < len(self.views), view + 1, 0)  # past every fraction: the first view
            order = order + self.size * view
        return order

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.size)
        while True:
            for index in self.permutation(epoch)[offset:]:
                yield int(index)
            epoch, offset = epoch + 1, 0


class GeneratedSamples(IterableDataset):
    """Endless freshly rendered samples of a split (igllm_ros.data.stream.generate_samples).

    generate_samples derives per-worker seeds itself and creates its renderer inside the
    process that iterates, so every DataLoader worker renders its own scenes.
    """

    def __init__(self, split: str, seed: int, width: int, height: int, start: int = 0):
        super().__init__()
        self.split, self.seed, self.width, self.height, self.start = split, seed, width, height, start

    def __iter__(self):
        from igllm_ros.data.stream import generate_samples

        return iter(generate_samples(self.split, self.seed, self.width, self.height, start=self.start))


def generator_start(batches_done: int, batch_size: int, workers: int) -> int:
    """The first stream index that no worker had reached after `batches_done` batches.

    Worker w of n renders indices w, w + n, ... in batches, and the loader takes batches
    round-robin, so after b batches each worker has drawn at most ceil(b / n) of them.
    """
    n = max(1, workers)
    return batch_size * n * -(-batches_done // n)


def stream_seed(seed: int, step: int) -> int:
    """The generator seed for a run (re)started at `step`."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def train_batches(
    spec: DataSpec,
    collate,
    *,
    batch_size: int,
    workers: int,
    seed: int,
    start_sample: int,
    start_step: int,
    default_size: tuple[int, int],
    pin_memory: bool = False,
    model=None,
) -> Iterator[dict]:
    """An endless iterator of collated micro-batches, starting where a run left off: the
    one dispatch from a data source to its stream."""
    if spec.source != "features" and model is not None and any(v in extra_views(model.config) for v in RENDERED):
        raise ValueError(
            f"model.recolour_fraction and reshape_fraction need a features: source (their views re-render "
            f"each scene once into the cache, views.py); data.train is a {spec.source} source"
        )
    options = _loader_options(collate, batch_size, workers, seed, start_step, pin_memory)
    if spec.source == "dataset":
        return _dataset_batches(spec, seed, start_sample, options)
    if spec.source == "generator":
        start = generator_start(start_sample // batch_size, batch_size, workers)
        return _generator_batches(spec, start, default_size, options)
    if spec.source == "features":
        return _feature_batches(spec, model, seed, start_sample, options)
    raise ValueError(f"data source {spec.source!r} cannot stream training batches")


def _loader_options(collate, batch_size: int, workers: int, seed: int, start_step: int, pin_memory: bool) -> dict:
    # A dedicated generator: the loader's own draws (worker base seeds) then depend on
    # (seed, step) only and never consume the global RNG that training restores on resume.
    options = dict(
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(stream_seed(seed, start_step)),
        drop_last=True,
    )
    if workers > 0:
        options.update(persistent_workers=False, prefetch_factor=4, worker_init_fn=_ignore_interrupts)
    return options


def _dataset_batches(spec: DataSpec, seed: int, start_sample: int, options: dict) -> Iterator[dict]:
    from torch.utils.data import ConcatDataset

    from igllm_ros.data.dataset import SceneDataset

    dataset = ConcatDataset([SceneDataset(path) for path in spec.paths])  # one or the union of several
    sampler = EndlessShuffledSampler(len(dataset), seed, start=start_sample)
    return iter(DataLoader(dataset, sampler=sampler, **options))


def _feature_batches(spec: DataSpec, model, seed: int, start_sample: int, options: dict) -> Iterator[dict]:
    """A dataset's images through the frozen tower once (cached, resumable), then only
    the cached features: the same permutations as the dataset source. With
    model.gray_fraction / recolour_fraction / reshape_fraction the other views of
    model/views.py are cached too and drawn that often."""
    from torch.utils.data import ConcatDataset

    from igllm_ros.model import feature_cache

    if model is None:
        raise ValueError("a features: source needs the model (its frozen tower computes the cache)")
    extra = extra_views(model.config)
    views = ("colour", *extra)
    for view in views:
        for path in spec.paths:
            feature_cache.build(model, path, view=view)
    # every directory's colour view, then each other view in the same order: image i's
    # k-th view is i + k * images
    parts = [feature_cache.CachedFeatureDataset(path, model, view) for view in views for path in spec.paths]
    images = sum(len(part) for part in parts[: len(spec.paths)])
    sampler = EndlessShuffledSampler(images, seed, start=start_sample, views=tuple(extra.values()))
    dataset = ConcatDataset(parts)
    return iter(DataLoader(dataset, sampler=sampler, **options))


def _generator_batches(spec: DataSpec, start: int, default_size: tuple[int, int], options: dict) -> Iterator[dict]:
    width, height = spec.size or default_size
    return iter(DataLoader(GeneratedSamples(spec.split, spec.seed, width, height, start=start), **options))


def _ignore_interrupts(worker_id: int) -> None:
    """Ctrl-C in a terminal reaches every process of the group: the workers leave it to
    the training process, which finishes its step, checkpoints and shuts them down."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def to_device(batch, device: torch.device):
    """Tensors (also inside dicts, lists and tuples) onto the device; other values as they are."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def collate_fn(model, augment: bool):
    """model.collate with the augmentation flag bound (picklable for worker processes)."""
    return functools.partial(model.collate, augment=augment)
