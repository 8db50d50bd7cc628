"""The baseline's hyper-parameters: the `model:` section of config/train/baseline.yaml."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from igllm_ros import world

KIND = "detr_baseline"


@dataclass(frozen=True)
class BaselineConfig:
    kind: str = KIND
    name: str = "detr-baseline"
    input_size: tuple[int, int] = (160, 120)  # (width, height), 4:3
    backbone_channels: tuple[int, ...] = (32, 64, 128)  # one stride-2 stage each, after a stride-2 stem
    d_model: int = 128
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 3
    ffn_dim: int = 512
    dropout: float = 0.0
    max_objects: int = world.MAX_OBJECTS  # learned object queries
    anchors: bool = True  # anchored, refined object queries (network.AnchorQueries); False: plain DETR queries
    attention_sigmas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.0)  # per head, image widths; 0: no bias
    refine_anchors: bool = True  # each decoder layer starts from the previous layer's x, y; False: from the anchor
    position_in_values: bool = True  # cross-attention values carry the image positions too
    # Loss (DETR's recipe): matching cost and loss weights.
    no_object_weight: float = 1.0  # weight of "no object" in the existence BCE (DETR: 0.1, see docs)
    cost_class: float = 1.0  # matching: minus the summed probabilities of the true attributes
    cost_loc: float = 5.0  # matching: L1 of the normalised location
    loss_exists: float = 1.0
    loss_class: float = 1.0  # per attribute cross-entropy
    loss_loc: float = 5.0
    loss_yaw: float = 1.0
    loss_camera: float = 5.0
    aux_loss: bool = True  # deep supervision: heads on every decoder layer (DETR)
    snap_z: bool = True  # at inference, z = world.centre_height(predicted shape, size)
    augment_brightness: float = 0.1  # collate(augment=True): +-10 % brightness/contrast jitter

    def __post_init__(self):
        if self.kind != KIND:
            raise ValueError(f"model.kind is {self.kind!r}; the baseline needs {KIND!r}")
        w, h = self.input_size
        if w * 3 != h * 4 or w < 32:
            raise ValueError(f"model.input_size {tuple(self.input_size)} must be a 4:3 (width, height) of width >= 32")
        if self.d_model % self.heads:
            raise ValueError(f"model.d_model {self.d_model} must be divisible by model.heads {self.heads}")
        if self.anchors and len(self.attention_sigmas) != self.heads:
            raise ValueError(f"model.attention_sigmas needs one width per head ({self.heads}), got {list(self.attention_sigmas)}")
        if not 1 <= self.max_objects <= 64:
            raise ValueError(f"model.max_objects {self.max_objects} must be in 1..64")

    @classmethod
    def from_dict(cls, d: dict) -> "BaselineConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown baseline model option(s) {unknown}; known: {sorted(known)}")
        d = dict(d)
        for key in ("input_size", "backbone_channels", "attention_sigmas"):
            if key in d:
                d[key] = tuple((float if key == "attention_sigmas" else int)(v) for v in d[key])
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["backbone_channels"] = list(self.backbone_channels)
        d["attention_sigmas"] = list(self.attention_sigmas)
        return d
