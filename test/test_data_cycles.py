"""The Blender Cycles renderer: same camera and pixels as the moderngl renderer (instance
masks agree), CLEVR's colour convention, clean errors; and its EEVEE twin (val_eevee). Renders for real in .venv-cycles,
which ensure_environment() creates on first use (~1.5 min, a ~520 MB download); the tests
skip only when that environment cannot be created on this machine (or IGLLM_CYCLES_AUTO_SETUP=0
forbids creating it). docs/cycles.md has the figures these thresholds sit under."""
import numpy as np
import pytest

from igllm_ros import world
from igllm_ros.data import cycles, rgb_renderers
from igllm_ros.data.blender_looks import DEFAULT_BLENDER_RANGES as RANGES
from igllm_ros.data.blender_looks import BlenderLook, sample_blender_look
from igllm_ros.data.records import make_sample, render_spec, spec_from_record
from igllm_ros.data.render import SceneRenderer
from igllm_ros.data.sampling import sample_scene
from igllm_ros.scene import Camera, Scene, SceneObject, intrinsics, project

W, H = 320, 240


@pytest.fixture(scope="module")
def cycles_env():
    try:
        return cycles.ensure_environment()
    except cycles.CyclesUnavailable as err:
        pytest.skip(f"the Blender Cycles environment cannot be created here: {err}")


@pytest.fixture(scope="module")
def renderer(cycles_env):
    r = cycles.CyclesRenderer(W, H, samples=8)
    yield r
    r.release()


@pytest.fixture(scope="module")
def reference():
    r = SceneRenderer(W, H)
    yield r
    r.release()


def _obj(shape, color="red", material="rubber", size="large", x=0.0, y=0.0, rotation=0.0):
    return SceneObject(shape, color, material, size, (x, y, world.centre_height(shape, size)), rotation)


def _sampled_scenes(reference, n=4):
    rng = np.random.default_rng(12)
    return [sample_scene(rng, "val_id", W, H, reference).scene for _ in range(n)]


# Apart from each other and off the camera's axis in both directions; a yawed cube, small
# objects and a camera off the nominal pose, so a flip or shift of either axis would show.
SPREAD = Scene(
    objects=(
        _obj("cube", "blue", x=0.10, y=0.08, rotation=30.0),
        _obj("sphere", "yellow", "metal", x=-0.12, y=-0.02),
        _obj("cylinder", "green", size="small", x=0.02, y=-0.13),
        _obj("cube", "gray", "metal", "small", x=-0.05, y=0.14, rotation=-20.0),
        _obj("sphere", "purple", size="small", x=0.14, y=-0.10),
    ),
    camera=Camera(loc=(0.39, -0.34, 0.25)),
)


def _agreement(mask_a, mask_b, n):
    ious = []
    for i in range(n):
        a, b = mask_a == i, mask_b == i
        ious.append((a & b).sum() / max((a | b).sum(), 1))
    return float((mask_a == mask_b).mean()), ious


def test_masks_agree_with_the_moderngl_renderer(renderer, reference):
    for scene in _sampled_scenes(reference) + [SPREAD]:
        mask = renderer.render_mask(scene)
        assert mask.shape == (H, W) and mask.dtype == np.int16
        expected, _ = reference.render_labels(scene)
        agree, ious = _agreement(mask, expected, len(scene.objects))
        assert set(np.unique(mask)) == set(np.unique(expected))
        assert agree >= 0.995, f"masks agree on {agree:.4f} of pixels"  # 0.998 to 0.9996 measured
        assert min(ious) >= 0.9, f"per-object IoU {np.round(ious, 3)}"


def test_masks_line_up_to_a_fraction_of_a_pixel(renderer, reference):
    # pixel agreement alone cannot see half a pixel (it costs only ~0.3 % of the pixels);
    # the centroids of unoccluded objects can: they agree within 0.07 px, half a pixel of
    # principal-point error moves them by ~0.45 px
    mask = renderer.render_mask(SPREAD)
    expected, _ = reference.render_labels(SPREAD)
    for i in range(len(SPREAD.objects)):
        ys, xs = np.nonzero(mask == i)
        ye, xe = np.nonzero(expected == i)
        offset = (xs.mean() - xe.mean(), ys.mean() - ye.mean())
        assert np.all(np.abs(offset) < 0.2), f"object {i}: centroid offset {offset} px"


def test_sphere_masks_match_the_analytic_silhouettes_at_pixel_centres(renderer):
    # independent of moderngl: the ray through each pixel centre (i + 0.5, j + 0.5) meets the sphere
    camera = Camera(loc=(0.36, -0.31, 0.28))
    spheres = (_obj("sphere", x=0.06, y=-0.04), _obj("sphere", "blue", size="small", x=-0.14, y=0.13))
    mask = renderer.render_mask(Scene(objects=spheres, camera=camera))
    k = intrinsics(W, H)
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    rot, t = camera.table_from_optical()
    dirs = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], axis=-1) @ rot.T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    for i, sphere in enumerate(spheres):
        oc = t - np.asarray(sphere.loc)
        analytic = (dirs @ oc) ** 2 - (oc @ oc - world.radius("sphere", sphere.size) ** 2) > 0
        rendered = mask == i
        assert analytic.sum() > 150
        # a 64-gon mesh, inscribed: only pixel centres within ~0.05 px of the outline may differ
        assert (analytic ^ rendered).sum() <= 0.01 * analytic.sum(), (i, (analytic ^ rendered).sum(), analytic.sum())
        assert (rendered & ~analytic).sum() == 0


def test_projected_centres_fall_inside_their_own_cycles_mask(renderer):
    mask = renderer.render_mask(SPREAD)
    opt = SPREAD.camera.to_optical(np.array([o.loc for o in SPREAD.objects]))
    centres = project(opt, intrinsics(W, H))
    assert np.all((centres >= 0) & (centres < (W, H))), centres
    for i, (u, v) in enumerate(centres):
        # pixel floor(u) holds u (pixel i spans [i, i+1)); the whole 3x3 around it is the object
        x, y = int(np.floor(u)), int(np.floor(v))
        assert np.all(mask[y - 1 : y + 2, x - 1 : x + 2] == i), f"object {i} at ({u:.1f}, {v:.1f})"


def test_mask_is_not_flipped_or_shifted_at_the_image_edge(renderer, reference):
    # one small sphere near the top-left corner: a mirrored or half-pixel-shifted camera
    # would move it by many pixels, far beyond the tolerance above
    rot, t = Camera().table_from_optical()
    k = intrinsics(W, H)
    ray = rot @ np.linalg.solve(k, [30.0, 25.0, 1.0])
    r = world.radius("sphere", "small")
    hit = t + ray * (r - t[2]) / ray[2]  # where that pixel's ray meets the plane z = r
    scene = Scene(objects=(SceneObject("sphere", "red", "rubber", "small", tuple(hit), 0.0),))
    mask = renderer.render_mask(scene)
    expected, _ = reference.render_labels(scene)
    ys, xs = np.nonzero(mask == 0)
    assert abs(xs.mean() + 0.5 - 30.0) < 1.0 and abs(ys.mean() + 0.5 - 25.0) < 1.0
    assert (mask == expected).mean() > 0.999


def test_red_rubber_renders_red_in_clevr_linear_convention(cycles_env):
    scene = Scene(objects=(_obj("cube", "red", x=0.0, y=0.0, rotation=10.0),))
    with cycles.CyclesRenderer(96, 72, samples=8) as r:
        rgb = r.render_rgb(scene)
        mask = r.render_mask(scene)
        assert r.last_seconds > 0
    assert rgb.shape == (72, 96, 3) and rgb.dtype == np.uint8
    pixels = rgb[mask == 0].astype(float)
    assert len(pixels) > 100
    red, green, blue = np.median(pixels, axis=0)
    assert red > 1.5 * green and red > 1.5 * blue, (red, green, blue)
    # CLEVR's convention: (173, 35, 35) / 255 is the *linear* albedo, so green comes out at
    # about half of red after the sRGB curve (0.49 measured); read as sRGB it would be ~0.2
    assert 0.35 < green / red < 0.65, (red, green, blue)
    floor = np.median(rgb[mask == -1].astype(float), axis=0)
    assert np.ptp(floor) < 20 and 60 < floor.mean() < 200, floor  # a grey floor, neither black nor white


def test_eevee_draws_the_same_scene_and_pixels_another_way(cycles_env):
    """val_eevee's renderer: EEVEE rasterizes the Cycles stage. The objects land on the same
    pixels (the mask pass is Cycles' either way), keep their colour, and the image is not
    Cycles' image: a second look, not a copy."""
    scene = Scene(objects=(_obj("cube", "red", rotation=10.0), _obj("sphere", "cyan", "metal", x=0.08, y=-0.05)))
    with cycles.CyclesRenderer(96, 72, samples=8) as path_traced, cycles.CyclesRenderer(96, 72, engine="eevee") as raster:
        cycles_rgb, eevee_rgb = path_traced.render_rgb(scene), raster.render_rgb(scene)
        mask = raster.render_mask(scene)
        assert np.array_equal(mask, path_traced.render_mask(scene))
        assert raster._worker is not path_traced._worker  # one Blender process per engine
    assert eevee_rgb.shape == (72, 96, 3) and eevee_rgb.dtype == np.uint8
    red, green, blue = np.median(eevee_rgb[mask == 0].astype(float), axis=0)
    assert red > 1.3 * green and red > 1.3 * blue, (red, green, blue)
    assert np.abs(eevee_rgb.astype(int) - cycles_rgb.astype(int)).mean() > 3.0
    with pytest.raises(ValueError, match="engine"):
        cycles.CyclesRenderer(96, 72, engine="workbench")


def test_the_environment_counts_as_ready_only_with_the_current_stamp(tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    monkeypatch.setenv("IGLLM_CYCLES_VENV", str(venv))
    assert not cycles.environment_ready()  # no stamp
    (venv / ".igllm-cycles-stamp").write_text("0" * 64)
    assert not cycles.environment_ready()  # requirements-cycles.txt or the script changed
    (venv / ".igllm-cycles-stamp").write_text(cycles._inputs_stamp() + "\n")
    assert cycles.environment_ready()


def test_bad_scenes_give_clear_errors(renderer):
    with pytest.raises(ValueError, match="unknown color"):
        renderer.render_rgb(Scene(objects=(_obj("cube", "pink"),)))
    with pytest.raises(ValueError, match="unknown shape"):
        renderer.render_mask(Scene(objects=(SceneObject("cone", "red", "rubber", "large", (0, 0, 0.02)),)))
    with pytest.raises(ValueError, match="image size"):
        cycles.CyclesRenderer(0, 240)
    with pytest.raises(ValueError, match="at most 254"):
        renderer.render_mask(Scene(objects=(_obj("sphere"),) * 255))
    assert np.all(renderer.render_mask(Scene()) == -1)  # an empty (predicted) scene is fine


def test_a_dead_worker_gives_a_clean_error_and_a_new_renderer_recovers(cycles_env):
    scene = Scene(objects=(_obj("sphere"),))
    r = cycles.CyclesRenderer(64, 48, samples=1, private_worker=True)
    r.render_mask(scene)
    r._worker.process.kill()  # as if Blender crashed
    r._worker.process.wait()
    with pytest.raises(cycles.CyclesWorkerError, match="exited"):
        r.render_mask(scene)
    r.release()
    with cycles.CyclesRenderer(64, 48, samples=1, private_worker=True) as again:
        assert (again.render_mask(scene) == 0).sum() > 20


def test_a_missing_environment_without_auto_setup_says_how_to_create_it(tmp_path, monkeypatch):
    monkeypatch.setenv("IGLLM_CYCLES_VENV", str(tmp_path / "no-env"))
    monkeypatch.setenv("IGLLM_CYCLES_AUTO_SETUP", "0")
    assert not cycles.environment_ready()
    with pytest.raises(cycles.CyclesUnavailable, match="make cycles-env"):
        cycles.CyclesRenderer(32, 24, private_worker=True)


def _mask_pixels_in_child(queue):
    with cycles.CyclesRenderer(64, 48, samples=1) as r:
        queue.put(int((r.render_mask(Scene(objects=(_obj("sphere"),))) == 0).sum()))


def test_a_forked_child_starts_its_own_worker_and_leaves_the_parents_alone(renderer):
    import multiprocessing

    before = renderer.render_mask(SPREAD)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_mask_pixels_in_child, args=(queue,))
    child.start()
    pixels = queue.get(timeout=120)
    child.join(timeout=30)
    assert child.exitcode == 0 and pixels > 20
    assert np.array_equal(renderer.render_mask(SPREAD), before)  # the parent's worker still answers


def test_lamp_jitter_is_deterministic_per_seed_and_moves_the_light(cycles_env):
    scene = Scene(objects=(_obj("cube", "gray", rotation=20.0), _obj("sphere", "cyan", "metal", x=0.08, y=-0.05)))
    with cycles.CyclesRenderer(96, 72, samples=4) as r:
        nominal = r.render_rgb(scene).astype(int)
        first, again, other = (r.render_rgb(scene, light_jitter_seed=s).astype(int) for s in (3, 3, 4))
        assert np.array_equal(nominal, r.render_rgb(scene).astype(int))
    assert np.array_equal(first, again)
    assert np.abs(first - nominal).mean() > 0.5 and np.abs(first - other).mean() > 0.5


def test_cycles_looks_are_reproducible_from_the_record_and_change_the_light(cycles_env):
    """train_cycles_looks: the record re-renders its image exactly, and the look is not CLEVR's stage."""
    labels = SceneRenderer(160, 120)
    try:
        for index in range(8):
            rgb, record = make_sample("train_cycles_looks", 0, index, labels)
            spec = spec_from_record(record)
            if spec.look.key_gain != 1.0:  # a randomized draw, not one of the nominal fraction
                break
        again = render_spec(spec, labels)
        clevr_stage = rgb_renderers.blender_renderer("cycles", 160, 120).render_rgb(
            spec.scene, light_jitter_seed=spec.look.lamp_jitter_seed)
    finally:
        labels.release()
        rgb_renderers.release_all()
    assert record["renderer"] == "cycles" and set(record["look"]) == set(BlenderLook().to_dict())
    assert isinstance(spec.look, BlenderLook) and spec.look.key_gain != 1.0
    assert np.array_equal(rgb, again)
    assert np.abs(rgb.astype(int) - clevr_stage.astype(int)).mean() > 2.0


def _chromaticity(pixels: np.ndarray) -> np.ndarray:
    mean = pixels.reshape(-1, 3).astype(float).mean(axis=0)
    return mean / max(mean.sum(), 1e-9)


# The corners of blender_looks' ranges: everything dim, everything bright, and one lamp
# (the warm key or the blue fill) carrying the scene alone.
_LO, _HI = RANGES.lamp_gain
EXTREME_LOOKS = {
    "darkest": BlenderLook(_LO, _LO, _LO, RANGES.sun_gain[0], RANGES.ambient[0], RANGES.floor_albedo[0], RANGES.exposure_stops[0]),
    "brightest": BlenderLook(_HI, _HI, _HI, RANGES.sun_gain[1], RANGES.ambient[1], RANGES.floor_albedo[1], RANGES.exposure_stops[1]),
    "key_only": BlenderLook(_HI, _LO, _LO, RANGES.sun_gain[0], RANGES.ambient[0], 0.33, 1.0),
    "fill_only": BlenderLook(_LO, _HI, _LO, RANGES.sun_gain[0], RANGES.ambient[0], 0.33, 1.0),
}


@pytest.mark.parametrize("material", ["rubber", "metal"])
def test_cycles_looks_keep_every_colour_name_at_the_corners_of_their_ranges(cycles_env, material):
    # One large sphere per colour; at each extreme look, each sphere's chromaticity must be
    # nearest its own colour's under CLEVR's stage (brightness aside, which exposure and
    # lamp power change without renaming anything).
    spheres = tuple(
        _obj("sphere", colour, material, x=-0.12 + 0.08 * (i % 4), y=-0.07 + 0.14 * (i // 4))
        for i, colour in enumerate(world.COLORS)
    )
    scene = Scene(objects=spheres, camera=Camera(loc=(0.0, -0.45, 0.42)))
    with cycles.CyclesRenderer(160, 120, samples=8) as r:
        mask = r.render_mask(scene)
        inside = [mask == i for i in range(len(spheres))]
        assert all(m.sum() >= 40 for m in inside), [int(m.sum()) for m in inside]
        references = [_chromaticity(p) for p in (r.render_rgb(scene)[m] for m in inside)]
        for name, look in EXTREME_LOOKS.items():
            rgb = r.render_rgb(scene, look=look)
            for i, colour in enumerate(world.COLORS):
                seen = _chromaticity(rgb[inside[i]])
                nearest = world.COLORS[int(np.argmin([np.linalg.norm(seen - ref) for ref in references]))]
                assert nearest == colour, (name, colour, nearest)


def test_cycles_looks_vary_and_a_fraction_keeps_clevrs_stage():
    rng = np.random.default_rng(3)
    looks = [sample_blender_look(rng) for _ in range(400)]
    nominal = [lk for lk in looks if lk.key_gain == 1.0]
    assert 0.08 < len(nominal) / len(looks) < 0.25  # RANGES.nominal_fraction 0.15
    assert all(lk.lamp_jitter_seed is not None for lk in looks)
    randomized = [lk for lk in looks if lk.key_gain != 1.0]
    for field, (lo, hi) in (("exposure_stops", RANGES.exposure_stops), ("ambient", RANGES.ambient), ("key_gain", RANGES.lamp_gain)):
        values = np.array([getattr(lk, field) for lk in randomized])
        assert values.min() >= lo and values.max() <= hi and np.ptp(values) > 0.7 * (hi - lo), field
    assert BlenderLook.from_dict(looks[0].to_dict()) == looks[0]
    with pytest.raises(ValueError, match="unknown blender look fields"):
        BlenderLook.from_dict({**looks[0].to_dict(), "gamma": 2.2})


def test_gpu_either_renders_the_same_masks_or_says_there_is_none(renderer):
    try:
        gpu = cycles.CyclesRenderer(W, H, samples=1, device="GPU", private_worker=True)
    except cycles.CyclesUnavailable as err:  # this project's development machine: CPU only
        assert "no GPU" in str(err)
        return
    with gpu:
        assert gpu.device != "CPU"
        agree = (gpu.render_mask(SPREAD) == renderer.render_mask(SPREAD)).mean()
    assert agree > 0.999
