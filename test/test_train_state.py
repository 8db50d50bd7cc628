"""Pieces of exact resume: the data order from a position, optimizer and RNG state round trips."""
import random

import numpy as np
import pytest
import torch

from igllm_ros.model.training import state as ckpt
from igllm_ros.model.training.data import EndlessShuffledSampler, generator_start, stream_seed
from igllm_ros.model.training.log import JsonlLog, read_log


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_sampler_restarted_at_a_position_continues_the_same_order():
    full = take(iter(EndlessShuffledSampler(7, seed=3)), 30)
    for start in (0, 5, 7, 13):
        assert take(iter(EndlessShuffledSampler(7, seed=3, start=start)), 30 - start) == full[start:]
    for epoch in range(4):  # every epoch is a permutation of the whole dataset
        assert sorted(full[7 * epoch : 7 * epoch + 7]) == list(range(7))
    assert full[:7] != full[7:14]  # epochs are reshuffled
    assert take(iter(EndlessShuffledSampler(7, seed=4)), 30) != full
    with pytest.raises(ValueError, match="empty"):
        EndlessShuffledSampler(0, seed=0)


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_generator_resumes_past_every_drawn_scene_and_exactly_without_workers(workers):
    batch = 4
    n = max(1, workers)
    for done in range(0, 12):
        # The DataLoader takes batches round-robin; worker w renders indices w, w + n, ...
        drawn = set()
        for b in range(done):
            w, k = b % n, b // n
            drawn |= {w + n * (k * batch + j) for j in range(batch)}
        start = generator_start(done, batch, workers)
        assert all(i < start for i in drawn)
        assert start - len(drawn) <= (n - 1) * batch
        if n == 1:
            assert start == done * batch


def test_stream_seed_depends_on_seed_and_step():
    seeds = {stream_seed(s, step) for s in (0, 1) for step in (0, 1, 1000)}
    assert len(seeds) == 6 and stream_seed(0, 5) == stream_seed(0, 5)


def _adam_after_steps(steps: int):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(
        [{"params": net[0].parameters(), "lr": 1e-2}, {"params": net[2].parameters(), "lr": 3e-2, "weight_decay": 0.0}]
    )
    for _ in range(steps):
        net(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    return net, opt


def test_optimizer_state_round_trips_through_safetensors_and_json():
    net, opt = _adam_after_steps(3)
    tensors, meta = ckpt._flatten_optimizer(opt.state_dict())
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    import json

    meta = json.loads(json.dumps(meta))  # what state.json holds
    fresh_net, fresh_opt = _adam_after_steps(0)
    fresh_net.load_state_dict(net.state_dict())
    fresh_opt.load_state_dict(ckpt._unflatten_optimizer(tensors, meta))
    for a, b in zip(opt.param_groups, fresh_opt.param_groups):
        assert {k: v for k, v in a.items() if k != "params"} == {k: v for k, v in b.items() if k != "params"}
    # Both continue identically.
    x = torch.randn(5, 4)
    for model, optimizer in ((net, opt), (fresh_net, fresh_opt)):
        model(x).pow(2).mean().backward()
        optimizer.step()
    for p, q in zip(net.parameters(), fresh_net.parameters()):
        assert torch.equal(p, q)


def test_rng_capture_restore_replays_every_generator():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.normal()  # leaves a cached gaussian in numpy's legacy state
    tensors, meta = ckpt.capture_rng()
    first = (random.random(), np.random.normal(), torch.rand(3))
    ckpt.restore_rng(tensors, meta)
    second = (random.random(), np.random.normal(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


def test_trainable_state_holds_trainable_parameters_and_buffers_only():
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    net[0].weight.requires_grad_(False)
    state = ckpt.trainable_state(net)
    assert "0.weight" not in state and "0.bias" in state
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked", "2.weight"} <= set(state)
    assert all(t.is_contiguous() and t.device.type == "cpu" for t in state.values())


def test_log_resume_drops_records_past_the_checkpoint(tmp_path):
    path = tmp_path / "log.jsonl"
    log = JsonlLog(path)
    for step in (10, 20, 30):
        log.write({"step": step, "loss": 1.0 / step, "nan_value": float("nan")})
    with path.open("a") as f:
        f.write('{"step": 40, "loss"')  # torn by a kill
    JsonlLog(path, resume_step=20).write({"step": 30, "loss": 0.5})
    records = read_log(path)
    assert [r["step"] for r in records] == [10, 20, 30] and records[-1]["loss"] == 0.5
    assert records[0]["nan_value"] is None
    JsonlLog(path)  # a fresh run starts an empty log
    assert read_log(path) == []
