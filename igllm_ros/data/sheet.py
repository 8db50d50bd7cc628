"""Contact sheets: sample images with their ground truth drawn on (`igllm-data show`)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LINE_PX = 11
MARGIN = 4


def _label(o: dict) -> str:
    yaw = f" {o['rotation_deg']:+.1f}°" if o["shape"] == "cube" else ""
    return f"{o['index']} {o['size']} {o['color']} {o['material']} {o['shape']}{yaw}"


def annotate(image: np.ndarray, record: dict, legend: bool = True) -> Image.Image:
    """The image with each object's index at its projected centre (and a legend below)."""
    font = ImageFont.load_default()
    h, w = image.shape[:2]
    lines = [record["id"]] + [_label(o) for o in record["objects"]] if legend else []
    tile = Image.new("RGB", (w, h + (len(lines) * LINE_PX + MARGIN if legend else 0)), (255, 255, 255))
    tile.paste(Image.fromarray(image), (0, 0))
    draw = ImageDraw.Draw(tile)
    for o in record["objects"]:
        u, v = o["centre_px"]
        draw.ellipse((u - 2, v - 2, u + 2, v + 2), fill=(255, 255, 255), outline=(0, 0, 0))
        draw.text((u + 3, v - 11), str(o["index"]), fill=(255, 255, 255), font=font, stroke_width=1, stroke_fill=(0, 0, 0))
        if o.get("bbox_xyxy"):
            x0, y0, x1, y1 = o["bbox_xyxy"]
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(255, 255, 255))
    for i, text in enumerate(lines):
        draw.text((MARGIN, h + MARGIN // 2 + i * LINE_PX), text, fill=(0, 0, 0), font=font)
    return tile


def to_palette(sheet: Image.Image) -> Image.Image:
    """256 colours, dithered so the ground's gradient does not band: small PNGs for the docs."""
    palette = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    return sheet.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)


def contact_sheet(samples, cols: int = 4, legend: bool = True) -> Image.Image:
    """samples: (image, record) pairs. Tiles in rows of `cols`, each row as tall as its tallest tile."""
    tiles = [annotate(img, rec, legend) for img, rec in samples]
    if not tiles:
        raise ValueError("no samples to draw")
    rows = [tiles[i : i + cols] for i in range(0, len(tiles), cols)]
    tw = max(t.width for t in tiles)
    heights = [max(t.height for t in row) for row in rows]
    sheet = Image.new("RGB", (cols * (tw + MARGIN) + MARGIN, sum(heights) + MARGIN * (len(rows) + 1)), (255, 255, 255))
    y = MARGIN
    for row, rh in zip(rows, heights):
        for j, t in enumerate(row):
            sheet.paste(t, (MARGIN + j * (tw + MARGIN), y))
        y += rh + MARGIN
    return sheet
