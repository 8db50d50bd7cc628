"""The named splits and their rules, in one place (documented in docs/data.md).

- train, val_id:   CoGenT condition A, cube yaw from the training band, nominal look.
- val_cogent_b:    CoGenT condition B (unseen shape/colour pairs), training yaw band.
- val_param:       condition A, every cube's yaw inside the held-out band [0, 30) degrees
                   that no other split shows.
- val_visual:      condition A geometry and yaws as train, with a visual-domain shift
                   (warm key light, tinted fill, sand-coloured ground, stronger ambient).
- train_robust:    condition A, training yaw band, domain randomization (randomization.py)
                   and robot camera poses (world.ROBOT_CAMERA_*): what robust models train on.
- val_camera:      condition A, training yaw band, nominal look, robot camera poses.
- val_cycles:      val_id's scenes (same seeds, so sample i is val_id's sample i), the RGB
                   image rendered by Blender Cycles (igllm_ros.data.cycles) instead of the
                   moderngl renderer: the renderer is the only difference.
- train_cycles:    condition A, training yaw band, robot camera poses, drawn by Blender
                   Cycles (CLEVR's look): Cycles renders to mix into training
                   (`data.train: [features:data/train_robust, features:data/train_cycles]`)
                   when a GPU box or time allows; its own seeds, never val_cycles' scenes.
- val_eevee:       val_id's scenes again (index for index), the RGB image drawn by Blender's
                   rasterizer EEVEE with the Cycles stage (same lamps, materials, floor):
                   the renderer no model trains on, since Cycles' look is in training.
- train_cycles_looks: train_cycles with randomized Cycles looks (blender_looks.py: lamp
                   powers, sun, ambient, floor grey, exposure, jittered lamps): the Cycles
                   stage at many light levels, not only CLEVR's. EEVEE stays held out.

New splits go at the end of SPLITS: split_id (mixed into every sample's seed) is the
position there, so existing seeds keep giving the same samples.

Yaws are whole tenths of a degree (the program's precision), so a quantized yaw never
slips across a band edge.
"""
from __future__ import annotations

from dataclasses import dataclass

from igllm_ros import world

SPLITS = (
    "train", "val_id", "val_cogent_b", "val_param", "val_visual", "train_robust", "val_camera", "val_cycles", "train_cycles",
    "val_eevee", "train_cycles_looks",
)
CAMERA_MODES = ("nominal", "robot")  # nominal: world.CAMERA_NOMINAL_POSITION_M jittered; robot: world.ROBOT_CAMERA_*
RGB_RENDERERS = ("moderngl", "cycles", "eevee")

# Cube yaw bands in tenths of a degree, half-open [lo, hi). Their union is [-45, 45).
TRAIN_YAW_BANDS_DECIDEG = ((-450, 0), (300, 450))
HELD_OUT_YAW_BANDS_DECIDEG = ((0, 300),)


@dataclass(frozen=True)
class SplitRule:
    name: str
    condition: str  # CoGenT condition, "A" or "B"
    yaw_bands_decideg: tuple[tuple[int, int], ...]
    visual_shift: bool  # draw lighting/ground from the shifted visual domain
    randomize: bool = False  # domain randomization of the look: randomization.py (moderngl), blender_looks.py (Blender)
    camera: str = "nominal"  # one of CAMERA_MODES
    renderer: str = "moderngl"  # what draws the RGB image (labels and visibility: always moderngl)
    seed_split: str | None = None  # draw the scenes from this split's seeds (same scenes, index for index)


SPLIT_RULES = {
    "train": SplitRule("train", "A", TRAIN_YAW_BANDS_DECIDEG, False),
    "val_id": SplitRule("val_id", "A", TRAIN_YAW_BANDS_DECIDEG, False),
    "val_cogent_b": SplitRule("val_cogent_b", "B", TRAIN_YAW_BANDS_DECIDEG, False),
    "val_param": SplitRule("val_param", "A", HELD_OUT_YAW_BANDS_DECIDEG, False),
    "val_visual": SplitRule("val_visual", "A", TRAIN_YAW_BANDS_DECIDEG, True),
    "train_robust": SplitRule("train_robust", "A", TRAIN_YAW_BANDS_DECIDEG, False, randomize=True, camera="robot"),
    "val_camera": SplitRule("val_camera", "A", TRAIN_YAW_BANDS_DECIDEG, False, camera="robot"),
    "val_cycles": SplitRule("val_cycles", "A", TRAIN_YAW_BANDS_DECIDEG, False, renderer="cycles", seed_split="val_id"),
    "train_cycles": SplitRule("train_cycles", "A", TRAIN_YAW_BANDS_DECIDEG, False, camera="robot", renderer="cycles"),
    "val_eevee": SplitRule("val_eevee", "A", TRAIN_YAW_BANDS_DECIDEG, False, renderer="eevee", seed_split="val_id"),
    "train_cycles_looks": SplitRule(
        "train_cycles_looks", "A", TRAIN_YAW_BANDS_DECIDEG, False, randomize=True, camera="robot", renderer="cycles"
    ),
}
assert tuple(SPLIT_RULES) == SPLITS
assert all(r.condition in world.COGENT_COLORS for r in SPLIT_RULES.values())
assert all(r.camera in CAMERA_MODES and r.renderer in RGB_RENDERERS for r in SPLIT_RULES.values())


def split_rule(split: str) -> SplitRule:
    if split not in SPLIT_RULES:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return SPLIT_RULES[split]


def split_id(split: str) -> int:
    """A stable small integer per split, mixed into per-sample seeds (the seed split's, if it has one)."""
    rule = split_rule(split)
    return SPLITS.index(rule.seed_split or split)


def yaw_in_bands(yaw_deg: float, bands_decideg) -> bool:
    tenths = round(yaw_deg * 10.0)
    return any(lo <= tenths < hi for lo, hi in bands_decideg)
