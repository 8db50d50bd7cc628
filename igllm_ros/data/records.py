"""Per-image ground truth as a JSON-ready record, and the Scene back from a record.

One function makes each sample (seeded by (seed, split, index) only), so the dataset
writer, the on-the-fly stream and the tests all produce identical samples.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from igllm_ros import world
from igllm_ros.data.blender_looks import BlenderLook
from igllm_ros.data.lighting import Lighting
from igllm_ros.data.randomization import Look
from igllm_ros.data.rgb_renderers import BLENDER_RENDERERS, blender_renderer
from igllm_ros.data.sampling import SceneSpec, sample_scene_with_labels
from igllm_ros.data.sensor import apply_sensor
from igllm_ros.data.splits import split_id, split_rule
from igllm_ros.program import format_program
from igllm_ros.scene import Camera, Scene, SceneObject, intrinsics, project

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
    return render_spec(spec, renderer), make_record(spec, mask, index=index, seed=seed)


def render_spec(spec: SceneSpec, renderer, rgb_renderer: str | None = None) -> np.ndarray:
    """The sample's RGB image: by the split's RGB renderer (or `rgb_renderer`: "moderngl"
    draws a Blender split's scene with `renderer` instead), with the look's sensor effects."""
    which = rgb_renderer or split_rule(spec.split).renderer
    blender_look = spec.look if isinstance(spec.look, BlenderLook) else None
    if which in BLENDER_RENDERERS:
        return blender_renderer(which, spec.width, spec.height).render_rgb(spec.scene, look=blender_look)
    look = None if blender_look else spec.look  # moderngl draws a Blender look's scene in its nominal look
    return apply_sensor(renderer.render_rgb(spec.scene, spec.lighting, look), look)


def make_record(spec: SceneSpec, mask: np.ndarray, index: int, seed: int) -> dict:
    scene = spec.scene
    k = intrinsics(spec.width, spec.height)
    rot, t = scene.camera.table_from_optical()  # once per scene: it is not free
    n = len(scene.objects)
    locs = np.array([o.loc for o in scene.objects], dtype=float).reshape(n, 3)
    centres_opt = (locs - t) @ rot  # as Camera.to_optical
    table_from_object = Rotation.from_euler("z", [[o.rotation] for o in scene.objects], degrees=True)
    quats_table = table_from_object.as_quat().reshape(n, 4)
    # as scene.object_pose_in_optical, all objects at once (a test holds them equal)
    quats_opt = (Rotation.from_matrix(rot.T) * table_from_object).as_quat().reshape(n, 4)
    centres_px = project(centres_opt, k) if n else np.zeros((0, 2))
    visible = np.bincount(mask[mask >= 0].ravel(), minlength=n)
    boxes = ndimage.find_objects(mask.astype(np.int32) + 1, max_label=n)  # boxes[i]: label i + 1 = object i
    objects = []
    for i, obj in enumerate(scene.objects):
        box = boxes[i]
        objects.append(
            {
                "index": i,
                "shape": obj.shape,
                "color": obj.color,
                "material": obj.material,
                "size": obj.size,
                "rotation_deg": obj.rotation,
                "loc_table": list(obj.loc),
                "quat_table_xyzw": quats_table[i].tolist(),
                "loc_optical": centres_opt[i].tolist(),
                "quat_optical_xyzw": quats_opt[i].tolist(),
                "dimensions": list(world.dimensions(obj.shape, obj.size)),
                "centre_px": centres_px[i].tolist(),
                "bbox_xyxy": None if box is None else [box[1].start, box[0].start, box[1].stop, box[0].stop],
                "visible_pixels": int(visible[i]),
            }
        )
    record = {
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
            "K": k.tolist(),
            "table_from_optical": {"R": rot.tolist(), "t": t.tolist()},
        },
        "lighting": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.lighting.to_dict().items()},
        "objects": objects,
    }
    if split_rule(spec.split).randomize:  # only randomized splits: the others' records stay as they were
        record["look"] = None if spec.look is None else spec.look.to_dict()
    if split_rule(spec.split).renderer != "moderngl":
        record["renderer"] = split_rule(spec.split).renderer
    return record


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
        look=_look_from_dict(record["split"], record.get("look")),
    )


def _look_from_dict(split: str, look: dict | None):
    if not look:
        return None
    return BlenderLook.from_dict(look) if split_rule(split).renderer in BLENDER_RENDERERS else Look.from_dict(look)
