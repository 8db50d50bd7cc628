"""Run the node and the simulator as separate processes and talk to them over DDS.

Shared by the tests, the demo and the benchmark: start a process with `--ros-args`, stop
it politely, and a Probe (its own rclpy context) that subscribes, calls services, sets
parameters and drives lifecycle transitions of another process's node.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor

REPO_ROOT = Path(__file__).resolve().parents[2]
TRANSITIONS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
    "cleanup": Transition.TRANSITION_CLEANUP,
    "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
}


def fastdds_profile() -> str:
    """The shipped shared-memory profile: from the source tree, else the installed share."""
    local = REPO_ROOT / "config" / "fastdds_shm.xml"
    if local.exists():
        return str(local)
    from ament_index_python.packages import get_package_share_directory

    return str(Path(get_package_share_directory("igllm_ros")) / "config" / "fastdds_shm.xml")


def ros_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", fastdds_profile())
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


def start(module: str, *, log_path: str | os.PathLike | None = None, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """`python -m module --ros-args ...` in its own process group; output to log_path."""
    command = [sys.executable, "-m", module] + ros_args(**kwargs)
    out = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=ros_env(env), cwd=REPO_ROOT,
                                   start_new_session=True)
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


class Probe:
    """A node in its own context that watches and pokes the processes under test."""

    def __init__(self, name: str = "igllm_probe"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def __enter__(self) -> "Probe":
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

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} did not appear in {timeout:.0f} s")
            future = client.call_async(request)
            self.wait_for(future.done, timeout, f"a reply from {name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def change_state(self, node_name: str, transition: str, timeout: float = 60.0) -> bool:
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        return self.call(ChangeState, f"{node_name}/change_state", request, timeout).success

    def get_state(self, node_name: str, timeout: float = 30.0) -> str:
        return self.call(GetState, f"{node_name}/get_state", GetState.Request(), timeout).current_state.label

    def set_parameters(self, node_name: str, values: dict, timeout: float = 30.0):
        """[(successful, reason)] per parameter."""
        request = SetParameters.Request()
        request.parameters = [Parameter(name=k, value=parameter_value(v)) for k, v in values.items()]
        result = self.call(SetParameters, f"{node_name}/set_parameters", request, timeout)
        return [(r.successful, r.reason) for r in result.results]

    def get_parameters(self, node_name: str, names: list[str], timeout: float = 30.0) -> dict:
        result = self.call(GetParameters, f"{node_name}/get_parameters", GetParameters.Request(names=names), timeout)
        return {name: plain_value(v) for name, v in zip(names, result.values)}


def parameter_value(value) -> ParameterValue:
    if isinstance(value, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    if isinstance(value, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))


def plain_value(value: ParameterValue):
    return {
        ParameterType.PARAMETER_BOOL: value.bool_value,
        ParameterType.PARAMETER_INTEGER: value.integer_value,
        ParameterType.PARAMETER_DOUBLE: value.double_value,
        ParameterType.PARAMETER_STRING: value.string_value,
    }.get(value.type)


def diagnostics_values(array, node_name: str = "igllm_node") -> dict | None:
    """key -> value of the node's status in a DiagnosticArray, or None if it is not there."""
    for status in array.status:
        if status.name.startswith(f"{node_name}:"):
            values = {kv.key: kv.value for kv in status.values}
            values["_level"] = status.level[0] if isinstance(status.level, bytes) else status.level
            values["_message"] = status.message
            return values
    return None


def build_test_model(directory: str | os.PathLike) -> str:
    """A fresh, real (untrained) small model saved in directory, for tests; returns its path."""
    from igllm_ros import model

    directory = Path(directory)
    model.build(model.tiny_test_config()).save(directory)
    return str(directory)
