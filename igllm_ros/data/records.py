"""Per-image ground truth as a JSON-ready record, and the Scene back from a record.

One function makes each sample (seeded by (seed, split, index) only), so the dataset
writer, the on-the-fly stream and the tests all produce identical samples.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from igllm_ros import world
from igllm_ros.data.lighting import Lighting
from igllm_ros.data.sampling import SceneSpec, sample_scene_with_labels
from igllm_ros.data.splits import split_id
from igllm_ros.program import format_program
from igllm_ros.scene import Camera, Scene, SceneObject, intrinsics, object_pose_in_optical, project

RECORD_VERSION = 1


def sample_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed of sample `index`: independent of worker count and generation order."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    return np.random.SeedSequence([seed, split_id(split), index])


def make_sample(split: str, seed: int, index: int, renderer) -> tuple[np.ndarray, dict]:
    """(RGB uint8, record) of sample `index` of the split: sampling, render, ground truth."""
    rng = np.random.default_rng(sample_seed(seed, split, index))
    spec, mask, _depth = sample_scene_with_labels(rng, split, renderer.width, renderer.height, renderer)
    rgb = renderer.render_rgb(spec.scene, spec.lighting)
    return rgb, make_record(spec, mask, index=index, seed=seed)


def make_record(spec: SceneSpec, mask: np.ndarray, index: int, seed: int) -> dict:
    scene = spec.scene
    k = intrinsics(spec.width, spec.height)
    rot, t = scene.camera.table_from_optical()
    objects = []
    for i, obj in enumerate(scene.objects):
        position_opt, quat_opt = object_pose_in_optical(obj, scene.camera)
        ys, xs = np.nonzero(mask == i)
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if xs.size else None
        objects.append(
            {
                "index": i,
                "shape": obj.shape,
                "color": obj.color,
                "material": obj.material,
                "size": obj.size,
                "rotation_deg": obj.rotation,
                "loc_table": list(obj.loc),
                "quat_table_xyzw": _floats(Rotation.from_euler("z", obj.rotation, degrees=True).as_quat()),
                "loc_optical": _floats(position_opt),
                "quat_optical_xyzw": _floats(quat_opt),
                "dimensions": list(world.dimensions(obj.shape, obj.size)),
                "centre_px": _floats(project(position_opt[None], k)[0]),
                "bbox_xyxy": box,
                "visible_pixels": int(xs.size),
            }
        )
    return {
        "version": RECORD_VERSION,
        "id": f"{spec.split}_{index:06d}",
        "index": index,
        "split": spec.split,
        "seed": seed,
        "width": spec.width,
        "height": spec.height,
        "program": format_program(scene),
        "camera": {
            "loc": list(scene.camera.loc),
            "K": _floats(k),
            "table_from_optical": {"R": _floats(rot), "t": _floats(t)},
        },
        "lighting": spec.lighting.to_dict(),
        "objects": objects,
    }


def scene_from_record(record: dict) -> Scene:
    try:
        objects = tuple(
            SceneObject(o["shape"], o["color"], o["material"], o["size"], tuple(o["loc_table"]), o["rotation_deg"])
            for o in record["objects"]
        )
        return Scene(objects=objects, camera=Camera(loc=tuple(record["camera"]["loc"])))
    except (KeyError, TypeError) as err:
        raise ValueError(f"malformed scene record {record.get('id', '?') if isinstance(record, dict) else record!r}: {err!r}") from err


def spec_from_record(record: dict) -> SceneSpec:
    """What re-renders the record's image exactly."""
    return SceneSpec(
        scene=scene_from_record(record),
        lighting=Lighting.from_dict(record["lighting"]),
        split=record["split"],
        width=record["width"],
        height=record["height"],
    )


def _floats(a) -> list:
    return np.asarray(a, dtype=float).tolist()
