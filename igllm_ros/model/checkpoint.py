"""IG-LLM checkpoints: one self-contained directory.

    config.json        {"kind": "igllm", ...ModelConfig..., "format": 1,
                        "hf_vision_config": {...}, "hf_llm_config": {...}}
    model.safetensors  every tensor of the model (LoRA adapters unmerged beside the base
                       weights), written and read with safetensors only (no pickle)
    vocab.json         the domain vocabulary (from-scratch LLM), or
    tokenizer/         the pretrained LLM's tokenizer with `<num>` added
    card.md, card.json what the model is, its training data and metrics

The transformers configs of both towers are stored, so loading rebuilds the exact
architecture without the pretrained directories or GGUF file it was made from. With
save_frozen: false the frozen weights of pretrained towers are left out and reloaded from
those directories (named in config.json), which must then exist at load time.
"""
from __future__ import annotations

import json
from pathlib import Path

from igllm_ros.model.config import KIND, ModelConfig
from igllm_ros.model_files import card_markdown, state_mismatch
from igllm_ros.reconstruction import CARD_FILE, CARD_JSON, CONFIG_FILE, WEIGHTS_FILE, ModelLoadError
from igllm_ros.strict_json import json_ready

FORMAT = 1


def save(model, directory, card: dict | None = None) -> None:
    from safetensors.torch import save_file

    from igllm_ros.model import towers

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {}
    seen = {}
    referenced = referenced_names(model)
    for name, tensor in model.state_dict().items():
        if name in referenced:
            continue
        # Tied weights (the LM head and input embeddings) are stored once.
        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.dtype) if tensor.numel() else None
        if key is not None and key in seen:
            continue
        if key is not None:
            seen[key] = name
        state[name] = tensor.detach().to("cpu").contiguous()
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"kind": KIND, "format": str(FORMAT)})
    config = model.config.to_dict()
    config["format"] = FORMAT
    config["hf_vision_config"] = vision_saved_config(model)
    config["hf_llm_config"] = towers.llm_hf_config(model.llm)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    model.codec.save(directory)
    card = json_ready(dict(card or {}))
    card_doc = {"name": model.name, "parameters": model.num_parameters(), **card}
    (directory / CARD_JSON).write_text(json.dumps(card_doc, indent=2) + "\n")
    (directory / CARD_FILE).write_text(_card_markdown(model, card))


def referenced_names(model) -> set[str]:
    """Tensors a save_frozen=False checkpoint leaves out: the frozen parameters of towers
    loaded from pretrained directories (reloaded from those directories)."""
    if model.config.save_frozen:
        return set()
    towers_from_pretrained = []
    if model.config.vision.loads_pretrained:
        towers_from_pretrained.append("vision.")
    if model.config.llm.pretrained_path is not None:
        towers_from_pretrained.append("llm.")
    return {
        name
        for name, param in model.named_parameters(remove_duplicate=False)
        if not param.requires_grad and name.startswith(tuple(towers_from_pretrained))
    } if towers_from_pretrained else set()


def _card_markdown(model, card: dict) -> str:
    c = model.config
    llm = c.llm.pretrained_path or f"Llama from scratch ({c.llm.layers} layers, hidden {c.llm.hidden})"
    if c.init_from:
        llm += f", initialised from {c.init_from} (matching tensors)"
    vision = c.vision.describe()
    lines = [
        f"# {model.name}",
        "",
        "IG-LLM (Kulits et al. 2024): a vision tower, a projector and a causal LLM that",
        "writes the scene program (docs/scene_language.md). See docs/model.md.",
        "",
        f"- numbers: {c.numbers}{' with value feedback' if c.value_feedback else ''}",
        f"- vision: {vision}",
        f"- projector: {c.projector}",
        f"- LLM: {llm}{f' + LoRA r={c.lora.r} alpha={c.lora.alpha}' if c.lora else ''}",
        f"- parameters: {model.num_parameters():,}",
        f"- input size (w, h): {model.input_size[0]} x {model.input_size[1]} ({model.image_tokens} image tokens)",
        f"- files: {CONFIG_FILE}, {WEIGHTS_FILE} (safetensors), {'vocab.json' if model.codec.kind == 'domain' else 'tokenizer/'}",
    ]
    return card_markdown(lines, card)


# The vision tower's part of a checkpoint: the tower registry's description of its kind
# and architecture (igllm_ros.model.vision), rebuilt from it, or from the pretrained
# weights again with save_frozen: false. Older checkpoints hold a bare CLIP config.
def vision_saved_config(model) -> dict:
    from igllm_ros.model import vision

    return vision.saved_config(model.vision)


def vision_from_saved(saved: dict, config: ModelConfig):
    from igllm_ros.model import vision

    return vision.tower_from_saved(saved if "kind" in saved else vision.legacy_saved(saved), config)


def vision_from_pretrained(config: ModelConfig):
    from igllm_ros.model import vision

    return vision.build_tower(config)


def check_state(model, state: dict, weights_path: Path, config_path: Path) -> None:
    referenced = referenced_names(model)
    expected = {k: v for k, v in model.state_dict().items() if k not in referenced}
    # Tied weights are stored once, under whichever name came first.
    tied = _tied_names(model)
    missing = sorted(k for k in set(expected) - set(state) if not (tied.get(k, set()) & set(state)))
    problem = state_mismatch(state, expected, missing)
    if problem:
        raise ModelLoadError(f"{str(weights_path)!r} does not match {str(config_path)!r}: {problem}")


def _tied_names(model) -> dict[str, set[str]]:
    by_storage: dict[tuple, set[str]] = {}
    for name, tensor in model.state_dict().items():
        if tensor.numel():
            by_storage.setdefault((tensor.data_ptr(), tuple(tensor.shape), tensor.dtype), set()).add(name)
    return {name: names - {name} for names in by_storage.values() for name in names}
