"""DETRBaseline: the non-LLM set predictor, a reconstructor like IG-LLM
(igllm_ros.reconstruction.Reconstructor: collate, training_loss, param_groups,
reconstruct, save), so one training loop, one evaluation tool and the ROS node serve both."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from igllm_ros import program as scene_program
from igllm_ros import world
from igllm_ros.baseline import targets
from igllm_ros.baseline.config import BaselineConfig
from igllm_ros.baseline.matching import set_loss
from igllm_ros.baseline.network import IMAGE_MEAN, IMAGE_STD, DETRNetwork
from igllm_ros.images import brightness_jitter, resize_rgb
from igllm_ros.reconstruction import Reconstruction
from igllm_ros.scene import Camera, Scene, SceneObject

EXISTS_THRESHOLD = 0.5


class DETRBaseline(nn.Module):
    def __init__(self, config: BaselineConfig):
        super().__init__()
        self.config = config
        self.name = config.name
        self.input_size = tuple(config.input_size)
        self.network = DETRNetwork(config)
        self.register_buffer("pixel_mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.network.query_pos.weight.dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- data ---------------------------------------------------------------------------
    def collate(self, samples, augment: bool = False) -> dict[str, torch.Tensor]:
        """Samples (.image HxWx3 uint8, .scene) to CPU tensors; images stay uint8 (cheap to
        pass between DataLoader workers), normalised on the model's device."""
        if not samples:
            raise ValueError("collate needs at least one sample")
        images = np.stack([resize_rgb(s.image, self.input_size) for s in samples])
        images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        if augment and self.config.augment_brightness > 0:
            images = brightness_jitter(images, self.config.augment_brightness)
        encoded = [targets.encode_scene(s.scene, self.config.max_objects) for s in samples]
        batch = {key: torch.from_numpy(np.stack([e[key] for e in encoded])) for key in encoded[0]}
        batch["images"] = images
        return batch

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device)
        return ((images.float() - self.pixel_mean) / self.pixel_std).to(self.dtype)

    # ---- training -----------------------------------------------------------------------
    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        outputs = self.network(self._normalise(batch["images"]), all_layers=self.config.aux_loss)
        total, logs = set_loss(outputs[-1], batch, self.config)
        for aux in outputs[:-1]:  # deep supervision on the earlier decoder layers
            total = total + set_loss(aux, batch, self.config)[0]
        logs["loss"] = float(total.detach())
        return total, logs

    def param_groups(self, lr: float, head_lr: float, weight_decay: float, tower_lr: float | None = None) -> list[dict]:
        """Output heads at head_lr, everything else at lr; no decay on norms, biases and the
        query embeddings. The baseline has no pretrained tower, so tower_lr must be None."""
        if tower_lr is not None:
            raise ValueError("train.tower_lr: the DETR baseline has no pretrained vision tower; leave it 0")
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            is_head = name.startswith(("network.heads.", "network.camera_head."))
            decay = p.ndim >= 2 and "query_pos" not in name and "anchors.points" not in name
            groups.setdefault((is_head, decay), []).append(p)
        return [
            {
                "name": f"{'heads' if is_head else 'body'}{'' if decay else '_no_decay'}",
                "params": params,
                "lr": head_lr if is_head else lr,
                "weight_decay": weight_decay if decay else 0.0,
            }
            for (is_head, decay), params in sorted(groups.items())
        ]

    # ---- inference ----------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, images: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Raw final-layer outputs as probabilities and numbers (numpy, float32)."""
        batch = torch.from_numpy(np.stack([resize_rgb(im, self.input_size) for im in images])).permute(0, 3, 1, 2)
        out = self.network(self._normalise(batch), all_layers=False)[-1]
        result = {"exists": out["exists"].float().sigmoid(), "loc": out["loc"], "yaw": out["yaw"], "camera": out["camera"]}
        for name in targets.ATTRIBUTE_NAMES:
            result[name] = out[name].float().softmax(-1)
        return {k: v.float().cpu().numpy() for k, v in result.items()}

    @torch.no_grad()
    def reconstruct(self, images: list[np.ndarray], max_objects: int = world.MAX_OBJECTS) -> list[Reconstruction]:
        """One Reconstruction per image: objects whose existence probability exceeds 0.5 (at
        most max_objects, most confident first). With config.snap_z, z is the centre height of
        the predicted shape and size (objects stand on the table); else the regressed z."""
        if not len(images):
            return []
        if max_objects < 0:
            raise ValueError(f"max_objects must be >= 0, got {max_objects}")
        was_training = self.training
        self.eval()
        try:
            pred = self.predict(list(images))
        finally:
            self.train(was_training)
        return [self._decode(pred, b, max_objects) for b in range(len(images))]

    def _decode(self, pred: dict[str, np.ndarray], b: int, max_objects: int) -> Reconstruction:
        exists = pred["exists"][b]
        order = [q for q in np.argsort(-exists, kind="stable") if exists[q] > EXISTS_THRESHOLD][:max_objects]
        objects = []
        for q in order:
            values, confidence = {}, {}
            for name in targets.ATTRIBUTE_NAMES:
                k = int(pred[name][b, q].argmax())
                values[name] = world.ATTRIBUTES[name][k]
                confidence[name] = float(pred[name][b, q, k])
            confidence["exists"] = float(exists[q])
            x, y, z = targets.decode_loc(pred["loc"][b, q])
            if self.config.snap_z:
                z = world.centre_height(values["shape"], values["size"])
            yaw = targets.sincos_to_yaw(*pred["yaw"][b, q]) if values["shape"] == "cube" else 0.0
            obj = SceneObject(loc=_round_loc((x, y, z)), rotation=scene_program.canonical_rotation(values["shape"], yaw), **values)
            objects.append(scene_program.with_confidences(obj, confidence))
        camera = Camera(loc=_round_loc(targets.decode_camera(pred["camera"][b])))
        scene = Scene(objects=tuple(objects), camera=camera)
        return Reconstruction(scene=scene, program=scene_program.format_program(scene), steps=1)

    def save(self, directory, card: dict | None = None) -> None:
        from igllm_ros.baseline.checkpoint import save

        save(self, directory, card)


def _round_loc(loc) -> tuple[float, float, float]:
    # The scene carries what its program says (millimetres), as IG-LLM's parsed scenes do.
    return tuple(round(float(v), scene_program.LOC_DECIMALS) + 0.0 for v in loc)

