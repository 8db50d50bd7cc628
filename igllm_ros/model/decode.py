"""Batched, KV-cached, grammar-constrained greedy decoding (a hand-written loop, not
generate()).

Each image's sequence walks the grammar with its own Cursor. A model forward pass is
needed only where the grammar offers a real choice: every token the grammar forces after a
choice is appended in the same pass as the choice itself (skip_forced=True), so a float
scene of n objects costs 1 + n passes with joint attribute tokens (prefill with the camera
line, then one per object: its head, numbers and the choice of the next) and 1 + 5n with
separate ones (add-or-end, shape, color, material, size-and-numbers). With value feedback a `<num>` needs
its value, regressed from the state before it, before it can be fed: the run stops in
front of each `<num>`, one extra pass per number.

Batching: each pass feeds every unfinished sequence its run, right-padded to the longest
run; padded slots are masked out of attention forever and positions count real tokens
only, so every sequence sees exactly what it would see alone.
"""
from __future__ import annotations

import numpy as np
import torch

from igllm_ros import program, world
from igllm_ros.model.fields import FIELDS
from igllm_ros.model.grammar import Cursor
from igllm_ros.reconstruction import Reconstruction


@torch.no_grad()
def reconstruct(model, images: list[np.ndarray], max_objects: int = world.MAX_OBJECTS, skip_forced: bool = True) -> list[Reconstruction]:
    from igllm_ros.images import resize_rgb

    if isinstance(images, np.ndarray) and images.ndim == 3:
        raise ValueError("reconstruct takes a list of images; wrap a single image in a list")
    images = list(images)
    if not images:
        return []
    if not 0 <= int(max_objects) <= world.MAX_OBJECTS:
        raise ValueError(f"max_objects must be in 0..{world.MAX_OBJECTS}, got {max_objects}")
    pixels = torch.from_numpy(np.stack([resize_rgb(im, model.input_size) for im in images])).permute(0, 3, 1, 2)
    return decode(model, pixels.to(model.device), int(max_objects), skip_forced)


class _Sequence:
    """One image's decoding state between passes."""

    def __init__(self, cursor: Cursor, position: int):
        self.cursor = cursor
        self.position = position  # the position id of the next token fed
        self.run: list[int] = []  # tokens fed in the coming pass
        self.run_values: list[float] = []  # normalised value per run token (feedback <num>s)
        self.run_numbers: list[tuple[int, object]] = []  # (index in run, Completed) of <num>s to fill after the pass
        self.logits: torch.Tensor | None = None  # next-token logits after the last pass
        self.last_value: float = 0.0  # the numeric head on the last pass's last state
        self.steps = 0


@torch.no_grad()
def decode(model, pixels: torch.Tensor, max_objects: int, skip_forced: bool = True) -> list[Reconstruction]:
    from transformers import DynamicCache

    grammar = model.grammar
    float_mode = model.numeric_head is not None
    feedback = model.value_embedding is not None
    image = model.encode_images(pixels)
    batch, prefix = image.shape[0], image.shape[1]
    sequences = [_Sequence(Cursor(grammar, max_objects), prefix) for _ in range(batch)]
    for seq in sequences:
        seq.run = [grammar.bos_id]
        seq.run_values = [0.0]
        _extend_run(seq, grammar, skip_forced, float_mode, feedback)

    cache = DynamicCache()
    attention = torch.ones(batch, prefix, dtype=torch.long, device=model.device)
    first = True
    while any(seq.run for seq in sequences):
        width = max(len(seq.run) for seq in sequences)
        ids = torch.full((batch, width), grammar.pad_id, dtype=torch.long)
        valid = torch.zeros((batch, width), dtype=torch.long)
        positions = torch.zeros((batch, width), dtype=torch.long)
        values = torch.zeros((batch, width), dtype=torch.float32)
        for b, seq in enumerate(sequences):
            n = len(seq.run)
            positions[b] = seq.position + torch.arange(width).clamp(max=max(n - 1, 0))
            if n:
                ids[b, :n] = torch.tensor(seq.run)
                valid[b, :n] = 1
                values[b, :n] = torch.tensor(seq.run_values)
        ids, valid, positions, values = (t.to(model.device) for t in (ids, valid, positions, values))
        embeds = model.embed_tokens(ids, ids == grammar.num_id, values).to(image.dtype)
        attention = torch.cat([attention, valid], dim=1)
        if first:
            embeds = torch.cat([image, embeds], dim=1)
            image_positions = torch.arange(prefix, device=model.device).expand(batch, prefix)
            positions = torch.cat([image_positions, positions], dim=1)
            first = False
        hidden = model.hidden_states(embeds, attention_mask=attention, position_ids=positions, past_key_values=cache)
        hidden = hidden[:, -width:]
        lengths = [len(seq.run) for seq in sequences]
        last = torch.tensor([max(n - 1, 0) for n in lengths], device=hidden.device)
        last_hidden = hidden[torch.arange(batch, device=hidden.device), last]
        logits = model.logits(last_hidden).float().cpu()
        head = model.numeric_head(hidden).float().cpu() if float_mode else None
        for b, seq in enumerate(sequences):
            n = lengths[b]
            if not n:
                continue
            seq.steps += 1
            seq.position += n
            if head is not None:
                for index, completed in seq.run_numbers:
                    normalised = float(head[b, index - 1]) if index > 0 else seq.last_value
                    completed.value = FIELDS[completed.segment.name].denormalise(normalised)
                seq.last_value = float(head[b, n - 1])
            seq.logits = logits[b]
            seq.run, seq.run_values, seq.run_numbers = [], [], []
            _extend_run(seq, grammar, skip_forced, float_mode, feedback)

    results = []
    for seq in sequences:
        text = seq.cursor.text()
        scene, _ = program.parse_program(text, strict=True)
        confidences = seq.cursor.attribute_confidences()
        objects = [program.with_confidences(o, c) for o, c in zip(scene.objects, confidences)]
        results.append(Reconstruction(scene=scene.with_objects(objects), program=text, steps=seq.steps))
    return results


def _extend_run(seq: _Sequence, grammar, skip_forced: bool, float_mode: bool, feedback: bool) -> None:
    """Append to seq.run what can be fed in the next pass: at most one choice (taken from
    the last pass's logits, only as the run's first token), then forced tokens."""
    cursor = seq.cursor
    logits, seq.logits = seq.logits, None
    while True:
        allowed = cursor.allowed()
        if not allowed:
            return
        if seq.run and not skip_forced:
            return
        probability, distribution = 1.0, None
        if len(allowed) == 1:
            token = allowed[0]
        elif not seq.run and logits is not None:
            probabilities = torch.softmax(logits[torch.as_tensor(allowed)], dim=0).tolist()
            k = max(range(len(allowed)), key=probabilities.__getitem__)
            token, probability = allowed[k], probabilities[k]
            distribution = dict(zip(allowed, probabilities))
        else:
            return  # a choice: it needs the state after this run
        value = 0.0
        is_num = float_mode and token == grammar.num_id
        if is_num and feedback:
            if seq.run:
                return  # its value comes from the state of the token before it
            value = seq.last_value
        cursor.feed(token, probability, distribution)
        if cursor.finished:
            # The end token is never fed, nor the forced tokens before it, except those
            # whose states give a <num> its value (the state before each <num>).
            keep = max((index for index, _ in seq.run_numbers), default=0)
            del seq.run[keep:], seq.run_values[keep:]
            return
        if is_num:
            completed = cursor.done[-1]
            if feedback:
                completed.value = FIELDS[completed.segment.name].denormalise(value)
            else:
                seq.run_numbers.append((len(seq.run), completed))
        seq.run.append(token)
        seq.run_values.append(value)
        logits = None
