"""Where the package's shared files (config/, models/, msg/, launch/) are.

Two layouts: the source tree (this file is igllm_ros/ros/share.py beside package.xml) and
a colcon install, where the Python package sits in site-packages and the files in
share/igllm_ros/ (found through the ament index).
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = "igllm_ros"
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def source_root() -> Path | None:
    """The repository root when running from a source checkout, else None."""
    return _SOURCE_ROOT if (_SOURCE_ROOT / "package.xml").is_file() else None


def installed_share() -> Path | None:
    """share/igllm_ros of the colcon install on AMENT_PREFIX_PATH, or None."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, ValueError):
        return None


def share_path(*parts: str) -> Path:
    """The shared file or folder `parts` (e.g. "config", "fastdds_shm.xml"): from the source
    tree when it has it, else from the install; FileNotFoundError naming both places."""
    tried = []
    for root in (source_root(), installed_share()):
        if root is None:
            continue
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
        tried.append(str(candidate))
    raise FileNotFoundError(
        f"{'/'.join(parts)} not found in the source tree or the installed share of {PACKAGE} "
        f"(tried: {', '.join(tried) or 'no source tree, no install on AMENT_PREFIX_PATH'})"
    )
