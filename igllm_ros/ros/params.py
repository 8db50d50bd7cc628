"""The node's parameters: one table with defaults, descriptions, ranges and when they apply.

config/igllm.yaml lists the same parameters with the same defaults (a test checks it).
"""
from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from igllm_ros import world
from igllm_ros.reconstruction import DEFAULT_MODEL

# When a change at run time takes effect.
NOW = "now"  # from the next frame
UNCONFIGURED = "unconfigured"  # only while no model is loaded (it is read at configure)
INACTIVE = "inactive"  # only while not active (it is read at activate)
READ_ONLY = "read_only"  # only at start-up


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    applies: str = NOW
    range: tuple | None = None  # (low, high) for numbers
    choices: tuple[str, ...] | None = None  # for strings

    def descriptor(self) -> ParameterDescriptor:
        text = self.description
        if self.choices:
            text += f" One of: {', '.join(self.choices)}."
        if self.applies == UNCONFIGURED:
            text += " Changes take effect at the next configure (refused while a model is loaded)."
        elif self.applies == INACTIVE:
            text += " Changes are refused while the node is active."
        descriptor = ParameterDescriptor(name=self.name, description=text, read_only=self.applies == READ_ONLY)
        if self.range is not None:
            low, high = self.range
            if isinstance(self.default, int) and not isinstance(self.default, bool):
                descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
            else:
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
        return descriptor


PARAMS = (
    Param("autostart", True, "Configure and activate by itself at start-up.", READ_ONLY),
    Param(
        "model_path",
        DEFAULT_MODEL,
        "Model directory (safetensors + config). Relative paths are tried from the working "
        "directory, then from the package's share directory.",
        UNCONFIGURED,
    ),
    Param("device", "auto", "Where the model runs: auto picks CUDA when available, else CPU. Also cuda:N.",
          UNCONFIGURED, choices=("auto", "cpu", "cuda")),
    Param("dtype", "auto", "Model precision: auto is bfloat16 (or float16) on CUDA and float32 on CPU.",
          UNCONFIGURED, choices=("auto", "float32", "float16", "bfloat16")),
    Param("torch_threads", 0, "CPU threads for the model; 0 keeps PyTorch's default.", UNCONFIGURED, range=(0, 256)),
    Param("image_reliability", "best_effort", "Reliability of the image and camera_info subscriptions.",
          INACTIVE, choices=("best_effort", "reliable")),
    Param("image_depth", 1, "History depth of the image subscription (1: always the newest frame).",
          INACTIVE, range=(1, 100)),
    Param("use_compressed", False, "Also subscribe to image/compressed (JPEG/PNG, decoded with PIL).", INACTIVE),
    Param("max_objects", world.MAX_OBJECTS, "Most objects the model may write per scene.",
          range=(1, world.MAX_OBJECTS)),
    Param("confidence_threshold", 0.0, "Objects below this confidence are left out of the outputs.",
          range=(0.0, 1.0)),
    Param("frame_id", "", "Overrides the output frame_id; empty keeps the input image's frame_id."),
    Param("publish_debug_image", True, "Publish debug_image (only computed while someone subscribes)."),
    Param("debug_rerender", True, "Put a re-rendering of the reconstruction beside the debug image (OpenGL)."),
    Param("max_image_pixels", 4096 * 4096, "Images with more pixels than this are refused as oversized.",
          range=(1, 1 << 30)),
    Param("fx", 0.0, "Fallback focal length x (pixels) when no camera_info arrives; 0: the pinned camera "
          f"(fx = fy = {world.FOCAL_OVER_WIDTH} x width, principal point at the centre).", range=(0.0, 1e6)),
    Param("fy", 0.0, "Fallback focal length y (pixels); 0: same as fx.", range=(0.0, 1e6)),
    Param("cx", -1.0, "Fallback principal point x (pixels, pixel centres at integers); -1: the image centre.",
          range=(-1.0, 1e6)),
    Param("cy", -1.0, "Fallback principal point y (pixels); -1: the image centre.", range=(-1.0, 1e6)),
    Param("latest_image_max_age_s", 5.0, "The reconstruct service refuses a latest image older than this.",
          range=(0.0, 3600.0)),
    Param("camera_timeout_s", 2.0, "Diagnostics warn when no image arrived for this long while active.",
          range=(0.1, 3600.0)),
    Param("min_image_side_px", 32, "Images with a side shorter than this are refused (too_small).",
          range=(1, 4096)),
    Param("max_aspect_ratio", 4.0, "Images whose long side exceeds this many short sides are refused "
          "(bad_aspect_ratio).", range=(1.0, 100.0)),
    Param("max_view_scale", 16.0, "The model's view may span at most this many model input sizes of input "
          "pixels per side (a long lens on a large image); larger is refused (view_too_large).", range=(1.0, 1000.0)),
    Param("min_view_overlap", 0.1, "The image must fill at least this fraction of the model's view; less means "
          "implausible intrinsics, refused (bad_intrinsics).", range=(0.0, 1.0)),
    Param("no_scene_error_s", 30.0, "Diagnostics turn ERROR when images arrive but no scene was published for "
          "this long.", range=(1.0, 3600.0)),
    Param("diagnostics_period_s", 1.0, "Period of /diagnostics.", READ_ONLY, range=(0.1, 60.0)),
)
BY_NAME = {p.name: p for p in PARAMS}


def declare(node) -> None:
    for p in PARAMS:
        node.declare_parameter(p.name, p.default, p.descriptor())


def check_value(name: str, value) -> str | None:
    """Why this value is invalid, or None (ranges and read-only are checked by rclpy)."""
    spec = BY_NAME.get(name)
    if spec is None or spec.choices is None:
        return None
    if name == "device" and isinstance(value, str) and value.startswith("cuda:") and value[5:].isdigit():
        return None
    if value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}; got {value!r}"
    return None
