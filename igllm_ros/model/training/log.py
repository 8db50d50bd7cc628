"""The training log (`<out>/log.jsonl`, one JSON record a line) and its curves PNG.

Records: {"step", "loss", <the model's logs, e.g. ce, mse, token_acc>, "lr", "samples_per_s",
"samples_seen", "elapsed_s"} for training, {"step", "val": {metric: value}} for validation. On resume, records past
the checkpoint's step are dropped so the log reads as one run.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from igllm_ros.strict_json import json_ready  # NaN as null: the log stays strict JSON


class JsonlLog:
    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        else:
            kept = [r for r in read_log(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(json_ready(record)) + "\n")


def read_log(path: Path) -> list[dict]:
    """Records of a log; a torn last line (a killed run) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


TRAIN_KEYS = ("step", "loss", "grad_norm", "lr", "samples_per_s", "samples_seen", "elapsed_s")

# Validation metrics worth a curve, with how to show them.
_VAL_CURVES = (
    ("location_error_m", "location error (mm)", 1000.0),
    ("count_exact", "count exact", 1.0),
    ("acc_color", "acc color", 1.0),
    ("acc_shape", "acc shape", 1.0),
    ("acc_material", "acc material", 1.0),
    ("acc_size", "acc size", 1.0),
    ("ap_0.0125m", "AP @ 12.5 mm", 1.0),
    ("ap_inf", "AP @ inf", 1.0),
)


def plot_curves(log_path: Path, png_path: Path, title: str = "") -> None:
    """Training loss (and its parts), learning rate and validation metrics against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val" in r]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    if train:
        steps = [r["step"] for r in train]
        ax.plot(steps, [r["loss"] for r in train], label="loss", lw=1.2)
        # The model's own logs: losses on this axis; accuracies are not losses.
        parts = sorted({k for r in train for k in r if k not in TRAIN_KEYS and "acc" not in k})
        for key in parts:
            ax.plot(steps, [_num(r.get(key)) for r in train], label=key, lw=0.8, alpha=0.8)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set(title="training loss", xlabel="step")
    ax.grid(alpha=0.3)
    ax = axes[1]
    if train:
        ax.plot([r["step"] for r in train], [r["lr"] for r in train], color="tab:gray")
        twin = ax.twinx()
        twin.plot([r["step"] for r in train], [r["samples_per_s"] for r in train], color="tab:green", lw=0.8)
        twin.set_ylabel("samples/s", color="tab:green")
    ax.set(title="learning rate, throughput", xlabel="step", ylabel="lr")
    ax.grid(alpha=0.3)
    ax = axes[2]
    if val:
        steps = [r["step"] for r in val]
        twin = ax.twinx()
        for key, label, scale in _VAL_CURVES:
            values = [_num(r["val"].get(key)) * scale for r in val]
            if key == "location_error_m":
                twin.plot(steps, values, "k--", marker="o", ms=3, label=label)
                twin.set_ylabel("location error (mm)")
            else:
                ax.plot(steps, values, marker="o", ms=3, label=label)
        ax.set_ylim(-0.02, 1.02)
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    ax.set(title="validation", xlabel="step")
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


def _num(value) -> float:
    return math.nan if value is None else float(value)

