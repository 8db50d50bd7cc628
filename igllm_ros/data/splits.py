"""The named splits and their rules, in one place (documented in docs/data.md).

- train, val_id:   CoGenT condition A, cube yaw from the training band, nominal look.
- val_cogent_b:    CoGenT condition B (unseen shape/colour pairs), training yaw band.
- val_param:       condition A, every cube's yaw inside the held-out band [0, 30) degrees
                   that no other split shows.
- val_visual:      condition A geometry and yaws as train, with a visual-domain shift
                   (warm key light, tinted fill, sand-coloured ground, stronger ambient).

Yaws are whole tenths of a degree (the program's precision), so a quantized yaw never
slips across a band edge.
"""
from __future__ import annotations

from dataclasses import dataclass

from igllm_ros import world

SPLITS = ("train", "val_id", "val_cogent_b", "val_param", "val_visual")

# Cube yaw bands in tenths of a degree, half-open [lo, hi). Their union is [-45, 45).
TRAIN_YAW_BANDS_DECIDEG = ((-450, 0), (300, 450))
HELD_OUT_YAW_BANDS_DECIDEG = ((0, 300),)


@dataclass(frozen=True)
class SplitRule:
    name: str
    condition: str  # CoGenT condition, "A" or "B"
    yaw_bands_decideg: tuple[tuple[int, int], ...]
    visual_shift: bool  # draw lighting/ground from the shifted visual domain


SPLIT_RULES = {
    "train": SplitRule("train", "A", TRAIN_YAW_BANDS_DECIDEG, False),
    "val_id": SplitRule("val_id", "A", TRAIN_YAW_BANDS_DECIDEG, False),
    "val_cogent_b": SplitRule("val_cogent_b", "B", TRAIN_YAW_BANDS_DECIDEG, False),
    "val_param": SplitRule("val_param", "A", HELD_OUT_YAW_BANDS_DECIDEG, False),
    "val_visual": SplitRule("val_visual", "A", TRAIN_YAW_BANDS_DECIDEG, True),
}
assert tuple(SPLIT_RULES) == SPLITS
assert all(r.condition in world.COGENT_COLORS for r in SPLIT_RULES.values())


def split_rule(split: str) -> SplitRule:
    if split not in SPLIT_RULES:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return SPLIT_RULES[split]


def split_id(split: str) -> int:
    """A stable small integer per split, mixed into per-sample seeds."""
    split_rule(split)
    return SPLITS.index(split)


def yaw_in_bands(yaw_deg: float, bands_decideg) -> bool:
    tenths = round(yaw_deg * 10.0)
    return any(lo <= tenths < hi for lo, hi in bands_decideg)
