"""Reading an IG-LLM checkpoint directory (the format is in igllm_ros.model.checkpoint,
which writes it) back into a model. Apart from checkpoint.py because it needs the model
class, whose save() needs checkpoint.py: one direction each, no import circle."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from igllm_ros.model import checkpoint, towers
from igllm_ros.model.config import KIND, ModelConfig
from igllm_ros.model.igllm import IGLLM
from igllm_ros.model_files import read_config
from igllm_ros.reconstruction import CONFIG_FILE, WEIGHTS_FILE, ModelLoadError


def load(path, device="cpu", dtype=torch.float32) -> IGLLM:
    """An IG-LLM checkpoint directory -> the model in eval mode on `device`. Any kind of
    model directory loads through igllm_ros.model_kinds.load."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(path)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    config, hf_vision, hf_llm = _read_config(directory)
    if not weights_path.is_file():
        raise ModelLoadError(f"model directory {str(directory)!r} has no {WEIGHTS_FILE}")
    model = _build(directory, config, hf_vision, hf_llm, _read_codec(directory, config))
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(f"{str(weights_path)!r} is not a readable safetensors file: {err}") from err
    checkpoint.check_state(model, state, weights_path, config_path)
    with torch.no_grad():
        model.load_state_dict(state, strict=False)
    return model.to(device=device, dtype=dtype).eval()


def _read_config(directory: Path) -> tuple[ModelConfig, dict, dict]:
    """(ModelConfig, the vision tower's saved config, the LLM's transformers config)."""
    config_path = directory / CONFIG_FILE
    raw = dict(read_config(directory, KIND))
    if raw.pop("format", None) != checkpoint.FORMAT:
        raise ModelLoadError(f"{str(config_path)!r}: unknown checkpoint format; expected {checkpoint.FORMAT}")
    hf_vision, hf_llm = raw.pop("hf_vision_config", None), raw.pop("hf_llm_config", None)
    if not isinstance(hf_vision, dict) or not isinstance(hf_llm, dict):
        raise ModelLoadError(f"{str(config_path)!r} lacks the towers' transformers configs (hf_vision_config, hf_llm_config)")
    try:
        return ModelConfig.from_dict(raw), hf_vision, hf_llm
    except (TypeError, ValueError) as err:
        raise ModelLoadError(f"{str(config_path)!r} is not a valid IG-LLM config: {err}") from err


def _read_codec(directory: Path, config: ModelConfig):
    from igllm_ros.model.vocab import TOKENIZER_DIR, VOCAB_FILE, DomainVocab, TokenizerCodec

    try:
        if config.llm.pretrained_path is None:
            if not (directory / VOCAB_FILE).is_file():
                raise ModelLoadError(f"model directory {str(directory)!r} has no {VOCAB_FILE}")
            return DomainVocab.load(directory)
        if not (directory / TOKENIZER_DIR).is_dir():
            raise ModelLoadError(f"model directory {str(directory)!r} has no {TOKENIZER_DIR}/")
        return TokenizerCodec.load(directory)
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"cannot read the tokenizer of {str(directory)!r}: {err}") from err


def _build(directory: Path, config: ModelConfig, hf_vision: dict, hf_llm: dict, codec) -> IGLLM:
    """The architecture the checkpoint was saved from, with untrained weights."""
    if config.save_frozen:
        try:
            vision = checkpoint.vision_from_saved(hf_vision, config)
            return IGLLM(config, vision, towers.llm_from_hf_config(hf_llm, config.lora), codec)
        except (TypeError, ValueError, KeyError) as err:
            raise ModelLoadError(f"{str(directory / CONFIG_FILE)!r}: cannot build the model: {err}") from err
    # The frozen pretrained weights come from the towers' directories again.
    try:
        return IGLLM(config, checkpoint.vision_from_pretrained(config), towers.build_llm(config, codec), codec)
    except (OSError, TypeError, ValueError, KeyError) as err:
        raise ModelLoadError(
            f"{str(directory)!r} was saved without its frozen pretrained weights (save_frozen: false) and "
            f"they cannot be loaded from the pretrained directories in its config: {err}"
        ) from err
