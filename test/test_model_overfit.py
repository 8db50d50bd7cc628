"""The tiny model overfits a handful of rendered scenes to near-exact reconstruction
(every attribute right, every location within 5 mm) in char and float modes, and with
value feedback: the whole path (collate, loss, numeric head, decoding) fits together."""
import itertools
import math

import numpy as np
import pytest
import torch

from igllm_ros import model as igllm
from igllm_ros.model.grammar import target_scene

pytestmark = pytest.mark.slow

SCENES = 4
CHECK_EVERY = 50


@pytest.fixture(scope="module")
def samples():
    from igllm_ros.data.stream import generate_samples

    size = igllm.tiny_test_config().input_size
    return list(itertools.islice(generate_samples("train", 7, *size), SCENES))


def worst_error(model, samples) -> tuple[bool, float]:
    """(all attributes and counts right, the largest object or camera location error in m)."""
    model.eval()
    results = model.reconstruct([s.image for s in samples])
    model.train()
    worst = 0.0
    for result, sample in zip(results, samples):
        truth = target_scene(sample.scene)
        if [o.attributes() for o in result.scene.objects] != [o.attributes() for o in truth.objects]:
            return False, math.inf
        pairs = [(o.loc, t.loc) for o, t in zip(result.scene.objects, truth.objects)] + [(result.scene.camera.loc, truth.camera.loc)]
        worst = max([worst] + [float(np.linalg.norm(np.subtract(a, b))) for a, b in pairs])
    return True, worst


@pytest.mark.parametrize(
    "changes, steps",
    [({"numbers": "char"}, 400), ({"numbers": "float"}, 600), ({"numbers": "float", "value_feedback": True}, 600)],
    ids=["char", "float", "float-feedback"],
)
def test_tiny_model_overfits_a_few_scenes(samples, changes, steps):
    torch.manual_seed(0)
    model = igllm.build(igllm.tiny_test_config().replace(augment_brightness=0.0, **changes))
    optimizer = torch.optim.AdamW(model.param_groups(3e-3, 3e-3, 0.0))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    batch = model.collate(samples)
    assert sum(len(s.scene.objects) for s in samples) >= 12
    result = (False, math.inf)
    for step in range(1, steps + 1):
        loss, logs = model.training_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % CHECK_EVERY == 0:
            result = worst_error(model, samples)
            if result[0] and result[1] < 0.005:
                break
    exact, worst = result
    assert exact, f"attributes or counts still wrong after {step} steps (loss {logs})"
    assert worst < 0.005, f"worst location error {1000 * worst:.1f} mm after {step} steps (loss {logs})"
