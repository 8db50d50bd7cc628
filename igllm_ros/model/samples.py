"""Where samples come from, and fixed lists of them (validation during training,
igllm-eval, the accuracy benchmark).

A data spec is a dataset directory written by igllm-data, the on-the-fly generator of a
split, or (training only) a dataset read through its frozen-tower feature cache
(`features:data/train_robust`, igllm_ros.model.feature_cache). One form for presets
(`data.train`, `data.val`) and igllm-eval's `--data`: a string (`data/val_id`,
`generator:val_cogent_b`, `features:data/train`) or a mapping with keys source, path,
split, seed, size, count. For training, a list of datasets (or of feature sources) is
their union, drawn as one dataset: `[features:data/train_robust, features:data/train_cycles]`.
The endless training stream is igllm_ros.model.training.data.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

DEFAULT_GENERATED_COUNT = 200  # validation scenes drawn from a generator when no count is given
_KEYS = {"source", "path", "split", "seed", "size", "count"}


@dataclass(frozen=True)
class DataSpec:
    source: str  # "dataset" | "generator" | "features" (a dataset through its feature cache)
    path: str | None = None  # dataset directory
    split: str | None = None  # generator split (igllm_ros.data.sampling.SPLITS)
    seed: int = 0  # generator seed
    size: tuple[int, int] | None = None  # generator (width, height); None: the model's input size
    count: int | None = None  # how many samples (validation / evaluation); None: all (datasets)
    extra_paths: tuple[str, ...] = ()  # more directories of the same source, drawn together with path

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path, *self.extra_paths) if self.path else ()

    @classmethod
    def parse(cls, value) -> "DataSpec":
        if isinstance(value, DataSpec):
            return value
        if isinstance(value, (list, tuple)):
            return cls._union([cls.parse(v) for v in value])
        if isinstance(value, str):
            if value.startswith("generator:"):
                split = value.split(":", 1)[1]
                if not split:
                    raise ValueError(f"{value!r}: name a split after 'generator:', e.g. generator:val_id")
                return cls(source="generator", split=split)
            if value.startswith("features:"):
                path = value.split(":", 1)[1]
                if not path:
                    raise ValueError(f"{value!r}: name a dataset directory after 'features:', e.g. features:data/train")
                return cls(source="features", path=path)
            if not value:
                raise ValueError("empty data spec")
            return cls(source="dataset", path=value)
        if not isinstance(value, dict):
            raise ValueError(f"data spec {value!r}: expected a path, 'generator:SPLIT' or a mapping")
        unknown = set(value) - _KEYS
        if unknown:
            raise ValueError(f"data spec: unknown keys {sorted(unknown)}; expected some of {sorted(_KEYS)}")
        source = value.get("source") or ("generator" if value.get("split") and not value.get("path") else "dataset")
        if source not in ("dataset", "generator", "features"):
            raise ValueError(f"data spec: source {source!r}; expected dataset, generator or features")
        if source in ("dataset", "features") and not value.get("path"):
            raise ValueError(f"data spec: a {source} source needs `path`")
        if source == "generator" and not value.get("split"):
            raise ValueError("data spec: a generator needs `split`")
        size = value.get("size")
        if size is not None:
            if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size)):
                raise ValueError(f"data spec: size {size!r}; expected [width, height]")
            size = (int(size[0]), int(size[1]))
        count = value.get("count")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError(f"data spec: count {count!r}; expected a positive integer")
        return cls(
            source=source,
            path=str(value["path"]) if value.get("path") else None,
            split=value.get("split"),
            seed=int(value.get("seed", 0)),
            size=size,
            count=count,
        )

    @classmethod
    def _union(cls, parts: list["DataSpec"]) -> "DataSpec":
        if not parts:
            raise ValueError("data spec: an empty list")
        sources = {p.source for p in parts}
        if len(sources) != 1 or sources <= {"generator"}:
            raise ValueError(f"data spec list: all datasets or all features: sources, got {sorted(sources)}")
        if any(p.extra_paths or p.count for p in parts):
            raise ValueError("data spec list: plain directories only (no nested lists, no count)")
        paths = [p.path for p in parts]
        if len(set(paths)) != len(paths):
            raise ValueError(f"data spec list: a directory twice in {paths}")
        return cls(source=parts[0].source, path=paths[0], extra_paths=tuple(paths[1:]))

    def describe(self) -> str:
        if self.source == "dataset":
            text = " + ".join(self.paths)
        elif self.source == "features":
            text = " + ".join(f"features:{p}" for p in self.paths)
        else:
            text = f"generator:{self.split} (seed {self.seed}" + (f", {self.size[0]}x{self.size[1]})" if self.size else ")")
        return text + (f", {self.count} samples" if self.count else "")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v is not None and v != ()}


def load_samples(spec: DataSpec, default_size: tuple[int, int], count: int | None = None) -> list:
    """A fixed list of samples (validation, evaluation): the first `count` of a dataset,
    or `count` scenes rendered from a generator (spec.count, else DEFAULT_GENERATED_COUNT)."""
    count = count or spec.count
    if spec.source == "features":
        raise ValueError(f"{spec.describe()}: cached features are for training only; validate on images (a dataset or generator)")
    if spec.source == "dataset":
        from igllm_ros.data.dataset import SceneDataset

        samples = []
        for path in spec.paths:
            dataset = SceneDataset(path)
            wanted = len(dataset) if not count else min(len(dataset), count - len(samples))
            samples += [dataset[i] for i in range(wanted)]
        return samples
    from igllm_ros.data.stream import generate_samples

    width, height = spec.size or default_size
    stream = generate_samples(spec.split, spec.seed, width, height)
    try:
        return list(itertools.islice(stream, count or DEFAULT_GENERATED_COUNT))
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()  # lets the generator release its renderer now
