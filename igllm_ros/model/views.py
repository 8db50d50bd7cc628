"""The training views of a dataset image against CoGenT's shortcuts (issue 11).

Each view shows an image of the dataset in another way and masks the loss of the one
attribute it makes unreadable or untrue (IGLLM._token_nll marginalises it out), so no
label ever names an unseen shape-colour pair:

| view | the image | masked | config |
|---|---|---|---|
| colour | as rendered | nothing | |
| gray | its BT.601 luma | colour | model.gray_fraction |
| recolour | every object in a random colour of its own | colour | model.recolour_fraction |
| reshape | the scene re-rendered (moderngl) with every object in a random shape | shape | model.reshape_fraction |

Recolouring needs the instance masks and reshaping the renderer: both re-render the
scene (masks only, or the whole image with the record's lights, look and sensor), so
these two views exist for cached features only (feature_cache.py). Their random draws
are seeded by image index, so a rebuilt cache is the same.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from igllm_ros import world
from igllm_ros.images import grayscale, recolour_objects
from igllm_ros.scene import Scene

MASKED = {"colour": None, "gray": "color", "recolour": "color", "reshape": "shape"}  # view -> masked attribute
VIEWS = tuple(MASKED)
FRACTION_OF = {"gray": "gray_fraction", "recolour": "recolour_fraction", "reshape": "reshape_fraction"}
RENDERED = ("recolour", "reshape")  # views that re-render the scene: cached features only
RECOLOUR_SEED = 20261201  # image i's colours: rng([RECOLOUR_SEED, i])
RESHAPE_SEED = 20261202  # image i's shapes: rng([RESHAPE_SEED, i])


def extra_views(config) -> dict[str, float]:
    """{view: fraction of training draws} of a ModelConfig's masked views in use, in VIEWS order."""
    fractions = {view: getattr(config, FRACTION_OF[view]) for view in VIEWS[1:]}
    return {view: f for view, f in fractions.items() if f > 0}


def masked_attributes(config) -> set[str]:
    """The attributes ("color", "shape") that a ModelConfig's views in use mask."""
    return {MASKED[view] for view in extra_views(config)}


def reshaped_scene(scene: Scene, rng: np.random.Generator) -> Scene:
    """The scene with every object in a random shape: same place on the table, size,
    colour and material; standing on the table (its centre height); a cube's yaw kept
    (a new cube gets a random one, other shapes none). The shapes' footprints are the
    same (world.radius), so no two objects come to overlap."""
    objects = []
    for obj in scene.objects:
        shape = str(rng.choice(world.SHAPES))
        yaw = obj.rotation if obj.shape == "cube" else rng.uniform(-45.0, 45.0)
        loc = (obj.loc[0], obj.loc[1], world.centre_height(shape, obj.size))
        objects.append(dataclasses.replace(obj, shape=shape, loc=loc, rotation=world.canonical_yaw_deg(shape, yaw)))
    return dataclasses.replace(scene, objects=tuple(objects))


def view_scene(view: str, scene: Scene, index: int) -> Scene:
    """The scene a view of image `index` shows (its labels)."""
    _check(view)
    return reshaped_scene(scene, np.random.default_rng([RESHAPE_SEED, index])) if view == "reshape" else scene


def view_images(view: str, dataset):
    """index -> the image of that view of a SceneDataset's image. Views that render have a
    .release() for their renderers."""
    _check(view)
    if view == "colour":
        return lambda i: dataset[i].image
    if view == "gray":
        return lambda i: grayscale(dataset[i].image)
    from igllm_ros.data.render import SceneRenderer

    renderers = {}

    def renderer(width: int, height: int):
        if (width, height) not in renderers:
            renderers[width, height] = SceneRenderer(width, height)
        return renderers[width, height]

    def release() -> None:  # the renderers' GL contexts, when the caller is done
        for r in renderers.values():
            r.release()
        renderers.clear()

    if view == "recolour":
        def recoloured(i: int) -> np.ndarray:
            sample = dataset[i]
            height, width = sample.image.shape[:2]
            mask, _ = renderer(width, height).render_labels(sample.scene)
            return recolour_objects(sample.image, mask, np.random.default_rng([RECOLOUR_SEED, i]))

        recoloured.release = release
        return recoloured

    from igllm_ros.data.records import render_spec, spec_from_record

    def reshaped(i: int) -> np.ndarray:
        spec = spec_from_record(dataset.record(i))
        spec = dataclasses.replace(spec, scene=view_scene("reshape", spec.scene, i))
        # moderngl draws every reshaped view, a Cycles image's too (its look is then the
        # nominal one): the view is there to mask shape, and Cycles would cost ~1 s an image
        return render_spec(spec, renderer(spec.width, spec.height), rgb_renderer="moderngl")

    reshaped.release = release
    return reshaped


def _check(view: str) -> None:
    if view not in MASKED:
        raise ValueError(f"feature view {view!r}; expected one of {VIEWS}")
