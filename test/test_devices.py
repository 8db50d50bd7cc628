"""One device and precision rule (igllm_ros.devices) for training, evaluation, benchmarks
and the node: what auto picks on this machine, and clear refusals."""
import pytest
import torch

from igllm_ros import devices
from igllm_ros.ros.model_host import ModelUnavailable, choose_device


def test_auto_picks_cuda_with_half_precision_else_cpu_float32():
    choice = devices.choose_device()
    if torch.cuda.is_available():
        assert choice.device == "cuda" and choice.dtype in ("bfloat16", "float16")
        assert "CUDA is available" in choice.reason
    else:
        assert (choice.device, choice.dtype) == ("cpu", "float32")
        assert "CUDA is not available" in choice.reason and "float32 is the default there" in choice.reason
    assert devices.resolve_dtype("auto", devices.resolve_device(choice.device)) == getattr(torch, choice.dtype)


def test_explicit_requests_are_honoured_or_refused_clearly():
    choice = devices.choose_device("cpu", "bfloat16")
    assert (choice.device, choice.dtype) == ("cpu", "bfloat16") and "dtype='bfloat16' was requested" in choice.reason
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        devices.choose_device("cpu", "int8")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        devices.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            devices.resolve_device("cuda")


def test_the_node_gets_the_same_choice_and_an_unavailable_model_on_refusal():
    assert choose_device("auto", "auto") == devices.choose_device("auto", "auto")
    with pytest.raises(ModelUnavailable, match="unknown dtype 'int8'.*node parameters"):
        choose_device("cpu", "int8")
