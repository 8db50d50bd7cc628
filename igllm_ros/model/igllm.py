"""IGLLM: vision tower -> projector -> causal LLM writing the scene program, with a numeric
head for float-mode numbers. The training protocol (collate, training_loss, param_groups),
decoding (reconstruct, in decode.py) and checkpoints (save, in checkpoint.py) hang off it.

Sequence layout (training and decoding alike): [image patch tokens] <bos> program <eos>,
positions 0, 1, 2, ... without gaps. The token at position t is predicted from the final
hidden state at t - 1; a `<num>`'s value is regressed from that same hidden state.
"""
from __future__ import annotations

import copy
import dataclasses
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from igllm_ros import world
from igllm_ros.model import towers, views
from igllm_ros.model.config import ModelConfig
from igllm_ros.model.grammar import Grammar, encode_scene, image_order, target_scene
from igllm_ros.images import brightness_jitter, grayscale, resize_rgb


class NumericHead(nn.Module):
    """The paper's head: Tanh, Linear(h, h), GELU, Linear(h, 1) on the final hidden state."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Tanh(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden).squeeze(-1)


def read_out(hidden: torch.Tensor, last: torch.Tensor, project, compose, numeric) -> tuple[torch.Tensor, torch.Tensor]:
    """IGLLM.decode_heads' computation over given pieces (the LM head, the joint-logit
    composition, the numeric head or None). gather, not advanced indexing: it exports."""
    rows = hidden.gather(1, last.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])).squeeze(1)
    logits = compose(project(rows)).float()
    if numeric is None:
        return logits, torch.zeros(hidden.shape[:2], dtype=torch.float32, device=hidden.device)
    return logits, numeric(hidden).float()


class _FrozenHeads(nn.Module):
    """IGLLM.decode_heads over detached copies of its weights (IGLLM.frozen_decode_heads)."""

    def __init__(self, model: "IGLLM"):
        super().__init__()
        self.project = copy.deepcopy(towers.base_llm(model.llm).get_output_embeddings()).requires_grad_(False)
        self.numeric = None if model.numeric_head is None else copy.deepcopy(model.numeric_head).requires_grad_(False)
        self.compose = model.compose_joint  # reads buffers only (no trained weight)

    def forward(self, hidden, last):
        return read_out(hidden, last, self.project, self.compose, self.numeric)


class IGLLM(nn.Module):
    def __init__(self, config: ModelConfig, vision: nn.Module, llm: nn.Module, codec):
        super().__init__()
        self.config = config
        self.name = config.name
        self.input_size = tuple(config.input_size)
        self.codec = codec
        self.grammar = Grammar(codec, config.numbers, config.attribute_tokens, config.camera_range)
        self.vision = vision
        self.llm = llm
        grid_w, grid_h = vision.grid(self.input_size)
        self.image_tokens = grid_w * grid_h
        v_hidden = vision.out_dim
        _, embeddings, _ = towers.llm_parts(llm)
        hidden = embeddings.embedding_dim
        if config.projector == "linear":
            self.projector = nn.Linear(v_hidden, hidden)
        else:
            self.projector = nn.Sequential(nn.Linear(v_hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.numeric_head = NumericHead(hidden) if config.float_numbers else None
        self.value_embedding = nn.Linear(1, hidden) if config.value_feedback else None
        ids, parts = _joint_factors(codec) if config.factorized_joint else (None, None)
        # None: one free logit per head; else each head's attribute-value tokens and where
        # compose_joint puts their sums
        self.register_buffer("joint_parts", parts, persistent=False)
        self.register_buffer("joint_order", None if ids is None else _joint_order(ids, towers.base_llm(llm).get_output_embeddings().out_features), persistent=False)
        masked = views.masked_attributes(config)
        colours = _alternatives(codec, self.grammar, "color") if "color" in masked else None
        shapes = _alternatives(codec, self.grammar, "shape") if "shape" in masked else None
        self.register_buffer("colour_alternatives", colours, persistent=False)  # masked views' colour marginal
        self.register_buffer("shape_alternatives", shapes, persistent=False)  # reshaped views' shape marginal

    @property
    def device(self) -> torch.device:
        return next(self.projector.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.projector.parameters()).dtype

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- data ---------------------------------------------------------------------------
    def collate(self, samples, augment: bool = False) -> dict[str, torch.Tensor]:
        """Samples (.image HxWx3 uint8, .scene) to CPU tensors. Images stay uint8 (cheap
        between DataLoader workers) and are normalised on the model's device."""
        if not samples:
            raise ValueError("collate needs at least one sample")
        masked = [bool(getattr(s, "colour_masked", False)) for s in samples]
        shape_masked = [bool(getattr(s, "shape_masked", False)) for s in samples]
        if augment and self.config.gray_fraction > 0 and getattr(samples[0], "features", None) is None:
            masked = [random.random() < self.config.gray_fraction for _ in samples]
            samples = [dataclasses.replace(s, image=grayscale(s.image)) if m else s for s, m in zip(samples, masked)]
        image_input = self._collate_images(samples, augment)
        encoded = []
        for s in samples:
            objects = image_order(s.scene)
            if augment and self.config.shuffle_objects:
                random.shuffle(objects)
            encoded.append(encode_scene(self.grammar, target_scene(s.scene, objects)))
        length = max(len(e.token_ids) for e in encoded)
        ids = torch.full((len(samples), length), self.grammar.pad_id, dtype=torch.long)
        mask = torch.zeros((len(samples), length), dtype=torch.long)
        values = torch.zeros((len(samples), length), dtype=torch.float32)
        for i, e in enumerate(encoded):
            n = len(e.token_ids)
            ids[i, :n] = torch.from_numpy(e.token_ids)
            mask[i, :n] = 1
            values[i, :n] = torch.from_numpy(e.num_values)
        num_mask = (ids == self.grammar.num_id) & (mask == 1) if self.config.float_numbers else torch.zeros_like(mask, dtype=torch.bool)
        return {
            **image_input, "input_ids": ids, "attention_mask": mask, "num_values": values, "num_mask": num_mask,
            "colour_masked": torch.tensor(masked, dtype=torch.bool),
            "shape_masked": torch.tensor(shape_masked, dtype=torch.bool),
        }

    # ---- forward pieces -----------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor, fast: bool = False) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> projected patch tokens (B, P, hidden). fast (decoding): the
        tower's inference_features where it has one (a faster, equal computation)."""
        tower = self.vision.inference_features if fast and hasattr(self.vision, "inference_features") else self.vision.features
        return self.encode_features(tower(pixel_values))

    def encode_features(self, features: torch.Tensor) -> torch.Tensor:
        """The tower's (frozen, cacheable) features (B, P, C) -> projected tokens (B, P, hidden)."""
        return self.projector(self.vision.adapt(features.to(self.dtype)))

    def encode_batch(self, batch) -> torch.Tensor:
        """Projected image tokens of a collated batch: from cached features or from pixels."""
        if "features" in batch:
            return self.encode_features(batch["features"])
        return self.encode_images(batch["pixel_values"])

    def embed_tokens(self, ids: torch.Tensor, num_mask: torch.Tensor | None = None, values: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings; with value feedback, `<num>` positions get + value_embedding(value)."""
        # Not llm_parts: its get_decoder() costs ~17 us, paid on every decoding pass.
        embeds = towers.base_llm(self.llm).get_input_embeddings()(ids)
        if self.value_embedding is not None and num_mask is not None and values is not None:
            feedback = self.value_embedding(values.to(embeds.dtype).unsqueeze(-1))
            embeds = embeds + feedback * num_mask.unsqueeze(-1).to(embeds.dtype)
        return embeds

    def hidden_states(self, inputs_embeds, attention_mask=None, position_ids=None, past_key_values=None):
        decoder, _, _ = towers.llm_parts(self.llm)
        out = decoder(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=past_key_values is not None,
        )
        return out.last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        # as embed_tokens: no get_decoder()
        return self.compose_joint(towers.base_llm(self.llm).get_output_embeddings()(hidden))

    def compose_joint(self, logits: torch.Tensor) -> torch.Tensor:
        """The LM head's logits -> the model's: with factorized_joint, each joint head's
        logit is the sum of its attribute values' logits (else unchanged)."""
        if self.joint_parts is None:
            return logits
        composed = logits[..., self.joint_parts].sum(-1)
        # every logit, the heads' replaced by their sums: one gather (it exports to ONNX;
        # an in-place index_put did not), equal values
        return torch.cat([logits, composed], dim=-1).index_select(-1, self.joint_order)

    def decode_heads(self, hidden: torch.Tensor, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What decoding reads after a pass, float32: the next-token logits after each
        sequence's last real state (B, V) (`last` (B,) indexes hidden (B, T, hidden)) and the
        numeric head's value at every state (B, T), zeros in char mode."""
        return read_out(hidden, last, towers.base_llm(self.llm).get_output_embeddings(), self.compose_joint, self.numeric_head)

    def frozen_decode_heads(self) -> nn.Module:
        """decode_heads as a module over detached copies of the weights it reads, for a graph
        (onnx_llama.py) that bakes them in; rebuild it when they change (decode_head_weights)."""
        return _FrozenHeads(self)

    def decode_head_weights(self) -> list[torch.Tensor]:
        """The weights decode_heads reads (for caches of derived copies: derived.py)."""
        lm = towers.base_llm(self.llm).get_output_embeddings()
        return list(lm.parameters()) + ([] if self.numeric_head is None else list(self.numeric_head.parameters()))

    # ---- training -----------------------------------------------------------------------
    def _collate_images(self, samples, augment: bool) -> dict[str, torch.Tensor]:
        """Cached tower features when every sample carries them (feature_cache.py), else
        uint8 pixels resized to input_size (brightness jitter when augmenting)."""
        if all(getattr(s, "features", None) is not None for s in samples):
            return {"features": torch.from_numpy(np.stack([s.features for s in samples]))}
        images = torch.from_numpy(np.stack([resize_rgb(s.image, self.input_size) for s in samples]))
        images = images.permute(0, 3, 1, 2).contiguous()
        if augment and self.config.augment_brightness > 0:
            images = brightness_jitter(images, self.config.augment_brightness)
        return {"pixel_values": images}

    def training_loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        num_mask, num_values = batch["num_mask"], batch["num_values"]
        image = self.encode_batch(batch)
        tokens = self.embed_tokens(ids, num_mask, num_values)
        p = image.shape[1]
        full_mask = torch.cat([torch.ones(mask.shape[0], p, dtype=mask.dtype, device=mask.device), mask], dim=1)
        hidden = self.hidden_states(torch.cat([image, tokens.to(image.dtype)], dim=1), attention_mask=full_mask)
        predicting = hidden[:, p:-1]  # the state at t - 1 predicts program token t (t >= 1)
        targets = ids[:, 1:]
        valid = mask[:, 1:].bool()
        logits = self.logits(predicting[valid]).float()
        rows = {}  # per masked attribute: which target tokens it is masked on
        for attribute, key in (("color", "colour_masked"), ("shape", "shape_masked")):
            masked = batch.get(key)
            if masked is not None and masked.any():
                rows[attribute] = masked.unsqueeze(1).expand_as(valid)[valid]
        ce = self._token_nll(logits, targets[valid], rows.get("color"), rows.get("shape")).mean()
        logs = {"ce": ce.item(), "token_acc": (logits.argmax(-1) == targets[valid]).float().mean().item()}
        loss = ce
        if self.numeric_head is not None:
            is_num = num_mask[:, 1:]
            if is_num.any():
                predicted = self.numeric_head(predicting[is_num]).float()
                mse = F.mse_loss(predicted, num_values[:, 1:][is_num].float())
                loss = loss + self.config.numeric_loss_weight * mse
                logs["mse"] = mse.item()
        logs["loss"] = loss.item()
        return loss, logs

    def _token_nll(
        self, logits: torch.Tensor, targets: torch.Tensor, colour_masked: torch.Tensor | None, shape_masked: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-token cross entropy; on colour-masked tokens (gray or recoloured views) whose
        target names a colour, the loss of the target's colour group instead: -log of the
        summed probability of the tokens that differ from it only in colour. Shape-masked
        tokens (reshaped views) the same with the shape group."""
        nll = F.cross_entropy(logits, targets, reduction="none")
        for masked, table, fraction in (
            (colour_masked, self.colour_alternatives, "gray_fraction or recolour_fraction"),
            (shape_masked, self.shape_alternatives, "reshape_fraction"),
        ):
            if masked is None:
                continue
            if table is None:
                raise ValueError(f"a masked batch needs model.{fraction} > 0 (the attribute's groups)")
            group = table[targets]  # (N, values), -1 where the target does not name the attribute
            use = masked & (group[:, 0] >= 0)
            if use.any():
                log_p = torch.log_softmax(logits[use], dim=-1)
                nll = nll.clone()
                nll[use] = -torch.logsumexp(log_p.gather(1, group[use]), dim=-1)
        return nll

    def param_groups(self, lr: float, head_lr: float, weight_decay: float, tower_lr: float | None = None) -> list[dict]:
        """AdamW groups: the numeric head and value embedding at head_lr, the vision tower's
        own trainable parameters at tower_lr (None: lr; a fine-tuned pretrained tower usually
        wants far less than the fresh parts); no weight decay on biases, norms and
        embeddings' 1-D parameters. Frozen parameters are left out."""
        head_ids = {id(p) for m in (self.numeric_head, self.value_embedding) if m is not None for p in m.parameters()}
        # The tower's fresh position embedding (CNN kinds) learns with the body, not at tower_lr.
        tower_ids = {id(p) for n, p in self.vision.named_parameters() if n != "position"}
        rates = {"body": lr, "head": head_lr, "tower": lr if tower_lr is None else tower_lr}
        groups = {(part, d): [] for part in rates for d in (False, True)}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            part = "head" if id(param) in head_ids else "tower" if id(param) in tower_ids else "body"
            decay = param.ndim >= 2 and "norm" not in name.lower()
            groups[(part, decay)].append(param)
        result = []
        for (part, decay), params in groups.items():
            if params:
                result.append({"params": params, "lr": rates[part], "weight_decay": weight_decay if decay else 0.0})
        return result

    # ---- inference and checkpoints ------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, images: list[np.ndarray], max_objects: int = 10, skip_forced: bool = True):
        from igllm_ros.model.decode import reconstruct

        return reconstruct(self, images, max_objects=max_objects, skip_forced=skip_forced)

    def save(self, directory, card: dict | None = None) -> None:
        from igllm_ros.model.checkpoint import save

        save(self, directory, card)


def _joint_factors(codec) -> tuple[torch.Tensor, torch.Tensor]:
    """(joint head token ids (J,), their four attribute-value token ids (J, 4))."""
    from igllm_ros.model.vocab import joint_heads

    heads = joint_heads()
    ids = [codec.encode(text)[0] for text in heads]
    parts = [[codec.encode(value)[0] for value in values] for values in heads.values()]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(parts, dtype=torch.long)


def _joint_order(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """(vocab,) indices into [logits, composed head logits]: itself for every token, vocab + j
    for joint head j (IGLLM.compose_joint)."""
    order = torch.arange(vocab)
    order[ids] = vocab + torch.arange(len(ids))
    return order


def _alternatives(codec, grammar, attribute: str) -> torch.Tensor:
    """(vocab, values) token ids: for a token that names a value of `attribute` ("color"
    or "shape": a joint head, or the value itself with separate attribute tokens), the
    tokens that differ from it only in that attribute, itself included; -1 rows for every
    other token."""
    from igllm_ros.model.vocab import head_text, joint_heads

    values = world.ATTRIBUTES[attribute]
    position = list(world.ATTRIBUTES).index(attribute)  # joint heads are (shape, color, material, size)
    table = torch.full((codec.vocab_size, len(values)), -1, dtype=torch.long)

    def one_token(text: str) -> int:
        ids = codec.encode(text)
        if len(ids) != 1:
            raise ValueError(f"masked views need one token per {attribute} choice; {text!r} is {len(ids)}")
        return ids[0]

    if grammar.joint:
        for parts in joint_heads().values():
            group = [one_token(head_text(*parts[:position], v, *parts[position + 1 :])) for v in values]
            table[group] = torch.tensor(group)
    else:
        group = [one_token(v) for v in values]
        table[group] = torch.tensor(group)
    return table


def build(config: ModelConfig) -> IGLLM:
    """A fresh model: from-scratch towers, or pretrained ones from local paths."""
    if not isinstance(config, ModelConfig):
        config = ModelConfig.from_dict(dict(config))
    from igllm_ros.model.vision import build_tower

    codec = towers.build_codec(config)
    llm = towers.build_llm(config, codec)
    model = IGLLM(config, build_tower(config), llm, codec)
    if config.init_from:
        from igllm_ros.model.warm_start import load_matching

        copied, fresh = load_matching(model, towers.resolve_path(config.init_from))
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        print(f"igllm: {len(copied)} tensors from {config.init_from}; trainable and fresh: "
              f"{', '.join(sorted(set(fresh) & trainable)) or 'none'}", flush=True)
    return model
