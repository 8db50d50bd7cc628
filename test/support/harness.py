"""Start the node and the simulator as separate processes and talk to them over DDS.

The launcher and the watcher come from the package (igllm_ros.ros.processes, which the
demo and benchmarks use too); what only tests need is here: a Probe that also calls
services, sets parameters and drives lifecycle transitions, a freshly built test model,
the node started through the test entry point (support.node_main, which understands the
test doubles of support.doubles), and the node process's memory from /proc.
"""
from __future__ import annotations

import os
from pathlib import Path

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters

from igllm_ros.ros import processes
from igllm_ros.ros.diagnostics import status_values
from igllm_ros.ros.processes import read_log, start_sim, stop  # noqa: F401 (re-exported for tests)

TEST_DIR = Path(__file__).resolve().parents[1]
TRANSITIONS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
    "cleanup": Transition.TRANSITION_CLEANUP,
    "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
}


def start_node(env: dict | None = None, **kwargs):
    """igllm_node in its own process, through the test entry point (real node, real model;
    a model directory may be a test double, see support.doubles)."""
    path = os.pathsep.join(p for p in (str(TEST_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return processes.start("support.node_main", env={"PYTHONPATH": path, **(env or {})}, **kwargs)


def build_test_model(directory: str | os.PathLike) -> str:
    """A fresh, real (untrained) small model saved in directory; returns its path."""
    from igllm_ros import model

    directory = Path(directory)
    model.build(model.tiny_test_config()).save(directory)
    return str(directory)


def diagnostics_values(array, node_name: str = "igllm_node") -> dict | None:
    return status_values(array, node_name)


def latest_diagnostics(received: list, node_name: str = "igllm_node") -> dict:
    """The newest status of node_name among received DiagnosticArrays ({} if none yet)."""
    for array in reversed(received):
        values = status_values(array, node_name)
        if values:
            return values
    return {}


def rss_mib(pid: int) -> tuple[float, float]:
    """(resident memory now, peak resident memory) of a process, MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024.0, int(fields["VmHWM"].split()[0]) / 1024.0


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise ValueError(f"no thread count for process {pid}")


class Probe(processes.Watcher):
    """A node in its own context that watches and pokes the processes under test."""

    def __init__(self, name: str = "igllm_probe"):
        super().__init__(name)

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
        """The node's lifecycle state. get_state is idempotent, so it is asked again with a
        new client when a reply does not come: a service can be discovered before its reply
        path to this client is matched, and a reply sent then is lost (seen once in a
        full suite run: the node was active, no reply came in 120 s)."""
        attempts = 4
        for attempt in range(attempts):
            try:
                reply = self.call(GetState, f"{node_name}/get_state", GetState.Request(), max(5.0, timeout / attempts))
                return reply.current_state.label
            except TimeoutError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

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
