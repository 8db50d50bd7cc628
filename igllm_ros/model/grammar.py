"""The scene-program grammar over token-id sequences, shared by training and decoding.

A program is a sequence of *segments*: fixed fragments ("camera(loc=(", ", ", ...),
choices (add another object or end; shape; color; material; size) and numbers. Every
segment is a small trie of token-id sequences, one path per option, so a choice that a
pretrained tokenizer splits into several tokens works the same as a one-token choice of
the domain vocabulary. Where a trie node has one child the token is forced.

- char mode: a number segment's trie holds every value the field may take, written with
  the program's fixed precision (fields.py), so the model can only write in-range numbers
  with exactly the right decimals. A non-cube's rotation is the fixed "+0.0".
- float mode: a number segment is the single `<num>` token; its value comes from the
  numeric head.
- attribute tokens: "separate" writes add-or-end, shape, color, material and size as five
  choices; "joint" (the domain vocabulary's default) makes the whole head of an add line,
  "\nadd(shape='cube', color='red', material='metal', size='large", one option (one token
  of the domain vocabulary) beside the end of the program: one model step per object
  instead of five. Per-attribute confidences are then the marginals of that distribution.

Cursor walks one sequence through the grammar (decoding), and encode_scene drives the
same Cursor with a known scene, so training targets are exactly what decoding can write.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from igllm_ros import program, world
from igllm_ros.model import vocab as V
from igllm_ros.model.fields import CAMERA_FIELDS, OBJECT_LOC_FIELDS, canonical_rotation, number_fields
from igllm_ros.scene import Camera, Scene, SceneObject, intrinsics, project

END = "<end>"  # the option text of "no more objects" (the end-of-sequence token)
ROTATION_ZERO = program.format_number(0.0, program.ROTATION_DECIMALS)
ATTRIBUTE_OPENERS = {"color": V.COLOR_OPEN, "material": V.MATERIAL_OPEN, "size": V.SIZE_OPEN}


class TrieNode:
    __slots__ = ("children", "option", "allowed")

    def __init__(self):
        self.children: dict[int, TrieNode] = {}
        self.option: str | None = None  # set on the node that completes an option
        self.allowed: tuple[int, ...] = ()


class Trie:
    """Options (text -> token ids) as a prefix tree; no option may prefix another."""

    def __init__(self, name: str, options: dict[str, tuple[int, ...]]):
        self.name = name
        self.paths = dict(options)  # option text -> token ids
        self.root = TrieNode()
        for text, ids in options.items():
            node = self.root
            for token in ids:
                if node.option is not None:
                    raise ValueError(f"grammar {name}: option {node.option!r} is a prefix of {text!r} in tokens")
                node = node.children.setdefault(token, TrieNode())
            if node.children or node.option is not None:
                raise ValueError(f"grammar {name}: option {text!r} is a prefix of another option in tokens")
            node.option = text
        self._freeze(self.root)

    def _freeze(self, node: TrieNode) -> None:
        node.allowed = tuple(node.children)
        for child in node.children.values():
            self._freeze(child)


@dataclass(frozen=True)
class Segment:
    kind: str  # "fixed" | "choice" | "number"
    name: str  # the trie's name: a fragment, an attribute, "more", or a number field
    trie: Trie


class Grammar:
    """All tries of the scene language for one codec, number mode and attribute tokens."""

    def __init__(self, codec, numbers: str, attribute_tokens: str = "separate", camera_range: str = "nominal"):
        if numbers not in ("char", "float"):
            raise ValueError(f"numbers must be 'char' or 'float', got {numbers!r}")
        if attribute_tokens not in ("separate", "joint"):
            raise ValueError(f"attribute_tokens must be 'separate' or 'joint', got {attribute_tokens!r}")
        self.codec = codec
        self.numbers = numbers
        self.fields = number_fields(camera_range)  # bounds and normalisation of every number
        self.joint = attribute_tokens == "joint"
        self.num_id = codec.num_id
        self.eos_id = codec.eos_id
        self.bos_id = codec.bos_id
        self.pad_id = codec.pad_id
        enc = codec.encode
        self.fixed = {f: Segment("fixed", f, Trie(f, {f: enc(f)})) for f in V.FRAGMENTS}
        if self.joint:
            self.heads = V.joint_heads()
            more = {text: enc(text) for text in self.heads}
        else:
            self.heads = {}
            more = {V.ADD_OPEN: enc(V.ADD_OPEN)}
        self.more = Segment("choice", "more", Trie("more", {**more, END: (codec.eos_id,)}))
        self.head_values = _head_value_table(self.more.trie, self.heads)
        self.end = Segment("fixed", "end", Trie("end", {END: (codec.eos_id,)}))
        self.attributes = {
            name: Segment("choice", name, Trie(name, {v: enc(v) for v in world.ATTRIBUTES[name]}))
            for name in program.ATTRIBUTE_FIELDS
        }
        if numbers == "float":
            self.number = {f: Segment("number", f, Trie(f, {V.NUM_TOKEN: (codec.num_id,)})) for f in self.fields}
        else:
            self.number = {f: Segment("number", f, Trie(f, {t: enc(t) for t in spec.all_texts()})) for f, spec in self.fields.items()}
        self.rotation_zero = Segment("fixed", "rotation", Trie("rotation_zero", {ROTATION_ZERO: enc(ROTATION_ZERO)}))

    def camera_segments(self) -> list[Segment]:
        f, n = self.fixed, self.number
        return [f[V.CAMERA_OPEN], n["cx"], f[V.SEP], n["cy"], f[V.SEP], n["cz"], f[V.CAMERA_CLOSE]]

    def object_segments(self, shape: str) -> list[Segment]:
        """What follows the shape of an object (the rotation depends on the shape): the
        other attributes (separate tokens only), then the numbers."""
        f, n, a = self.fixed, self.number, self.attributes
        segments = []
        if not self.joint:
            for name in ("color", "material", "size"):
                segments += [f[ATTRIBUTE_OPENERS[name]], a[name]]
        segments += [f[V.LOC_OPEN], n["x"], f[V.SEP], n["y"], f[V.SEP], n["z"], f[V.ROTATION_OPEN]]
        # A char-mode non-cube can only write +0.0; float mode always asks the head (and
        # canonicalises afterwards), so both modes keep one <num> per field.
        segments.append(n["rotation"] if shape == "cube" or self.numbers == "float" else self.rotation_zero)
        segments.append(f[V.ADD_CLOSE])
        return segments


@dataclass
class Completed:
    """One finished segment: the option written and the grammar-renormalised probability."""

    segment: Segment
    option: str
    probability: float = 1.0
    value: float | None = None  # float mode numbers: the (denormalised) value
    confidences: dict[str, float] | None = None  # joint heads: exists + attribute marginals


@dataclass
class Cursor:
    """One sequence's position in the grammar. allowed() gives the next tokens the grammar
    permits (one: forced; none: finished); feed(token) advances."""

    grammar: Grammar
    max_objects: int = world.MAX_OBJECTS
    done: list[Completed] = field(default_factory=list)
    objects: int = 0
    finished: bool = False

    def __post_init__(self):
        if not 0 <= self.max_objects <= world.MAX_OBJECTS:
            raise ValueError(f"max_objects must be in 0..{world.MAX_OBJECTS}, got {self.max_objects}")
        self._queue: deque[Segment] = deque(self.grammar.camera_segments())
        self._queue.append(self._more_or_end())
        self._segment = self._queue.popleft()
        self._node = self._segment.trie.root
        self._probability = 1.0
        self._distribution: dict[int, float] | None = None

    def _more_or_end(self) -> Segment:
        return self.grammar.more if self.objects < self.max_objects else self.grammar.end

    @property
    def segment(self) -> Segment:
        return self._segment

    def allowed(self) -> tuple[int, ...]:
        return () if self.finished else self._node.allowed

    def feed(self, token: int, probability: float = 1.0, distribution: dict[int, float] | None = None) -> None:
        """Advance by `token`; `probability` is its grammar-renormalised probability and
        `distribution` (optional) the whole renormalised distribution it was chosen from."""
        if self.finished:
            raise ValueError("the program is finished")
        child = self._node.children.get(token)
        if child is None:
            raise ValueError(f"token {token} is not allowed in segment {self._segment.name!r}")
        if self._node is self._segment.trie.root:
            self._distribution = distribution
        self._probability *= probability
        self._node = child
        if child.option is not None:
            self._complete(child.option)

    def _complete(self, option: str) -> None:
        segment = self._segment
        completed = Completed(segment, option, self._probability)
        self.done.append(completed)
        self._probability = 1.0
        if segment.name in ("more", "end"):
            if option == END:
                self.finished = True
                return
            self.objects += 1
            if self.grammar.joint:
                completed.confidences = self._joint_confidences(option)
                self._queue.extend(self.grammar.object_segments(self.grammar.heads[option][0]))
                self._queue.append(self._more_or_end())
            else:
                self._queue.append(self.grammar.attributes["shape"])
        elif segment.name == "shape":
            self._queue.extend(self.grammar.object_segments(option))
            self._queue.append(self._more_or_end())
        self._segment = self._queue.popleft()
        self._node = self._segment.trie.root

    def _joint_confidences(self, option: str) -> dict[str, float]:
        """exists = 1 - P(end); each attribute: the probability mass of heads sharing the
        chosen value, among the heads (marginals of the renormalised distribution).
        Vectorised over the ~97 options (a Python loop cost ~0.1 ms per object)."""
        if self._distribution is None:  # forced (a one-option grammar) or fed without one
            return {"exists": 1.0, **{name: 1.0 for name in program.ATTRIBUTE_FIELDS}}
        table = self.grammar.head_values
        tokens = np.fromiter(self._distribution.keys(), dtype=np.int64, count=len(self._distribution))
        p = np.fromiter(self._distribution.values(), dtype=np.float64, count=len(self._distribution))
        values = table[tokens]  # (options, attributes) value index, -1 where not an object head
        chosen = table[self.grammar.more.trie.paths[option][0]]
        exists = float(p[values[:, 0] >= 0].sum())
        mass = (p[:, None] * (values == chosen)).sum(axis=0)
        return {"exists": exists, **{name: (float(m) / exists if exists > 0 else 0.0) for name, m in zip(program.ATTRIBUTE_FIELDS, mass)}}

    # ---- the result ---------------------------------------------------------------------
    def text(self) -> str:
        """The program written so far (float numbers formatted from their values)."""
        parts = []
        for c in self.done:
            if c.option == END:
                continue
            if c.segment.kind == "number" and self.grammar.numbers == "float":
                parts.append(_number_text(self.grammar.fields[c.segment.name], c.value, self._shape_of(c)))
            else:
                parts.append(c.option)
        return "".join(parts)

    def _shape_of(self, completed: Completed) -> str | None:
        shape = None
        for c in self.done:
            if c.segment.name == "shape":
                shape = c.option
            elif c.segment.name == "more" and c.option in self.grammar.heads:
                shape = self.grammar.heads[c.option][0]
            if c is completed:
                return shape
        return shape

    def attribute_confidences(self) -> list[dict[str, float]]:
        """Per object: the probability of each attribute choice and of "exists" (the
        add-another-object choice that opened it)."""
        result: list[dict[str, float]] = []
        for c in self.done:
            if c.segment.name == "more" and c.confidences is not None:
                result.append(dict(c.confidences))
            elif c.segment.name == "more" and c.option != END:
                result.append({"exists": c.probability})
            elif c.segment.kind == "choice" and c.segment.name in program.ATTRIBUTE_FIELDS:
                result[-1][c.segment.name] = c.probability
        return result


def _head_value_table(more: Trie, heads: dict[str, tuple[str, ...]]) -> np.ndarray:
    """(max token id + 1, attributes) int: for the first token of each object head among
    the add-or-end options, the index of each of its attribute values
    (world.ATTRIBUTES order); -1 rows for every other token (the end of the program)."""
    table = np.full((max(more.root.children, default=0) + 1, len(program.ATTRIBUTE_FIELDS)), -1, dtype=np.int64)
    for token, child in more.root.children.items():
        head = heads.get(child.option)
        if head is not None:
            table[token] = [world.ATTRIBUTES[name].index(value) for name, value in zip(program.ATTRIBUTE_FIELDS, head)]
    return table


def _number_text(spec, value: float | None, shape: str | None) -> str:
    if value is None:
        raise ValueError(f"number {spec.name} has no value")
    if spec.name == "rotation":
        value = canonical_rotation(shape or "", value)
    return spec.text(value)


# ---- training targets --------------------------------------------------------------------
@dataclass(frozen=True)
class EncodedProgram:
    token_ids: np.ndarray  # int64 (T,): <bos> program <eos>
    num_values: np.ndarray  # float32 (T,): the normalised value at each <num> position, else 0


def image_order(scene: Scene) -> list[SceneObject]:
    """Objects left to right by their projected image x (then top to bottom)."""
    if not scene.objects:
        return []
    points = np.array([o.loc for o in scene.objects], dtype=float)
    pixels = project(scene.camera.to_optical(points), intrinsics())
    order = sorted(range(len(scene.objects)), key=lambda i: (pixels[i, 0], pixels[i, 1], i))
    return [scene.objects[i] for i in order]


def target_scene(scene: Scene, objects: list[SceneObject] | None = None) -> Scene:
    """The scene as the program writes it: canonical yaw, program precision, given order
    (default: image order)."""
    objects = image_order(scene) if objects is None else objects
    canonical = [
        SceneObject(o.shape, o.color, o.material, o.size, tuple(o.loc), canonical_rotation(o.shape, o.rotation))
        for o in objects
    ]
    return program.quantize(Scene(objects=tuple(canonical), camera=Camera(tuple(scene.camera.loc))))


def encode_scene(grammar: Grammar, scene: Scene) -> EncodedProgram:
    """Token ids (and float-mode number targets) of a scene already in target form
    (target_scene). Values outside the world's ranges raise ValueError."""
    if len(scene.objects) > world.MAX_OBJECTS:
        raise ValueError(f"scene has {len(scene.objects)} objects; the grammar allows at most {world.MAX_OBJECTS}")
    cursor = Cursor(grammar, world.MAX_OBJECTS)
    tokens = [grammar.bos_id]
    values = [0.0]
    camera_values = dict(zip(CAMERA_FIELDS, scene.camera.loc))
    remaining = list(scene.objects)
    current: SceneObject | None = None
    while not cursor.finished:
        segment = cursor.segment
        value = None
        if segment.kind == "fixed":
            option = next(iter(segment.trie.paths))
        elif segment.name == "more":
            if remaining:
                current = remaining.pop(0)
                option = V.head_text(*current.attributes()) if grammar.joint else V.ADD_OPEN
            else:
                option = END
        elif segment.kind == "choice":
            option = getattr(current, segment.name)
        else:  # a number
            name = segment.name
            value = camera_values[name] if name in CAMERA_FIELDS else (
                current.rotation if name == "rotation" else current.loc[OBJECT_LOC_FIELDS.index(name)]
            )
            spec = grammar.fields[name]
            if not spec.contains(value):
                raise ValueError(f"scene value {name}={value} is outside the program's range [{spec.lo}, {spec.hi}]")
            option = V.NUM_TOKEN if grammar.numbers == "float" else spec.text(value)
        ids = segment.trie.paths.get(option)
        if ids is None:
            raise ValueError(f"{option!r} is not an option of grammar segment {segment.name!r}")
        for token in ids:
            cursor.feed(token)
            tokens.append(token)
            is_num = token == grammar.num_id and grammar.numbers == "float"
            values.append(grammar.fields[segment.name].normalise(value) if is_num else 0.0)
    return EncodedProgram(np.asarray(tokens, dtype=np.int64), np.asarray(values, dtype=np.float32))
