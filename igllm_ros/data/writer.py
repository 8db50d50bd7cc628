"""Writing a dataset folder: parallel, deterministic, resumable, never left corrupt.

Work is cut into chunks of indices. A worker renders a chunk, writes its images, then
writes the chunk's records to `parts/<first>_<last>.jsonl` with an atomic rename: a part
file exists only when its whole chunk is on disk. Resuming skips the indices found in
part files (and in scenes.jsonl of an earlier, smaller run). At the end the parts are
merged into scenes.jsonl (atomic rename) and meta.json is marked complete. Sample i
depends only on (seed, split, i), so worker count and interruptions change no byte.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

from igllm_ros.data.dataset import (
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGES_DIR,
    META_FILE,
    SCENES_FILE,
    DatasetError,
    image_name,
)
from igllm_ros.data import png
from igllm_ros.data.records import make_sample
from igllm_ros.data.rgb_renderers import BLENDER_RENDERERS, check_available, release_all
from igllm_ros.data.splits import split_rule

PARTS_DIR = "parts"
CHUNK_SIZE = 50
CYCLES_CHUNK_SIZE = 5  # Cycles takes seconds per image: an interruption loses at most these


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_meta(folder: Path, meta: dict) -> None:
    _atomic_write_text(folder / META_FILE, json.dumps(meta, indent=1) + "\n")


# ------------------------------------------------------------------ worker side
_STATE: dict = {}


def _init_worker(split: str, seed: int, width: int, height: int, folder: str, lp_threads: int | None) -> None:
    if lp_threads:
        os.environ["LP_NUM_THREADS"] = str(lp_threads)  # read by Mesa when the context is made
    from igllm_ros.data.render import SceneRenderer

    _STATE.update(split=split, seed=seed, folder=Path(folder), renderer=SceneRenderer(width, height))


def _release_worker() -> None:
    renderer = _STATE.pop("renderer", None)
    if renderer is not None:
        renderer.release()
    release_all()  # a Cycles renderer, if the split made one


def _write_chunk(indices: list[int]) -> int:
    folder, renderer = _STATE["folder"], _STATE["renderer"]
    lines = []
    for index in indices:
        rgb, record = make_sample(_STATE["split"], _STATE["seed"], index, renderer)
        record["image"] = image_name(index)
        path = folder / record["image"]
        tmp = path.with_name(path.stem + ".tmp.png")
        tmp.write_bytes(png.encode_rgb(rgb))  # lossless, about half PIL's time (png.py)
        os.replace(tmp, path)
        lines.append(json.dumps(record, separators=(",", ":")))
    _atomic_write_text(folder / PARTS_DIR / f"{indices[0]:06d}_{indices[-1]:06d}.jsonl", "\n".join(lines) + "\n")
    return len(indices)


def _worker_chunk(indices: list[int]) -> int:
    return _write_chunk(indices)


# ------------------------------------------------------------------ parent side
def _done_indices(folder: Path, count: int) -> set[int]:
    done = set()
    sources = sorted((folder / PARTS_DIR).glob("*.jsonl"))
    if (folder / SCENES_FILE).is_file():
        sources.append(folder / SCENES_FILE)
    for path in sources:
        for line in path.read_text().splitlines():
            if line.strip():
                index = json.loads(line)["index"]
                if index < count and (folder / image_name(index)).is_file():
                    done.add(index)
    return done


def _merge(folder: Path, count: int) -> None:
    records: dict[int, str] = {}
    sources = [folder / SCENES_FILE] if (folder / SCENES_FILE).is_file() else []
    sources += sorted((folder / PARTS_DIR).glob("*.jsonl"))
    for path in sources:
        for line in path.read_text().splitlines():
            if line.strip():
                index = json.loads(line)["index"]
                if index < count:
                    records[index] = line
    missing = [i for i in range(count) if i not in records]
    if missing:
        raise DatasetError(f"{folder}: {len(missing)} records missing after generation (first: {missing[0]})")
    _atomic_write_text(folder / SCENES_FILE, "\n".join(records[i] for i in range(count)) + "\n")
    shutil.rmtree(folder / PARTS_DIR, ignore_errors=True)


def prepare_folder(out: Path, split: str, seed: int, width: int, height: int, count: int) -> tuple[Path, dict]:
    """The split's folder and its meta.json (new, or an earlier run's that matches)."""
    split_rule(split)
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    folder = Path(out) / split
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "split": split,
        "seed": seed,
        "width": width,
        "height": height,
        "count": count,
        "complete": False,
    }
    if (folder / META_FILE).is_file():
        old = json.loads((folder / META_FILE).read_text())
        for key in ("format", "format_version", "split", "seed", "width", "height"):
            if old.get(key) != meta[key]:
                raise DatasetError(
                    f"{folder} holds a dataset with {key}={old.get(key)!r}, this run asks for {meta[key]!r}; "
                    "use another --out or delete the folder"
                )
        if old.get("complete") and old["count"] > count:
            raise DatasetError(f"{folder} already holds {old['count']} samples; --count {count} would shrink it")
    (folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    (folder / PARTS_DIR).mkdir(exist_ok=True)
    _write_meta(folder, meta)
    return folder, meta


def generate(
    out,
    split: str,
    count: int,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
    workers: int = 1,
    chunk_size: int | None = None,
    lp_threads: int | None = None,
    progress: bool = True,
    stop_after_chunks: int | None = None,
) -> Path:
    """Write (or finish, or extend) `<out>/<split>`; returns the folder.

    stop_after_chunks simulates an interruption (tests): the folder is left unfinished.
    """
    from tqdm import tqdm

    check_available(split)  # a missing RGB renderer fails before any folder is made
    blender = split_rule(split).renderer in BLENDER_RENDERERS
    if blender:
        workers = 1  # Blender already uses every core; a second worker would only compete for them
    if chunk_size is None:
        chunk_size = CYCLES_CHUNK_SIZE if blender else CHUNK_SIZE
    if lp_threads is None and workers > 1 and "LP_NUM_THREADS" not in os.environ:
        lp_threads = 1  # the workers already fill the cores; llvmpipe's own threads would oversubscribe
    folder, meta = prepare_folder(Path(out), split, seed, width, height, count)
    done = _done_indices(folder, count)
    todo = [i for i in range(count) if i not in done]
    chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
    if stop_after_chunks is not None:
        chunks = chunks[:stop_after_chunks]
    init_args = (split, seed, width, height, str(folder), lp_threads)
    bar = tqdm(total=count, initial=len(done), unit="img", desc=f"{split}", disable=not progress, smoothing=0.1)
    try:
        if workers <= 1:
            _init_worker(*init_args)
            try:
                for chunk in chunks:
                    bar.update(_write_chunk(chunk))
            finally:
                _release_worker()
        else:
            ctx = multiprocessing.get_context("spawn")  # each worker makes its own EGL context
            with ctx.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
                for n in pool.imap_unordered(_worker_chunk, chunks):
                    bar.update(n)
    finally:
        bar.close()
    if stop_after_chunks is not None and len(todo) > sum(len(c) for c in chunks):
        return folder
    _merge(folder, count)
    _write_meta(folder, {**meta, "complete": True})
    return folder
