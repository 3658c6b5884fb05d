"""A torchvision video classifier (r3d_18, mc3_18, r2plus1d_18, mvit, s3d, swin3d) as a clip analyzer.

Each window of frames becomes one ``(3, T, size, size)`` clip, normalised
with the mean and std of the named weights (``transforms()``), else Kinetics';
the ``top_k`` classes above ``min_score`` label the window (box = whole frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from camsight.analyzers import (
    KIND_ACTIONS,
    Clip,
    ClipAnalyzer,
    ClipConfig,
    Detection,
)
from camsight.analyzers.devices import torch_dtype
from pydantic import Field

from camsight_torch.common import WeightsConfig, label_of, load_torchvision_model, weights_version

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


class VideoConfig(WeightsConfig, ClipConfig):
    model: str = Field(
        default="r3d_18", description="torchvision video model name (torchvision.models.video)"
    )
    num_classes: int = Field(default=400, ge=1, description="number of classes, as the weights were trained")
    size: int | None = Field(
        default=None,
        ge=16,
        le=512,
        description="frames are resized to size x size (pixels); unset = named weights' crop size, else 112",
    )
    top_k: int = Field(default=1, ge=1, description="label a window with at most this many best classes")
    min_score: float = Field(default=0.3, ge=0, le=1, description="minimum class probability (0 to 1)")


class TorchVideoClassifier(ClipAnalyzer):
    name = "torch_video"
    kind = KIND_ACTIONS
    version = "0.1.0"
    Config = VideoConfig

    def __init__(self, config: ClipConfig | None = None) -> None:
        super().__init__(config)
        self._model: Any = None
        self._device = "cpu"
        self._labels: list[str] = []
        self._size = 112
        self._mean, self._std = KINETICS_MEAN, KINETICS_STD

    @property
    def cfg(self) -> VideoConfig:
        assert isinstance(self.config, VideoConfig)
        return self.config

    @property
    def model_version(self) -> str:
        return weights_version(self.version, self.cfg.model, self.cfg)

    def load(self) -> None:
        from torchvision.models._meta import _KINETICS400_CATEGORIES

        cfg = self.cfg
        loaded = load_torchvision_model("video", cfg.model, cfg, _KINETICS400_CATEGORIES, cfg.num_classes)
        self._model, self._device, self._labels = loaded.module, loaded.device, loaded.labels
        if loaded.weights is not None:  # the preprocessing these weights were trained with
            transform = loaded.weights.transforms()
            self._size = transform.crop_size[0]
            self._mean, self._std = tuple(transform.mean), tuple(transform.std)
        if cfg.size is not None:
            self._size = cfg.size

    def analyze_clips(self, clips: Sequence[Clip]) -> list[list[Detection]]:
        if not clips:
            return []
        if self._model is None:
            raise RuntimeError(f"{self.name} used before load()")
        import torch

        batch = torch.from_numpy(np.stack([self._clip_array(clip) for clip in clips]))
        dtype = torch_dtype(self.cfg.precision if self.cfg.precision != "int8" else None)
        with torch.inference_mode():
            probs = self._model(batch.to(device=self._device, dtype=dtype)).float().softmax(dim=1).cpu()
        top = probs.topk(min(self.cfg.top_k, probs.shape[1]), dim=1)
        return [
            [
                Detection(label_of(self._labels, int(i)), float(s))
                for s, i in zip(scores.tolist(), indices.tolist(), strict=True)
                if s >= self.cfg.min_score
            ]
            for scores, indices in zip(top.values, top.indices, strict=True)
        ]

    def _clip_array(self, clip: Clip) -> np.ndarray[Any, np.dtype[np.float32]]:
        """(3, T, size, size) float32, RGB, normalised as the weights were trained."""
        size = self._size
        frames = np.stack(
            [cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)[:, :, ::-1] for img in clip.images]
        )
        array = (frames.astype(np.float32) / 255.0 - self._mean) / self._std
        return np.ascontiguousarray(array.transpose(3, 0, 1, 2), dtype=np.float32)

    def close(self) -> None:
        self._model = None
