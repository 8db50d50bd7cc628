"""The renderer: projection matches scene.project exactly, masks/depth are right, the look
separates materials, and any (predicted) scene renders."""
import numpy as np
import pytest

from igllm_ros import world
from igllm_ros.data.lighting import NOMINAL, VISUAL_SHIFT
from igllm_ros.data.render import Render, SceneRenderer
from igllm_ros.data.sampling import sample_scene
from igllm_ros.scene import Camera, Scene, SceneObject, intrinsics, project


@pytest.fixture(scope="module")
def renderer():
    r = SceneRenderer(320, 240)
    yield r
    r.release()


def _obj(shape, color="red", material="rubber", size="large", x=0.0, y=0.0, rotation=0.0):
    return SceneObject(shape, color, material, size, (x, y, world.centre_height(shape, size)), rotation)


def _pixel_rays(width, height, camera):
    """Unit-z rays (optical frame) through every pixel centre, and their table-frame directions."""
    k = intrinsics(width, height)
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], axis=-1)
    rot, t = camera.table_from_optical()
    return rays, rays @ rot.T, t


def test_outputs_have_the_promised_types(renderer):
    out = renderer.render(Scene(objects=(_obj("cube"),)))
    assert isinstance(out, Render)
    assert out.rgb.shape == (240, 320, 3) and out.rgb.dtype == np.uint8
    assert out.mask.shape == (240, 320) and out.mask.dtype == np.int16
    assert out.depth.shape == (240, 320) and out.depth.dtype == np.float32
    assert set(np.unique(out.mask)) == {-1, 0}


def test_ground_depth_matches_the_pinhole_model_at_every_pixel(renderer):
    # Every ground pixel's depth must be where the ray through that pixel's centre (K and
    # Camera.table_from_optical) meets z = 0: checks the projection, the y flip and the
    # pixel-centre convention everywhere in the image.
    camera = Camera(loc=(0.36, -0.34, 0.25))
    out = renderer.render(Scene(camera=camera))
    rays, dirs, t = _pixel_rays(320, 240, camera)
    z_expected = -t[2] / dirs[..., 2]  # optical z of the hit, since rays have unit z
    ground = out.mask == -1
    assert ground.all()
    np.testing.assert_allclose(out.depth, z_expected, rtol=2e-4)


def test_sphere_mask_matches_the_analytic_silhouette(renderer):
    camera = Camera()
    sphere = _obj("sphere", x=0.03, y=-0.02)
    out = renderer.render(Scene(objects=(sphere,), camera=camera))
    rays, dirs, t = _pixel_rays(320, 240, camera)
    dirs = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    oc = t - np.asarray(sphere.loc)
    b = dirs @ oc
    disc = b**2 - (oc @ oc - world.radius("sphere", "large") ** 2)
    analytic = disc > 0
    rendered = out.mask == 0
    assert analytic.sum() > 1000
    # Only a thin rim may differ (the mesh is a 24-gon in each direction).
    assert (analytic ^ rendered).sum() < 0.06 * analytic.sum()
    assert (rendered & ~analytic).sum() == 0  # the mesh is inscribed: never larger


def test_sampled_objects_project_their_centres_into_their_own_masks(renderer):
    rng = np.random.default_rng(7)
    k = intrinsics(320, 240)
    checked = 0
    for split in ("train", "val_cogent_b", "val_param", "val_visual"):
        for _ in range(3):
            spec = sample_scene(rng, split, renderer=renderer)
            scene = spec.scene
            centres_opt = scene.camera.to_optical(np.array([o.loc for o in scene.objects]))
            uv = project(centres_opt, k)
            full = renderer.render(scene, spec.lighting)
            for i, obj in enumerate(scene.objects):
                u, v = (int(np.floor(c)) for c in uv[i])
                # alone: the centre is always inside the object's own silhouette
                alone = renderer.render_labels(Scene(objects=(obj,), camera=scene.camera))[0]
                assert alone[v, u] == 0, (split, obj)
                # in the scene: inside its own mask, or hidden by something nearer
                if full.mask[v, u] != i:
                    assert full.mask[v, u] >= 0 and full.depth[v, u] < centres_opt[i, 2]
                checked += 1
    assert checked > 20


def test_rendering_is_deterministic(renderer):
    rng = np.random.default_rng(3)
    spec = sample_scene(rng, "train", renderer=renderer)
    a = renderer.render(spec.scene, spec.lighting)
    b = renderer.render(spec.scene, spec.lighting)
    assert a.rgb.tobytes() == b.rgb.tobytes() and a.mask.tobytes() == b.mask.tobytes()


def test_rgb_is_antialiased(renderer):
    out = renderer.render(Scene(objects=(_obj("cube", color="yellow", rotation=20.0),)))
    edge = (out.mask == 0) ^ np.roll(out.mask == 0, 1, axis=1)
    inside, outside = out.rgb[(out.mask == 0)].mean(0), out.rgb[out.mask == -1].mean(0)
    # some edge pixels are blends, neither the object's nor the ground's colour
    blends = [px for px in out.rgb[edge].astype(float) if np.abs(px - inside).max() > 20 and np.abs(px - outside).max() > 20]
    assert len(blends) >= 5


def _luma(rgb):
    return rgb.astype(float) @ [0.299, 0.587, 0.114]


@pytest.mark.parametrize("shape", world.SHAPES)
def test_metal_and_rubber_look_different(renderer, shape):
    looks = {}
    for material in world.MATERIALS:
        out = renderer.render(Scene(objects=(_obj(shape, color="blue", material=material, rotation=25.0),)))
        looks[material] = _luma(out.rgb)[out.mask == 0]
    # metal mirrors a dark ground and a bright sky: darker overall and far more contrast
    # relative to its brightness than the smoothly shaded rubber
    contrast = {m: v.std() / v.mean() for m, v in looks.items()}
    assert contrast["metal"] > 1.5 * contrast["rubber"], contrast
    assert looks["metal"].mean() < looks["rubber"].mean()


def test_visual_shift_changes_the_look_not_the_labels(renderer):
    scene = Scene(objects=(_obj("sphere", x=-0.05), _obj("cylinder", color="cyan", x=0.06)))
    a, b = renderer.render(scene, NOMINAL), renderer.render(scene, VISUAL_SHIFT)
    assert np.array_equal(a.mask, b.mask)
    ground = a.mask == -1
    assert np.abs(a.rgb[ground].mean(0) - b.rgb[ground].mean(0)).max() > 25


def test_any_predicted_scene_renders(renderer):
    # more objects than the world allows, off the table, floating, overlapping, odd yaw
    objects = tuple(_obj("cube", x=0.1 * (i % 5) - 0.2, y=0.1 * (i // 5) - 0.2, rotation=97.0 * i) for i in range(25))
    objects += (SceneObject("sphere", "gray", "metal", "small", (0.0, -0.05, 0.12)),)
    out = renderer.render(Scene(objects=objects))
    assert out.rgb.shape == (240, 320, 3)
    assert out.mask.max() == 25  # the floating sphere, drawn last, in front


def test_other_sizes_render_and_bad_sizes_fail():
    with SceneRenderer(160, 120) as small:
        out = small.render(Scene(objects=(_obj("sphere"),)))
        assert out.rgb.shape == (120, 160, 3) and (out.mask == 0).sum() > 100
    with pytest.raises(ValueError, match="positive"):
        SceneRenderer(0, 240)
