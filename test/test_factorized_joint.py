"""factorized_joint: an add-line head's logit is the sum of its attribute values' logits, so
the model can write a shape-colour pair it never saw (CoGenT B) with the parts it learned."""
import itertools

import torch

from igllm_ros.model.config import LLMConfig, ModelConfig, VisionConfig
from igllm_ros.model.igllm import build
from igllm_ros.model.vocab import head_text


def _config(factorized: bool) -> ModelConfig:
    return ModelConfig(
        name="fj", input_size=(64, 48), factorized_joint=factorized,
        vision=VisionConfig(hidden=32, layers=1, heads=2, intermediate=64, patch=16, feature_layer=-1),
        llm=LLMConfig(hidden=32, layers=1, heads=2, kv_heads=2, intermediate=64, max_positions=256),
    )


def test_a_head_scores_as_the_sum_of_its_attribute_values():
    torch.manual_seed(0)
    model = build(_config(True)).eval()
    hidden = torch.randn(3, 32)
    logits = model.logits(hidden)
    plain = model.llm.get_output_embeddings()(hidden)
    enc = model.codec.encode
    for values in [("cube", "red", "metal", "large"), ("cylinder", "gray", "rubber", "small")]:
        head = enc(head_text(*values))[0]
        expected = sum(plain[:, enc(v)[0]] for v in values)
        assert torch.allclose(logits[:, head], expected, atol=1e-5)
    assert torch.equal(logits[:, enc("cube")[0]], plain[:, enc("cube")[0]])  # other tokens as they were


def test_training_on_condition_a_raises_an_unseen_pair_with_its_parts():
    """Train only on heads of (cube, blue) and (cylinder, red); the unseen (cube, red) head
    gains as much as its parts did, which a free per-head logit never does."""
    torch.manual_seed(0)
    for factorized, expect_gain in ((True, True), (False, False)):
        model = build(_config(factorized))
        enc = model.codec.encode
        seen = [enc(head_text("cube", "blue", "rubber", "large"))[0], enc(head_text("cylinder", "red", "rubber", "large"))[0]]
        unseen = enc(head_text("cube", "red", "rubber", "large"))[0]
        hidden = torch.randn(64, 32)
        before = model.logits(hidden)[:, unseen].mean().item()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for _, target in zip(range(30), itertools.cycle(seen)):
            loss = torch.nn.functional.cross_entropy(model.logits(hidden), torch.full((64,), target))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        gain = model.logits(hidden)[:, unseen].mean().item() - before
        assert (gain > 1.0) == expect_gain, (factorized, gain)
