"""The callback guard and the diagnostics level policy, in-process (no DDS needed)."""
import time

import pytest

pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from igllm_ros.ros.diagnostics import HealthPolicy, NodeStats  # noqa: E402
from igllm_ros.ros.guard import guarded  # noqa: E402

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def test_the_guard_reports_the_exception_and_returns_the_fallback():
    reports = []

    def callback(request, response):
        raise MemoryError("cannot allocate 2 TiB")

    run = guarded(callback, lambda where, text: reports.append((where, text)), lambda req, resp: ("refused", req))
    assert run("request", "response") == ("refused", "request")
    (where, text), = reports
    assert where == "callback" and "MemoryError: cannot allocate 2 TiB" in text and "Traceback" in text
    assert guarded(lambda: 7, reports.append)() == 7  # no exception: the callback's own answer


def test_the_guard_survives_a_failing_report_and_lets_interrupts_through(capsys):
    def report(where, text):
        raise RuntimeError("the logger is gone")

    assert guarded(lambda: 1 / 0, report)() is None
    assert "ZeroDivisionError" in capsys.readouterr().err

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        guarded(interrupted, report)()


def streaming_stats():
    stats = NodeStats(recent_s=5.0)
    stats.streaming_started()
    stats.image_received()
    return stats


def test_ok_while_scenes_come_out():
    stats = streaming_stats()
    for _ in range(5):
        stats.scene_published(20.0, 10.0)
    stats.bad_input("bad_step")
    assert HealthPolicy().level(stats.snapshot()) == (OK, "running")


def test_warn_when_most_recent_inputs_are_bad_naming_the_dominant_kind():
    stats = streaming_stats()
    stats.scene_published(20.0, 10.0)
    for kind in ["too_small"] * 6 + ["bad_step"] * 2:
        stats.bad_input(kind)
    level, message = HealthPolicy().level(stats.snapshot())
    assert level == WARN and message.startswith("most recent inputs are bad") and "'too_small' 6 of 9" in message


def test_warn_when_most_frames_fail():
    stats = streaming_stats()
    for _ in range(4):
        stats.bad_input("internal_error")
    level, message = HealthPolicy().level(stats.snapshot())
    assert level == WARN and message.startswith("most frames fail") and "internal_error" in message


def test_error_when_images_arrive_but_no_scene_for_long():
    stats = streaming_stats()
    for _ in range(4):
        stats.bad_input("bad_intrinsics")
    time.sleep(0.3)
    stats.image_received()
    level, message = HealthPolicy(camera_timeout_s=2.0, no_scene_error_s=0.2).level(stats.snapshot())
    assert level == ERROR and "no scene published" in message and "bad_intrinsics" in message


def test_silence_is_a_warning_not_an_error():
    stats = NodeStats()
    stats.streaming_started()
    assert HealthPolicy().level(stats.snapshot()) == (WARN, "no images")


def test_untrusted_latencies_stay_out_of_the_percentiles():
    stats = streaming_stats()
    stats.scene_published(None, 5.0)
    assert stats.snapshot()["latency_ms_p50"] is None
    stats.scene_published(30.0, 5.0)
    snap = stats.snapshot()
    assert snap["latency_ms_p50"] == 30.0 and snap["scenes_published"] == 2


def test_an_exception_in_a_transition_is_an_internal_error_and_the_node_stays_usable():
    """In-process (real rclpy, no DDS): a model loader with a bug fails configure with ERROR,
    on_error brings the node back to unconfigured, and the fault is counted."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    from igllm_ros.ros.node import IgllmNode

    def broken_loader(path, device, dtype, torch_threads):
        raise AttributeError("a loader bug, not a ModelUnavailable")

    context = rclpy.Context()
    rclpy.init(context=context)
    node = IgllmNode(model_loader=broken_loader, context=context)
    try:
        assert node.lifecycle_state() == "unconfigured"
        assert node.trigger_configure() == TransitionCallbackReturn.ERROR
        assert node.lifecycle_state() == "unconfigured"
        assert node.stats.bad_inputs["internal_error"] == 1
        assert node.stats.internal_errors_in == {"on_configure": 1}  # counted where it happened
        assert node.stats.snapshot()["internal_errors_in"] == {"on_configure": 1}
        assert node.trigger_configure() == TransitionCallbackReturn.ERROR  # and again: still no crash
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
