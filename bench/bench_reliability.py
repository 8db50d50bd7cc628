"""Benchmark igllm_node under hostile input: a flood of each bad kind, then valid images.

An outside client (this process) floods the node (its own process, over DDS) with one kind
of bad input at --rate Hz for --seconds, then streams valid images at 10 Hz until
/diagnostics says OK again. Prints per kind: messages sent and the achieved rate, how many
the node took (images_received; best effort with depth 1 loses some under load), how many
it counted under that kind (for kinds refused after the mailbox, the rest of those taken
were replaced there by newer ones), the diagnostics levels seen in the second half of the
flood, seconds until OK after it, the node's RSS before and after and its peak (VmHWM).
Then --cycles deactivate/activate cycles with a debug-image subscriber, with RSS along
the way. The targets (issue 14): WARN during, OK after, counted, memory flat, alive.

    python bench/bench_reliability.py [--model DIR] [--seconds 10] [--rate 100] [--cycles 40]

Without --model a fresh untrained test model is built (the node's behaviour under bad input
does not depend on the weights). The node runs through the tests' entry point
(test/support), whose model double raises on all-white images: that is how internal
errors are provoked from outside.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "test")]
NODE = "/igllm_node"
LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="model directory (default: a freshly built test model)")
    parser.add_argument("--seconds", type=float, default=10.0, help="flood length per kind")
    parser.add_argument("--rate", type=float, default=100.0, help="flood rate, messages per second")
    parser.add_argument("--cycles", type=int, default=40, help="deactivate/activate cycles with a debug subscriber")
    parser.add_argument("--kinds", nargs="*", default=None, help="only these kinds (none: only the cycles)")
    parser.add_argument("--out", default="out/bench_reliability", help="logs and the test model")
    return parser.parse_args()


def cases(probe, camera, hostile):
    """kind -> (setup(), send_one(), teardown()), each leaving the node's parameters as it found them."""
    from igllm_ros.ros.image_conversion import encode_compressed

    valid, white = hostile.image_msg(hostile.valid_image()), hostile.image_msg(np.full((240, 320, 3), 255, np.uint8))
    bad = {
        "empty": hostile.image_msg(np.zeros((240, 320, 3), np.uint8), width=0, height=0, step=0, data=b""),
        "bad_step": hostile.image_msg(hostile.valid_image(), step=100),
        "bad_data_size": hostile.image_msg(hostile.valid_image(), data=bytes(320 * 240 * 3 - 7)),
        "unknown_encoding": hostile.image_msg(hostile.valid_image(), encoding="32FC1", width=240, step=960),
        "too_small": hostile.image_msg(np.zeros((1, 20000, 3), np.uint8)),
        "bad_aspect_ratio": hostile.image_msg(np.zeros((40, 1000, 3), np.uint8)),
    }
    nothing = lambda: None  # noqa: E731
    table = {kind: (nothing, lambda m=msg: camera.send(m, wait=0.0), nothing) for kind, msg in bad.items()}
    bomb, corrupt = hostile.png_bomb(20000, 20000), encode_compressed(hostile.valid_image())[:200]
    table["oversized"] = (nothing, lambda: camera.compressed(bomb, wait=0.0), nothing)
    table["corrupt_compressed"] = (nothing, lambda: camera.compressed(corrupt, wait=0.0), nothing)
    table["internal_error"] = (nothing, lambda: camera.send(white, wait=0.0), nothing)
    table["bad_intrinsics"] = (lambda: camera.camera_info(fx=1e6), lambda: camera.send(valid, wait=0.0),
                               lambda: camera.camera_info())
    # A 2.5x long lens sees 800x600 pixels of the model's view; max_view_scale 1 allows 320x240.
    long_lens = lambda: (probe.set_parameters(NODE, {"max_view_scale": 1.0}), camera.camera_info(fx=875.0))  # noqa: E731
    back = lambda: (probe.set_parameters(NODE, {"max_view_scale": 16.0}), camera.camera_info())  # noqa: E731
    table["view_too_large"] = (long_lens, lambda: camera.send(valid, wait=0.0), back)

    def info_flood():  # broken camera_info while a valid stream goes on: mostly bad input
        camera.info_pub.publish(broken_info)
        if int(time.monotonic() * 10) % 10 == 0:
            camera.send(valid, wait=0.0)

    broken_info = camera.camera_info(width=0, height=0, fx=500.0, binning=(2, 2), wait=0.0)
    table["bad_camera_info"] = (nothing, info_flood, nothing)
    return table


def run_flood(kind, case, rig, args, harness, hostile) -> dict:
    probe, camera, diagnostics, node = rig
    setup, send_one, teardown = case
    setup()
    before = diagnostics.count(kind)
    received_before = int(diagnostics.latest()["images_received"])
    rss_before, _ = harness.rss_mib(node.pid)
    start = time.monotonic()
    sent = hostile.flood(probe, send_one, args.seconds, args.rate)
    elapsed = time.monotonic() - start
    teardown()
    late = diagnostics.since(start + args.seconds / 2)
    probe.spin(1.5)  # the last counts
    counted = diagnostics.count(kind) - before
    received = int(diagnostics.latest()["images_received"]) - received_before
    rss_after, peak = harness.rss_mib(node.pid)
    try:
        to_ok = hostile.stream_until(probe, camera, lambda: diagnostics.latest().get("_level") == 0, 60,
                                     what="diagnostics OK")
    except TimeoutError:
        to_ok = float("nan")
    messages = sorted({v["_message"].split(":")[0] for v in late})
    return dict(kind=kind, sent=sent, rate=sent / elapsed, counted=counted, received=received,
                levels="/".join(sorted({LEVELS.get(v["_level"], "?") for v in late})) or "-",
                message="; ".join(messages)[:48], to_ok=to_ok, rss_before=rss_before, rss_after=rss_after, peak=peak,
                alive=node.poll() is None)


def run_cycles(rig, cycles: int, harness, hostile) -> list[tuple[int, float]]:
    from sensor_msgs.msg import Image

    probe, camera, _, node = rig
    debug = probe.subscribe(Image, "debug_image", qos=1)
    samples = [(0, harness.rss_mib(node.pid)[0])]
    for n in range(1, cycles + 1):
        count = len(debug)
        hostile.stream_until(probe, camera, lambda: len(debug) > count, 60, what="a debug image")
        if not (probe.change_state(NODE, "deactivate") and probe.change_state(NODE, "activate")):
            raise RuntimeError(f"lifecycle cycle {n} failed")
        if n in (1, 2, 5, 10) or n % 20 == 0 or n == cycles:
            samples.append((n, harness.rss_mib(node.pid)[0]))
    return samples


def main() -> int:
    args = parse_args()
    from support import doubles, harness, hostile

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = args.model or harness.build_test_model(out / "test_model")
    double = doubles.make_double(out / "faulty_model", model, fail_on_white=True)
    node = harness.start_node(params={"model_path": double, "use_compressed": True}, log_path=out / "node.log")
    probe = harness.Probe("reliability_bench")
    camera = hostile.Camera(probe)
    diagnostics = hostile.DiagnosticsLog(probe)
    rig = (probe, camera, diagnostics, node)
    rows, cycles = [], []
    try:
        probe.wait_for(lambda: probe.get_state(NODE, timeout=120) == "active", 180, "the node to be active")
        camera.camera_info()
        hostile.stream_until(probe, camera, lambda: diagnostics.latest().get("_level") == 0, 60, what="OK")
        table = cases(probe, camera, hostile)
        for kind in list(table) if args.kinds is None else args.kinds:
            rows.append(run_flood(kind, table[kind], rig, args, harness, hostile))
            print(f"  {kind}: sent {rows[-1]['sent']}, counted {rows[-1]['counted']}, {rows[-1]['levels']}", flush=True)
        if args.cycles:
            cycles = run_cycles(rig, args.cycles, harness, hostile)
    finally:
        probe.close()
        returncode = harness.stop(node)
    print(f"\nigllm_node under hostile input: {args.seconds:g} s floods at {args.rate:g} Hz, then valid images at 10 Hz "
          f"(model {args.model or 'fresh test model'}); node exit code {returncode}")
    print(f"{'kind':19} {'sent':>5} {'Hz':>6} {'taken':>5} {'counted':>7} {'during':>10} {'OK after s':>10} "
          f"{'RSS MiB before/after/peak':>26} alive  message during")
    for r in rows:
        print(f"{r['kind']:19} {r['sent']:5d} {r['rate']:6.1f} {r['received']:5d} {r['counted']:7d} {r['levels']:>10} {r['to_ok']:10.1f} "
              f"{r['rss_before']:8.0f}/{r['rss_after']:.0f}/{r['peak']:.0f}{'':>6} {'yes' if r['alive'] else 'NO':5}  "
              f"{r['message']}")
    if cycles:
        print("activation cycles with a debug_image subscriber, node RSS MiB: "
              + ", ".join(f"after {n}: {rss:.0f}" for n, rss in cycles))
    return 0 if all(r["alive"] for r in rows) and returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
