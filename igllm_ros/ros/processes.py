"""Run igllm_node and igllm_camera_sim as separate processes and watch them over DDS.

Used by the demo and the benchmarks: start a process with `--ros-args`, stop it politely,
and a Watcher (a node in its own rclpy context) that subscribes to what they publish.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor

from igllm_ros.ros.share import share_path, source_root


def ros_env(extra: dict | None = None) -> dict:
    """This process's environment with the middleware settings the package ships."""
    env = dict(os.environ)
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(share_path("config", "fastdds_shm.xml")))
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def ros_value(value) -> str:
    """A parameter value as `-p name:=VALUE` wants it (YAML; floats keep their dot)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"  # quoted, so "1.0" or "true" stay strings
    return str(value)


def ros_args(params: dict | None = None, remaps: dict | None = None, params_file: str | None = None,
             name: str | None = None, namespace: str | None = None, log_level: str | None = None) -> list[str]:
    args = ["--ros-args"]
    if params_file:
        args += ["--params-file", str(params_file)]
    for key, value in (params or {}).items():
        args += ["-p", f"{key}:={ros_value(value)}"]
    for src, dst in (remaps or {}).items():
        args += ["-r", f"{src}:={dst}"]
    if name:
        args += ["-r", f"__node:={name}"]
    if namespace:
        args += ["-r", f"__ns:={namespace}"]
    if log_level:
        args += ["--log-level", log_level]
    return args


def start(module: str, *, log_path: str | os.PathLike | None = None, env: dict | None = None,
          cwd: str | os.PathLike | None = None, **kwargs) -> subprocess.Popen:
    """`python -m module --ros-args ...` in its own process group; output to log_path."""
    command = [sys.executable, "-m", module] + ros_args(**kwargs)
    out = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=ros_env(env),
                                   cwd=cwd or source_root() or os.getcwd(), start_new_session=True)
    finally:
        if log_path:
            out.close()  # the child has its own copy
    process.log_path = log_path
    return process


def start_node(**kwargs) -> subprocess.Popen:
    return start("igllm_ros.node", **kwargs)


def start_sim(**kwargs) -> subprocess.Popen:
    return start("igllm_ros.camera_sim", **kwargs)


def stop(process: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGINT (a clean rclpy shutdown), then SIGKILL if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def read_log(process: subprocess.Popen) -> str:
    path = getattr(process, "log_path", None)
    return Path(path).read_text(errors="replace") if path and Path(path).exists() else ""


class Watcher:
    """A node in its own rclpy context that subscribes to other processes' topics."""

    def __init__(self, name: str = "igllm_watcher"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def subscribe(self, msg_type, topic: str, qos=10, keep: list | None = None) -> list:
        received = [] if keep is None else keep
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def wait_for(self, predicate, timeout: float, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)
