"""Metric values on hand-worked cases."""
import math

import pytest

from igllm_ros.metrics import average_precision, evaluate, match, yaw_error_deg
from igllm_ros.scene import Scene, SceneObject


def obj(shape="cube", color="red", loc=(0.0, 0.0, 0.0), rotation=0.0, confidence=1.0, material="rubber", size="large"):
    return SceneObject(shape, color, material, size, loc, rotation, confidence)


def test_hungarian_matching_minimises_total_distance():
    true = [obj(loc=(0, 0, 0)), obj(loc=(1, 0, 0))]
    pred = [obj(loc=(0.9, 0, 0)), obj(loc=(0.2, 0, 0))]
    assert sorted(match(pred, true)) == [(0, 1), (1, 0)]
    assert match([], true) == [] and match(pred, []) == []


@pytest.mark.parametrize("p, t, e", [(0, 0, 0), (10, 0, 10), (89, 0, 1), (44, -44, 2), (45, 0, 45), (-100, 80, 0)])
def test_yaw_error_is_modulo_90(p, t, e):
    assert yaw_error_deg(p, t) == pytest.approx(e)


def test_evaluate_hand_worked_scene():
    true = Scene(objects=(
        obj("cube", "red", (0.0, 0.0, 0.0), rotation=10.0),
        obj("sphere", "blue", (0.1, 0.0, 0.0)),
        obj("cylinder", "green", (0.0, 0.1, 0.0)),
    ))
    pred = Scene(objects=(
        obj("cube", "red", (0.003, 0.004, 0.0), rotation=-80.0),  # 5 mm off, yaw equal mod 90
        obj("cube", "blue", (0.1, 0.0, 0.0)),  # wrong shape on a true sphere
    ))
    r = evaluate([(pred, true)])
    assert r["count_abs_error"] == 1 and r["count_exact"] == 0
    assert r["location_error_m"] == pytest.approx(0.0025)  # (0.005 + 0) / 2
    assert r["acc_shape"] == 1.0  # the sphere is excluded
    assert r["acc_shape_all"] == 0.5
    assert r["acc_color"] == 1.0 and r["acc_material"] == 1.0 and r["acc_size"] == 1.0
    assert r["yaw_error_deg"] == pytest.approx(0.0)
    # One of three true objects found with all attributes right: precision 1 up to recall 1/3.
    assert r["ap_inf"] == pytest.approx(1 / 3)
    assert r["ap_0.00625m"] == pytest.approx(1 / 3)


def test_ap_threshold_excludes_far_predictions():
    true = Scene(objects=(obj(loc=(0, 0, 0)),))
    pred = Scene(objects=(obj(loc=(0.01, 0, 0)),))
    assert average_precision([(pred, true)], 0.0125) == pytest.approx(1.0)
    assert average_precision([(pred, true)], 0.00625) == pytest.approx(0.0)


def test_ap_ranks_by_confidence_and_claims_each_true_object_once():
    true = Scene(objects=(obj(loc=(0, 0, 0)), obj(color="blue", loc=(0.2, 0, 0))))
    # Highest confidence is a false positive, then a hit, then a duplicate of the same object.
    pred = Scene(objects=(
        obj(color="gray", loc=(0.5, 0, 0), confidence=0.9),
        obj(loc=(0.001, 0, 0), confidence=0.8),
        obj(loc=(0.002, 0, 0), confidence=0.7),
    ))
    # Ranked hits: [0, 1, 0]; recall reaches 1/2 at precision 1/2.
    assert average_precision([(pred, true)], 0.05) == pytest.approx(0.25)


def test_empty_inputs_give_defined_values():
    r = evaluate([(Scene(), Scene(objects=(obj(),)))])
    assert r["count_abs_error"] == 1 and r["ap_inf"] == 0.0
    assert math.isnan(r["location_error_m"])
    assert math.isnan(evaluate([(Scene(), Scene())])["ap_inf"])
