"""Scene-reconstruction metrics, as in IG-LLM (Kulits et al. 2024) and CLEVR set prediction.

Predicted objects are matched to true objects with the Hungarian algorithm on 3D distance
(table frame, metres). Used by evaluation, benchmarks and the demo, which show them with
TABLE_ROWS and format_value (the one way a metric is written in a table).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from igllm_ros import world
from igllm_ros.scene import ATTRIBUTE_NAMES, Scene, SceneObject

# CLEVR's 1, 0.5, 0.25, 0.125 units in metres, then no distance limit.
AP_THRESHOLDS_M = (0.05, 0.025, 0.0125, 0.00625, float("inf"))


def match(pred: Sequence[SceneObject], true: Sequence[SceneObject]) -> list[tuple[int, int]]:
    """Pairs (pred index, true index) minimising the total 3D distance."""
    if not pred or not true:
        return []
    cost = cdist([p.loc for p in pred], [t.loc for t in true])
    rows, cols = linear_sum_assignment(cost)
    return list(zip(rows.tolist(), cols.tolist()))


def yaw_error_deg(pred_deg: float, true_deg: float, symmetry_deg: float = world.CUBE_SYMMETRY_DEG) -> float:
    """Smallest yaw difference modulo the shape's symmetry, in [0, symmetry/2]."""
    half = symmetry_deg / 2.0
    return abs((pred_deg - true_deg + half) % symmetry_deg - half)


def evaluate(pairs: Iterable[tuple[Scene, Scene]]) -> dict[str, float]:
    """Aggregate metrics over (predicted, true) scene pairs.

    - count_abs_error: mean |#pred - #true|; count_exact: fraction of scenes with equal counts.
    - location_error_m: mean L2 over matched pairs.
    - acc_<attribute>: accuracy over matched pairs; acc_shape excludes true spheres (as the
      paper does), acc_shape_all does not.
    - yaw_error_deg: mean over matched true cubes, modulo 90 degrees.
    - ap_<threshold>: average precision where a prediction counts only if all attributes
      match and it lies within the threshold (CLEVR set-prediction protocol).
    """
    pairs = list(pairs)
    count_errors, distances, yaw_errors = [], [], []
    correct = {name: [] for name in ATTRIBUTE_NAMES + ("shape_all",)}
    for pred, true in pairs:
        count_errors.append(abs(len(pred.objects) - len(true.objects)))
        for i, j in match(pred.objects, true.objects):
            p, t = pred.objects[i], true.objects[j]
            distances.append(float(np.linalg.norm(np.subtract(p.loc, t.loc))))
            for name in ATTRIBUTE_NAMES:
                if name != "shape" or t.shape != "sphere":
                    correct[name].append(getattr(p, name) == getattr(t, name))
            correct["shape_all"].append(p.shape == t.shape)
            if t.shape == "cube":
                yaw_errors.append(yaw_error_deg(p.rotation, t.rotation))
    result = {
        "scenes": float(len(pairs)),
        "count_abs_error": _mean(count_errors),
        "count_exact": _mean([e == 0 for e in count_errors]),
        "location_error_m": _mean(distances),
        "yaw_error_deg": _mean(yaw_errors),
    }
    for name, values in correct.items():
        result[f"acc_{name}"] = _mean(values)
    for threshold in AP_THRESHOLDS_M:
        result[ap_key(threshold)] = average_precision(pairs, threshold)
    return result


def ap_key(threshold_m: float) -> str:
    return "ap_inf" if threshold_m == float("inf") else f"ap_{threshold_m:g}m"


def average_precision(pairs: Sequence[tuple[Scene, Scene]], threshold_m: float) -> float:
    """AP over all predictions ranked by confidence; a true object can be claimed once."""
    detections = [
        (obj.confidence, scene_index, obj)
        for scene_index, (pred, _) in enumerate(pairs)
        for obj in pred.objects
    ]
    detections.sort(key=lambda d: -d[0])  # stable: ties keep program order
    total_true = sum(len(true.objects) for _, true in pairs)
    if total_true == 0:
        return float("nan")
    claimed: set[tuple[int, int]] = set()
    hits = np.zeros(len(detections))
    for k, (_, scene_index, obj) in enumerate(detections):
        best_distance, best = float("inf"), None
        for j, t in enumerate(pairs[scene_index][1].objects):
            if (scene_index, j) in claimed or t.attributes() != obj.attributes():
                continue
            distance = float(np.linalg.norm(np.subtract(obj.loc, t.loc)))
            if distance < best_distance:
                best_distance, best = distance, j
        if best is not None and best_distance <= threshold_m:
            hits[k] = 1.0
            claimed.add((scene_index, best))
    return _area_under_pr(hits, total_true)


def _area_under_pr(hits: np.ndarray, total_true: int) -> float:
    """VOC-style AP: area under the precision envelope of the precision-recall curve."""
    if hits.size == 0:
        return 0.0
    tp = np.cumsum(hits)
    recall = np.concatenate([[0.0], tp / total_true, [1.0]])
    precision = np.concatenate([[0.0], tp / np.arange(1, hits.size + 1), [0.0]])
    for i in range(precision.size - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    steps = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


# (metrics key, label, how to show it): the paper's table for one split.
TABLE_ROWS = (
    ("count_abs_error", "count abs error", "{:.3f}"),
    ("count_exact", "count exact (%)", "pct"),
    ("location_error_m", "L2 location error (mm)", "mm"),
    ("acc_shape", "acc shape, no spheres (%)", "pct"),
    ("acc_shape_all", "acc shape, all (%)", "pct"),
    ("acc_color", "acc color (%)", "pct"),
    ("acc_material", "acc material (%)", "pct"),
    ("acc_size", "acc size (%)", "pct"),
    ("yaw_error_deg", "cube yaw error (deg)", "{:.2f}"),
) + tuple(
    (ap_key(t), f"AP @ {'inf' if math.isinf(t) else f'{t * 1000:g} mm'} (%)", "pct")
    for t in AP_THRESHOLDS_M
)


def format_value(value, fmt: str) -> str:
    """One metric as a table shows it: fmt "pct" (x100, 1 decimal), "mm" (x1000, 2 decimals)
    or a format string; None and NaN as n/a."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if fmt == "pct":
        return f"{100.0 * value:.1f}"
    if fmt == "mm":
        return f"{1000.0 * value:.2f}"
    return fmt.format(value)
