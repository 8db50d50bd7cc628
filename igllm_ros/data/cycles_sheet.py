"""Cycles next to moderngl on the same scenes: a contact sheet and the figures behind it.

Each row: the Cycles render, the moderngl render and where their instance masks differ
(red), with the pixel agreement. Prints seconds per image (wall and the worker's CPU time,
the steadier figure on a shared machine) and, with --reference-samples, how far the
denoised low-sample image is from a high-sample one.

    python -m igllm_ros.data.cycles_sheet --out docs/figures/cycles_val.png [--scenes 4] [--samples 16]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from igllm_ros.data.cycles import DEFAULT_SAMPLES, CyclesRenderer
from igllm_ros.data.render import SceneRenderer
from igllm_ros.data.sampling import sample_scene

MARGIN = 4
CAPTION_PX = 14


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, all threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disagreement(mask_a: np.ndarray, mask_b: np.ndarray) -> np.ndarray:
    """Grey where both say floor, a muted colour per object where they agree, red where not."""
    palette = np.array([[90, 140, 200], [120, 190, 120], [200, 170, 90], [170, 120, 190], [110, 190, 190]], np.uint8)
    out = np.full(mask_a.shape + (3,), 200, np.uint8)
    objects = mask_a >= 0
    out[objects] = palette[mask_a[objects] % len(palette)]
    out[mask_a != mask_b] = (230, 20, 20)
    return out


def row_tile(panels, caption: str) -> Image.Image:
    h, w = panels[0].shape[:2]
    tile = Image.new("RGB", (len(panels) * (w + MARGIN) - MARGIN, h + CAPTION_PX), (255, 255, 255))
    for i, panel in enumerate(panels):
        tile.paste(Image.fromarray(panel), (i * (w + MARGIN), CAPTION_PX))
    ImageDraw.Draw(tile).text((2, 1), caption, fill=(0, 0, 0), font=ImageFont.load_default())
    return tile


def stack(tiles) -> Image.Image:
    sheet = Image.new("RGB", (max(t.width for t in tiles) + 2 * MARGIN, sum(t.height + MARGIN for t in tiles) + MARGIN), "white")
    y = MARGIN
    for t in tiles:
        sheet.paste(t, (MARGIN, y))
        y += t.height + MARGIN
    return sheet


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/figures/cycles_val.png")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--split", default="val_id", help="where the scenes are sampled from (their layout only)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--reference-samples", type=int, default=0, help="also render this many samples and compare")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))

    reference = SceneRenderer(width, height)
    rng = np.random.default_rng(args.seed)
    scenes = [sample_scene(rng, args.split, width, height, reference).scene for _ in range(args.scenes)]
    start = time.perf_counter()
    cycles = CyclesRenderer(width, height, samples=args.samples, private_worker=True)
    print(f"Blender {cycles.blender_version}: worker up in {time.perf_counter() - start:.1f} s")
    pid = cycles._worker.process.pid
    tiles, walls, cpus = [], [], []
    for i, scene in enumerate(scenes):
        cpu0, t0 = process_cpu_seconds(pid), time.perf_counter()
        rgb = cycles.render_rgb(scene)
        walls.append(time.perf_counter() - t0)
        cpus.append(process_cpu_seconds(pid) - cpu0)
        mask = cycles.render_mask(scene)
        expected, _ = reference.render_labels(scene)
        agree = float((mask == expected).mean())
        line = f"scene {i}: {len(scene.objects)} objects, RGB {walls[-1]:.1f} s wall / {cpus[-1]:.1f} s CPU, masks agree {agree:.4f}"
        if args.reference_samples:
            with CyclesRenderer(width, height, samples=args.reference_samples) as high:
                diff = np.abs(rgb.astype(float) - high.render_rgb(scene)).mean()
            line += f", mean |{args.samples} - {args.reference_samples} samples| {diff:.2f}/255"
        print(line, flush=True)
        caption = f"scene {i}: Cycles {args.samples} samples + OIDN | moderngl | masks differ (red): {1 - agree:.2%} of pixels"
        tiles.append(row_tile([rgb, reference.render_rgb(scene), disagreement(mask, expected)], caption))
    cycles.release()
    reference.release()
    print(f"Cycles RGB at {width}x{height}, {args.samples} samples: {np.mean(walls):.1f} s/image wall, "
          f"{np.mean(cpus):.1f} s/image CPU ({os.cpu_count()} cores; shared machine: wall is noisy)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    stack(tiles).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
