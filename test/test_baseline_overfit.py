"""The baseline can fit: a small one overfits 4 rendered scenes to exact counts, every
attribute right and location error under 10 mm within a bounded number of steps."""
import itertools

import pytest
import torch

from igllm_ros import baseline, metrics

CONFIG = dict(kind="detr_baseline", d_model=64, ffn_dim=128, encoder_layers=1, decoder_layers=2,
              backbone_channels=(16, 32, 64), input_size=(160, 120))
MAX_STEPS = 800
ATTRIBUTES = ("acc_shape_all", "acc_color", "acc_material", "acc_size")


@pytest.mark.slow
def test_baseline_overfits_four_scenes():
    from igllm_ros.data.stream import generate_samples

    stream = generate_samples("train", 0, 160, 120)
    samples = list(itertools.islice(stream, 4))
    stream.close()
    torch.manual_seed(0)
    model = baseline.build(CONFIG)
    optimizer = torch.optim.AdamW(model.param_groups(2e-3, 2e-3, 0.0))
    batch = model.collate(samples)
    images = [s.image for s in samples]
    result = None
    for step in range(1, MAX_STEPS + 1):
        model.train()
        loss, _ = model.training_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            recs = model.reconstruct(images)
            result = metrics.evaluate([(r.scene, s.scene) for r, s in zip(recs, samples)])
            if result["count_exact"] == 1.0 and result["location_error_m"] < 0.01 and all(result[k] == 1.0 for k in ATTRIBUTES):
                break
    assert result["count_exact"] == 1.0, result
    assert all(result[k] == 1.0 for k in ATTRIBUTES), result
    assert result["location_error_m"] < 0.01, result
    assert result["yaw_error_deg"] < 10.0, result
