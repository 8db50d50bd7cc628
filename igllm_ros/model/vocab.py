"""Token codecs: how program fragments become token ids.

- DomainVocab: a compact vocabulary for LLMs trained from scratch. Its tokens are the
  program's fixed fragments ("camera(loc=(", "', color='", ...), the attribute values,
  the number characters and the specials, so concatenating token strings gives the
  program text.
- TokenizerCodec: a pretrained LLM's own tokenizer. Each fragment is tokenized on its own
  (one grammar choice may be several tokens); `<num>` is added as a special token.

Both give the grammar what it needs: encode(fragment) -> token ids, and the special ids.
"""
from __future__ import annotations

import json
from pathlib import Path

from igllm_ros import world

NUM_TOKEN = "<num>"
SPECIALS = ("<pad>", "<bos>", "<eos>", NUM_TOKEN)
NUMBER_CHARS = "+-.0123456789"

# The fixed fragments of a program, in the order they appear (docs/scene_language.md).
CAMERA_OPEN = "camera(loc=("
SEP = ", "
CAMERA_CLOSE = "))"
ADD_OPEN = "\nadd(shape='"
COLOR_OPEN = "', color='"
MATERIAL_OPEN = "', material='"
SIZE_OPEN = "', size='"
LOC_OPEN = "', loc=("
ROTATION_OPEN = "), rotation="
ADD_CLOSE = ")"
FRAGMENTS = (CAMERA_OPEN, SEP, CAMERA_CLOSE, ADD_OPEN, COLOR_OPEN, MATERIAL_OPEN, SIZE_OPEN, LOC_OPEN, ROTATION_OPEN, ADD_CLOSE)

VOCAB_FILE = "vocab.json"
TOKENIZER_DIR = "tokenizer"


def head_text(shape: str, color: str, material: str, size: str) -> str:
    """An add line up to its size value (a joint head)."""
    return f"{ADD_OPEN}{shape}{COLOR_OPEN}{color}{MATERIAL_OPEN}{material}{SIZE_OPEN}{size}"


def joint_heads() -> dict[str, tuple[str, str, str, str]]:
    """The head of every possible add line -> its (shape, color, material, size)."""
    names = ("shape", "color", "material", "size")
    heads = {}
    for shape in world.ATTRIBUTES[names[0]]:
        for color in world.ATTRIBUTES[names[1]]:
            for material in world.ATTRIBUTES[names[2]]:
                for size in world.ATTRIBUTES[names[3]]:
                    heads[head_text(shape, color, material, size)] = (shape, color, material, size)
    return heads


class DomainVocab:
    """Specials, number characters, fragments and attribute values, one token each; with
    joint=True also one token per add-line head (all four attributes at once, see
    grammar.py)."""

    kind = "domain"

    def __init__(self, tokens: list[str] | None = None, joint: bool = False):
        if tokens is None:
            values = [v for name in ("shape", "color", "material", "size") for v in world.ATTRIBUTES[name]]
            tokens = list(SPECIALS) + list(NUMBER_CHARS) + list(FRAGMENTS) + values
            if joint:
                tokens += list(joint_heads())
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary has duplicate tokens")
        missing = [t for t in SPECIALS if t not in tokens]
        if missing:
            raise ValueError(f"vocabulary lacks the special tokens {missing}")
        self.tokens = list(tokens)
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.num_id = (self._ids[t] for t in SPECIALS)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, fragment: str) -> tuple[int, ...]:
        """Token ids of a fragment: one token, or (numbers) one token per character."""
        if fragment in self._ids:
            return (self._ids[fragment],)
        try:
            return tuple(self._ids[ch] for ch in fragment)
        except KeyError as err:
            raise ValueError(f"fragment {fragment!r} is not in the domain vocabulary") from err

    def save(self, directory: Path) -> None:
        (Path(directory) / VOCAB_FILE).write_text(json.dumps({"kind": self.kind, "tokens": self.tokens}, indent=1) + "\n")

    @classmethod
    def load(cls, directory: Path) -> "DomainVocab":
        data = json.loads((Path(directory) / VOCAB_FILE).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise ValueError(f"{Path(directory) / VOCAB_FILE} has no token list")
        return cls(data["tokens"])


class TokenizerCodec:
    """A pretrained tokenizer with `<num>` added; fragments tokenized one by one."""

    kind = "tokenizer"

    def __init__(self, tokenizer):
        if NUM_TOKEN not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"additional_special_tokens": [NUM_TOKEN]})
        if tokenizer.eos_token_id is None:
            raise ValueError("the pretrained tokenizer has no end-of-sequence token")
        self.tokenizer = tokenizer
        self.num_id = tokenizer.convert_tokens_to_ids(NUM_TOKEN)
        self.eos_id = tokenizer.eos_token_id
        self.bos_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else self.eos_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self._cache: dict[str, tuple[int, ...]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def encode(self, fragment: str) -> tuple[int, ...]:
        ids = self._cache.get(fragment)
        if ids is None:
            ids = tuple(self.tokenizer.encode(fragment, add_special_tokens=False))
            if not ids:
                raise ValueError(f"the tokenizer gives no tokens for {fragment!r}")
            self._cache[fragment] = ids
        return ids

    def save(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(str(Path(directory) / TOKENIZER_DIR))

    @classmethod
    def load(cls, directory: Path) -> "TokenizerCodec":
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(Path(directory) / TOKENIZER_DIR)))
