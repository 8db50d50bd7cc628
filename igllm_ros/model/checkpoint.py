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
import math
from pathlib import Path

import torch

from igllm_ros.model_files import card_markdown, state_mismatch

from igllm_ros.model.config import KIND, ModelConfig

FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.md"
CARD_JSON = "card.json"


class ModelLoadError(Exception):
    """A model directory cannot be loaded; the message says what and where."""


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
    config["hf_vision_config"] = model.vision.config.to_dict()
    config["hf_llm_config"] = towers.llm_hf_config(model.llm)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    model.codec.save(directory)
    card = _clean(dict(card or {}))
    card_doc = {"name": model.name, "parameters": model.num_parameters(), **card}
    (directory / CARD_JSON).write_text(json.dumps(card_doc, indent=2) + "\n")
    (directory / CARD_FILE).write_text(_card_markdown(model, card))


def referenced_names(model) -> set[str]:
    """Tensors a save_frozen=False checkpoint leaves out: the frozen parameters of towers
    loaded from pretrained directories (reloaded from those directories)."""
    if model.config.save_frozen:
        return set()
    towers_from_pretrained = []
    if model.config.vision.pretrained_path is not None:
        towers_from_pretrained.append("vision.")
    if model.config.llm.pretrained_path is not None:
        towers_from_pretrained.append("llm.")
    return {
        name
        for name, param in model.named_parameters(remove_duplicate=False)
        if not param.requires_grad and name.startswith(tuple(towers_from_pretrained))
    } if towers_from_pretrained else set()


def _clean(value):
    """JSON-safe card values (NaN and infinities become null)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _card_markdown(model, card: dict) -> str:
    c = model.config
    llm = c.llm.pretrained_path or f"Llama from scratch ({c.llm.layers} layers, hidden {c.llm.hidden})"
    vision = c.vision.pretrained_path or f"CLIP from scratch ({c.vision.layers} layers, hidden {c.vision.hidden}, patch {c.vision.patch})"
    lines = [
        f"# {model.name}",
        "",
        "IG-LLM (Kulits et al. 2024): a CLIP vision tower, a projector and a causal LLM that",
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


def load(path, device="cpu", dtype=torch.float32):
    """A checkpoint directory -> a model in eval mode on `device`. Directories of kind
    "detr_baseline" load through igllm_ros.baseline."""
    directory = Path(path)
    if not directory.is_dir():
        raise ModelLoadError(f"model directory {str(directory)!r} does not exist")
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise ModelLoadError(f"model directory {str(directory)!r} has no {CONFIG_FILE}")
    try:
        raw = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{str(config_path)!r} is not readable JSON: {err}") from err
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{str(config_path)!r} does not hold a JSON object")
    kind = raw.get("kind")
    if kind == "detr_baseline":
        from igllm_ros import baseline

        return baseline.load(directory, device=device, dtype=dtype)
    if kind != KIND:
        raise ModelLoadError(f"{str(config_path)!r} has kind {kind!r}; expected {KIND!r} or 'detr_baseline'")
    return _load_igllm(directory, raw, device, dtype)


def _load_igllm(directory: Path, raw: dict, device, dtype):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from igllm_ros.model import towers
    from igllm_ros.model.igllm import IGLLM
    from igllm_ros.model.vocab import TOKENIZER_DIR, VOCAB_FILE, DomainVocab, TokenizerCodec

    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    raw = dict(raw)
    if raw.pop("format", None) != FORMAT:
        raise ModelLoadError(f"{str(config_path)!r}: unknown checkpoint format; expected {FORMAT}")
    hf_vision, hf_llm = raw.pop("hf_vision_config", None), raw.pop("hf_llm_config", None)
    if not isinstance(hf_vision, dict) or not isinstance(hf_llm, dict):
        raise ModelLoadError(f"{str(config_path)!r} lacks the towers' transformers configs (hf_vision_config, hf_llm_config)")
    try:
        config = ModelConfig.from_dict(raw)
    except (TypeError, ValueError) as err:
        raise ModelLoadError(f"{str(config_path)!r} is not a valid IG-LLM config: {err}") from err
    if not weights_path.is_file():
        raise ModelLoadError(f"model directory {str(directory)!r} has no {WEIGHTS_FILE}")
    try:
        if config.llm.pretrained_path is None:
            if not (directory / VOCAB_FILE).is_file():
                raise ModelLoadError(f"model directory {str(directory)!r} has no {VOCAB_FILE}")
            codec = DomainVocab.load(directory)
        else:
            if not (directory / TOKENIZER_DIR).is_dir():
                raise ModelLoadError(f"model directory {str(directory)!r} has no {TOKENIZER_DIR}/")
            codec = TokenizerCodec.load(directory)
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"cannot read the tokenizer of {str(directory)!r}: {err}") from err
    if config.save_frozen:
        try:
            vision = towers.vision_from_hf_config(hf_vision)
            llm = towers.llm_from_hf_config(hf_llm, config.lora)
            model = IGLLM(config, vision, llm, codec)
        except (TypeError, ValueError, KeyError) as err:
            raise ModelLoadError(f"{str(config_path)!r}: cannot build the model: {err}") from err
    else:
        # The frozen pretrained weights come from the towers' directories again.
        try:
            model = IGLLM(config, towers.build_vision(config), towers.build_llm(config, codec), codec)
        except (OSError, TypeError, ValueError, KeyError) as err:
            raise ModelLoadError(
                f"{str(directory)!r} was saved without its frozen pretrained weights (save_frozen: false) and "
                f"they cannot be loaded from the pretrained directories in its config: {err}"
            ) from err
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(f"{str(weights_path)!r} is not a readable safetensors file: {err}") from err
    _check_state(model, state, weights_path, config_path)
    with torch.no_grad():
        model.load_state_dict(state, strict=False)
    return model.to(device=device, dtype=dtype).eval()


def _check_state(model, state: dict, weights_path: Path, config_path: Path) -> None:
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
