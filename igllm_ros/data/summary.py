"""Counts and histograms over a dataset's records (what `igllm-data summary` prints)."""
from __future__ import annotations

from collections import Counter

import numpy as np

from igllm_ros import world


def summarize(records) -> dict:
    images, objects_per_scene, visible = 0, Counter(), []
    attributes = {name: Counter() for name in world.ATTRIBUTES}
    pairs = Counter()
    cube_yaws, cameras, looks = [], [], Counter()
    for record in records:
        images += 1
        cameras.append(world.camera_spherical(record["camera"]["loc"]))
        if "look" in record:
            look = record["look"]
            if look is None:
                looks["nominal"] += 1
            elif "rig" in look:  # moderngl's randomization.Look
                looks[f"{look['rig']}/{look['color_convention']}"] += 1
            else:  # a Blender look (blender_looks.py): CLEVR's stage with jittered lamps, or randomized
                nominal = look["key_gain"] == look["fill_gain"] == look["back_gain"] == 1.0
                looks["blender/clevr_stage" if nominal else "blender/randomized"] += 1
        objects_per_scene[len(record["objects"])] += 1
        for o in record["objects"]:
            for name in attributes:
                attributes[name][o[name]] += 1
            pairs[o["shape"], o["color"]] += 1
            visible.append(o["visible_pixels"])
            if o["shape"] == "cube":
                cube_yaws.append(o["rotation_deg"])
    return {
        "images": images,
        "objects": int(sum(k * v for k, v in objects_per_scene.items())),
        "objects_per_scene": dict(sorted(objects_per_scene.items())),
        "attributes": {name: dict(sorted(c.items())) for name, c in attributes.items()},
        "shape_color": {f"{s}/{c}": n for (s, c), n in sorted(pairs.items())},
        "cube_yaw_range_deg": [min(cube_yaws), max(cube_yaws)] if cube_yaws else None,
        "camera": _ranges(np.array(cameras).reshape(-1, 3), ("distance_m", "elevation_deg", "azimuth_deg")),
        "looks": dict(sorted(looks.items())) or None,
        "visible_pixels": {
            "min": int(min(visible)) if visible else 0,
            "median": float(np.median(visible)) if visible else 0.0,
        },
    }


def _ranges(values: np.ndarray, names) -> dict:
    if not len(values):
        return {}
    return {name: [float(values[:, i].min()), float(values[:, i].max())] for i, name in enumerate(names)}


def format_summary(summary: dict, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"images {summary['images']}, objects {summary['objects']}")
    per = summary["objects_per_scene"]
    lines.append("objects per scene: " + ", ".join(f"{k}: {v}" for k, v in per.items()))
    for name, counts in summary["attributes"].items():
        total = sum(counts.values()) or 1
        lines.append(f"{name:9s}" + "  ".join(f"{k} {v} ({100 * v / total:.0f}%)" for k, v in counts.items()))
    shapes = {}
    for key, n in summary["shape_color"].items():
        shape, color = key.split("/")
        shapes.setdefault(shape, []).append(f"{color} {n}")
    for shape, items in shapes.items():
        lines.append(f"{shape + ' colors':17s}" + ", ".join(items))
    if summary["cube_yaw_range_deg"]:
        lo, hi = summary["cube_yaw_range_deg"]
        lines.append(f"cube yaw range  [{lo:+.1f}, {hi:+.1f}] deg")
    cam = summary["camera"]
    if cam:
        lines.append("camera  " + ", ".join(f"{name} [{lo:.3g}, {hi:.3g}]" for name, (lo, hi) in cam.items()))
    if summary["looks"]:
        lines.append("looks   " + ", ".join(f"{k} {v}" for k, v in summary["looks"].items()))
    vis = summary["visible_pixels"]
    lines.append(f"visible pixels per object: min {vis['min']}, median {vis['median']:.0f}")
    return "\n".join(lines)
