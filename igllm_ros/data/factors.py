"""One randomization factor at a time: contact sheets that show what each factor does.

`igllm-data factors --out docs/figures/` draws one scene under looks where only one group
of factors is randomized (the rest nominal), one sheet per group, with the ground truth
drawn on, so one can check by eye that every label stays true.
"""
from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from igllm_ros.data.lighting import NOMINAL, Lighting
from igllm_ros.data.randomization import NOMINAL_LOOK, RIGS, Look, auto_exposure, sample_look

_LAMPS = tuple(f"{w}_{p}" for w in ("key", "fill", "back") for p in ("azimuth_deg", "elevation_deg", "intensity", "color"))
# Which fields of Lighting and Look each group owns. White balance goes with the lamps: the
# camera balances the lamps' colours, and the two together are the light as recorded.
# Exposure is shared (see isolate).
FACTOR_GROUPS = {
    "lighting": (
        _LAMPS + ("ambient_intensity", "ambient_color"),
        ("rig", "sun_azimuth_deg", "sun_elevation_deg", "sun_intensity", "sun_color", "shadow_light", "shadow_softness", "white_balance"),
    ),
    "floor": (("ground_color", "horizon_color"), ("horizon_fade_m", "texture_amplitude", "texture_scale_m", "texture_offset_m")),
    "appearance": ((), ("color_convention", "rubber_specular", "rubber_shininess", "metal_specular", "metal_shininess", "metal_reflection", "exposure")),
    "sensor": ((), ("noise_sigma", "noise_seed", "blur_sigma_px", "jpeg_quality", "vignetting")),
}
assert {n for lamp, _ in FACTOR_GROUPS.values() for n in lamp} <= {f.name for f in fields(Lighting)}
assert {n for _, look in FACTOR_GROUPS.values() for n in look} == {f.name for f in fields(Look)}


def isolate(lighting: Lighting, look: Look, group: str) -> tuple[Lighting, Look]:
    """The nominal lighting and look with only `group`'s fields taken from (lighting, look).

    Exposure is split: its auto-exposure part (which follows the lamps) goes with the
    lighting group, the rest (random factor, colour convention) with appearance.
    """
    lighting_fields, look_fields = FACTOR_GROUPS[group]
    values = {n: getattr(look, n) for n in look_fields}
    automatic = auto_exposure(lighting, look)
    if group == "lighting":
        values["exposure"] = automatic
    elif group == "appearance":
        values["exposure"] = look.exposure / automatic
    return replace(NOMINAL, **{n: getattr(lighting, n) for n in lighting_fields}), replace(NOMINAL_LOOK, **values)


def describe(lighting: Lighting, look: Look, group: str) -> str:
    """A short line with the group's main values, for the sheet's tiles."""
    if group == "lighting":
        sun = f" sun {look.sun_intensity:.2f}" if look.sun_intensity > 0 else ""
        return f"{look.rig} key {lighting.key_intensity:.2f}{sun} amb {lighting.ambient_intensity:.2f} soft {look.shadow_softness:.1f} ae {look.exposure:.2f}"
    if group == "floor":
        g = lighting.ground_color
        return f"ground {g[0]:.2f} {g[1]:.2f} {g[2]:.2f} tex {look.texture_amplitude:.2f}/{100 * look.texture_scale_m:.1f}cm"
    if group == "appearance":
        return f"{look.color_convention} exp {look.exposure:.2f} rub {look.rubber_specular:.2f}/{look.rubber_shininess:.0f} met {look.metal_shininess:.0f}"
    return f"noise {look.noise_sigma:.1f} blur {look.blur_sigma_px:.2f} jpeg {look.jpeg_quality} vig {look.vignetting:.2f}"


def factor_sheets(out_dir, count: int = 8, seed: int = 0, scene_index: int = 8, palette: bool = False) -> list[Path]:
    """Writes dr_<group>.png per factor group: val_id sample `scene_index` under `count` looks."""
    from igllm_ros.data.records import make_record, make_sample, spec_from_record, render_spec
    from igllm_ros.data.render import SceneRenderer
    from igllm_ros.data.sheet import contact_sheet, to_palette

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with SceneRenderer() as renderer:
        _, record = make_sample("val_id", seed, scene_index, renderer)
        base = spec_from_record(record)
        mask, _ = renderer.render_labels(base.scene)
        rng = np.random.default_rng(seed)
        looks, per_rig = [], -(-count // len(RIGS))  # every rig shows up
        while len(looks) < count:
            lighting, look = sample_look(rng)
            if look is not None and sum(lk.rig == look.rig for _, lk in looks) < per_rig:
                looks.append((lighting, look))
        for group in FACTOR_GROUPS:
            samples = []
            for lighting, look in looks:
                spec = replace(base, split="train_robust", **dict(zip(("lighting", "look"), isolate(lighting, look, group))))
                tile_record = make_record(spec, mask, index=scene_index, seed=seed)
                tile_record["id"] = describe(spec.lighting, spec.look, group)
                samples.append((render_spec(spec, renderer), tile_record))
            path = out_dir / f"dr_{group}.png"
            sheet = contact_sheet(samples, cols=4)
            (to_palette(sheet) if palette else sheet).save(path, optimize=True)
            written.append(path)
    return written
