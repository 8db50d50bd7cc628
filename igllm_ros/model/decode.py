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

The LLM forward of each pass: fast_llama.py (a preallocated KV cache and a lean Llama
forward over the same weights, bit-identical on this CPU) wherever it supports the LLM,
else transformers' own forward with a DynamicCache (peft/LoRA, other architectures);
llm_path() chooses, describe_path() says which and why. A StageTimer, when given, books
the time of each stage (the benchmark's breakdown).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from igllm_ros import program, world
from igllm_ros.model import fast_llama, onnx_llama
from igllm_ros.model.grammar import Cursor
from igllm_ros.reconstruction import Reconstruction

GENERIC = "transformers"


def reconstruct(model, images: list[np.ndarray], max_objects: int = world.MAX_OBJECTS, skip_forced: bool = True, path: str = "auto", timer: "StageTimer | None" = None) -> list[Reconstruction]:
    from igllm_ros.images import resize_rgb

    if isinstance(images, np.ndarray) and images.ndim == 3:
        raise ValueError("reconstruct takes a list of images; wrap a single image in a list")
    images = list(images)
    if not images:
        return []
    if not 0 <= int(max_objects) <= world.MAX_OBJECTS:
        raise ValueError(f"max_objects must be in 0..{world.MAX_OBJECTS}, got {max_objects}")
    pixels = torch.from_numpy(np.stack([resize_rgb(im, model.input_size) for im in images])).permute(0, 3, 1, 2)
    return decode(model, pixels.to(model.device), int(max_objects), skip_forced, path, timer)


def llm_path(model, path: str = "auto") -> str:
    """Which forward decoding uses: "fast-llama" (fast_llama.py) where it supports the LLM,
    else "transformers"; `path` forces one ("fast" raises if unsupported)."""
    if path not in ("auto", "fast", "generic"):
        raise ValueError(f"path must be 'auto', 'fast' or 'generic', got {path!r}")
    if path == "generic":
        return GENERIC
    reason = fast_llama.unsupported_reason(model.llm)
    if reason is None:
        return fast_llama.NAME
    if path == "fast":
        raise ValueError(f"the fast decoding path does not support this model's LLM: {reason}")
    return GENERIC


def describe_path(model) -> str:
    """The decoding path, whether ONNX Runtime runs its layers, and, for the generic one,
    why the fast one was not taken."""
    reason = fast_llama.unsupported_reason(model.llm)
    if reason is not None:
        return f"{GENERIC} ({reason})"
    weight = model.llm.get_input_embeddings().weight
    return f"{fast_llama.NAME} (ONNX Runtime)" if onnx_llama.available(weight) else fast_llama.NAME


class StageTimer:
    """Time per decoding stage (the benchmark's breakdown): mark(stage) books the time
    since the previous mark to `stage`, after waiting for the device. `clock` is wall time
    by default; time.thread_time measures the CPU work alone on a shared machine."""

    def __init__(self, device: torch.device, clock=time.perf_counter):
        self.device = torch.device(device)
        self.clock = clock
        self.seconds: dict[str, float] = {}
        self.passes = 0
        self.decode_tokens = 0  # real tokens fed by the passes after the prefill (all sequences)
        self.restart()

    def restart(self) -> None:
        self._sync()
        self._last = self.clock()

    def mark(self, stage: str) -> None:
        self._sync()
        now = self.clock()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


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


class _GenericSession:
    """transformers' own forward with a DynamicCache (any causal LM, peft-wrapped too)."""

    def __init__(self, model, image: torch.Tensor):
        from transformers import DynamicCache

        self.model, self.image = model, image
        self.cache = DynamicCache()
        self.attention = torch.ones(image.shape[:2], dtype=torch.long, device=image.device)

    def forward(self, embeds: torch.Tensor, valid: torch.Tensor, positions: torch.Tensor, padded: bool) -> torch.Tensor:
        width = embeds.shape[1]
        self.attention = torch.cat([self.attention, valid.long()], dim=1)
        if self.image is not None:
            image, self.image = self.image, None
            batch, prefix, _ = image.shape
            embeds = torch.cat([image, embeds], dim=1)
            positions = torch.cat([torch.arange(prefix, device=positions.device).expand(batch, prefix), positions], dim=1)
        hidden = self.model.hidden_states(embeds, attention_mask=self.attention, position_ids=positions, past_key_values=self.cache)
        return hidden[:, -width:]

    def step(self, embeds, valid, positions, padded: bool, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.decode_heads(self.forward(embeds, valid, positions, padded), last)


@torch.inference_mode()
def decode(model, pixels: torch.Tensor, max_objects: int, skip_forced: bool = True, path: str = "auto", timer: StageTimer | None = None) -> list[Reconstruction]:
    mark = timer.mark if timer is not None else _no_mark
    grammar = model.grammar
    float_mode = model.numeric_head is not None
    feedback = model.value_embedding is not None
    image = model.encode_images(pixels, fast=path != "generic")
    mark("vision + projector")
    batch, prefix = image.shape[0], image.shape[1]
    if llm_path(model, path) == fast_llama.NAME:
        session = fast_llama.FastLlama(model.llm, checked=True, readout=model).start(image)
    else:
        session = _GenericSession(model, image)
    sequences = [_Sequence(Cursor(grammar, max_objects), prefix) for _ in range(batch)]
    for seq in sequences:
        seq.run = [grammar.bos_id]
        seq.run_values = [0.0]
        _extend_run(seq, grammar, skip_forced, float_mode, feedback)
    stage = "prefill"
    while any(seq.run for seq in sequences):
        lengths = [len(seq.run) for seq in sequences]
        ids, valid, positions, values = _pass_inputs(sequences, lengths, grammar.pad_id, image.device)
        embeds = model.embed_tokens(ids, ids == grammar.num_id, values).to(image.dtype)
        mark("glue (grammar, Python)")
        last = torch.tensor([max(n - 1, 0) for n in lengths], device=image.device)
        logits, head = session.step(embeds, valid, positions, min(lengths) != max(lengths), last)
        logits, head = logits.cpu(), (head.cpu() if float_mode else None)
        mark(stage)
        stage = "decode passes"
        if timer is not None:
            timer.passes += 1
            if timer.passes > 1:
                timer.decode_tokens += sum(lengths)
        for b, seq in enumerate(sequences):
            n = lengths[b]
            if not n:
                continue
            seq.steps += 1
            seq.position += n
            if head is not None:
                for index, completed in seq.run_numbers:
                    normalised = float(head[b, index - 1]) if index > 0 else seq.last_value
                    completed.value = grammar.fields[completed.segment.name].denormalise(normalised)
                seq.last_value = float(head[b, n - 1])
            seq.logits = logits[b]
            seq.run, seq.run_values, seq.run_numbers = [], [], []
            _extend_run(seq, grammar, skip_forced, float_mode, feedback)
    results = [_result(seq) for seq in sequences]
    mark("glue (grammar, Python)")
    return results


def _pass_inputs(sequences: list[_Sequence], lengths: list[int], pad_id: int, device) -> tuple[torch.Tensor, ...]:
    """One pass's token ids, valid flags, position ids and feedback values (B, width):
    runs right-padded; padded slots repeat the last position (they are masked anyway)."""
    width = max(lengths)
    ids, valid, positions, values = [], [], [], []
    for seq, n in zip(sequences, lengths):
        pad = width - n
        ids.append(seq.run + [pad_id] * pad)
        valid.append([True] * n + [False] * pad)
        positions.append([seq.position + min(i, max(n - 1, 0)) for i in range(width)])
        values.append(seq.run_values + [0.0] * pad)
    return (
        torch.tensor(ids, dtype=torch.long, device=device),
        torch.tensor(valid, dtype=torch.bool, device=device),
        torch.tensor(positions, dtype=torch.long, device=device),
        torch.tensor(values, dtype=torch.float32, device=device),
    )


def _result(seq: _Sequence) -> Reconstruction:
    text = seq.cursor.text()
    scene, _ = program.parse_program(text, strict=True)
    confidences = seq.cursor.attribute_confidences()
    objects = [program.with_confidences(o, c) for o, c in zip(scene.objects, confidences)]
    return Reconstruction(scene=scene.with_objects(objects), program=text, steps=seq.steps)


def _no_mark(stage: str) -> None:
    pass


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
                completed.value = grammar.fields[completed.segment.name].denormalise(value)
            else:
                seq.run_numbers.append((len(seq.run), completed))
        seq.run.append(token)
        seq.run_values.append(value)
        logits = None
