"""A torchvision video classifier as a clip analyzer: CNNs (r3d_18, mc3_18, r2plus1d_18, s3d) and
video transformers (mvit_v1_b, mvit_v2_s, swin3d_t/s/b; decision 0036).

Each window of frames becomes one ``(3, T, size, size)`` clip, resized
(bilinear, antialiased: as the weights' own ``transforms()`` resize) and
normalised with the mean and std of the weights on the model's device; the
host hands it the window as RGB tensors already there (``inputs = "tensor"``,
decision 0076), so a clip never goes through host memory or numpy. The ``top_k``
classes above ``min_score`` label the window (box = whole frame). The clip
is fed as the weights were trained: its length is the ``clip_len`` their
documentation states (16 frames, 32 for Swin3D) and its size their crop,
unless ``window`` / ``size`` are set. A weights file or random weights take
these from the architecture's DEFAULT weights. MViT's positional sizes are
built for exactly 16x224x224: another clip is refused at load.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from camsight.analyzers import (
    KIND_ACTIONS,
    AnalyzerError,
    Clip,
    ClipAnalyzer,
    ClipConfig,
    Detection,
    Picture,
)
from camsight.analyzers.devices import torch_dtype
from camsight.analyzers.pictures import on_device
from pydantic import Field

from camsight_torch.common import WeightsConfig, label_of, load_torchvision_model, resize, weights_version
from camsight_torch.weights import resolve

if TYPE_CHECKING:
    import torch


def clip_length(weights: Any) -> int | None:
    """Frames per clip the weights were evaluated with: their docs' ``clip_len=N``, else their minimum."""
    stated = re.search(r"clip_len=(\d+)", weights.meta.get("_docs", ""))
    return int(stated.group(1)) if stated else weights.meta.get("min_temporal_size")


def fixed_input(model: str, module: Any, weights: Any, window: int, size: int) -> None:
    """Refuse, in one line, a clip the architecture cannot take (MViT: exactly its weights' minimum)."""
    frames, (height, _) = weights.meta.get("min_temporal_size", 1), weights.meta.get("min_size", (1, 1))
    exact = type(module).__name__ == "MViT"
    fits = (window, size) == (frames, height) if exact else window >= frames and size >= height
    if not fits:
        need = "exactly" if exact else "at least"
        raise AnalyzerError(
            f"{model} takes clips of {need} {frames} frames of {height}x{height};"
            f" got window {window}, size {size}"
        )


class VideoConfig(WeightsConfig, ClipConfig):
    model: str = Field(
        default="r3d_18", description="torchvision video model name (torchvision.models.video)"
    )
    num_classes: int = Field(default=400, ge=1, description="number of classes, as the weights were trained")
    window: int = Field(
        default=16,
        ge=2,
        le=512,
        description=(
            "frames per clip; left out: the clip length the weights were evaluated with (16; 32 for swin3d)"
        ),
    )
    size: int | None = Field(
        default=None,
        ge=16,
        le=512,
        description="frames are resized to size x size (pixels); unset = the weights' crop size",
    )
    top_k: int = Field(default=1, ge=1, description="label a window with at most this many best classes")
    min_score: float = Field(default=0.3, ge=0, le=1, description="minimum class probability (0 to 1)")


class TorchVideoClassifier(ClipAnalyzer):
    name = "torch_video"
    kind = KIND_ACTIONS
    version = "0.1.0"
    Config = VideoConfig
    inputs = "tensor"  # the host keeps its windows on its device (decision 0076)

    def __init__(self, config: ClipConfig | None = None) -> None:
        super().__init__(config)
        self._model: Any = None
        self._device = "cpu"
        self._labels: list[str] = []
        self._size = 112
        self._window: int | None = None  # the weights' clip length, when ``window`` is not set
        self._mean: tuple[float, ...] = ()  # mean and std: the weights', at load
        self._std: tuple[float, ...] = ()

    @property
    def cfg(self) -> VideoConfig:
        assert isinstance(self.config, VideoConfig)
        return self.config

    @property
    def model_version(self) -> str:
        return weights_version(self.version, self.cfg.model, self.cfg)

    @property
    def window(self) -> int:
        """``window`` when set, else (once loaded) the clip length the weights were trained with."""
        return self._window or self.cfg.window

    def load(self) -> None:
        from torchvision.models._meta import _KINETICS400_CATEGORIES

        cfg = self.cfg
        loaded = load_torchvision_model("video", cfg.model, cfg, _KINETICS400_CATEGORIES, cfg.num_classes)
        # the preprocessing these weights were trained with (for a file: the architecture's usual one)
        spec = loaded.weights or resolve(cfg.model, "DEFAULT")
        transform = spec.transforms()
        self._mean, self._std = tuple(transform.mean), tuple(transform.std)
        self._size = cfg.size or transform.crop_size[0]
        self._window = None if "window" in cfg.model_fields_set else clip_length(spec)
        fixed_input(cfg.model, loaded.module, spec, self.window, self._size)
        self._model, self._device, self._labels = loaded.module, loaded.device, loaded.labels

    def analyze_clips(self, clips: Sequence[Clip]) -> list[list[Detection]]:
        if not clips:
            return []
        if self._model is None:
            raise RuntimeError(f"{self.name} used before load()")
        import torch

        dtype = torch_dtype(self.cfg.precision if self.cfg.precision != "int8" else None)
        with torch.inference_mode():
            batch = torch.stack([self._clip_tensor(clip.images) for clip in clips])
            probs = self._model(batch.to(dtype=dtype)).float().softmax(dim=1).cpu()
        top = probs.topk(min(self.cfg.top_k, probs.shape[1]), dim=1)
        return [
            [
                Detection(label_of(self._labels, int(i)), float(s))
                for s, i in zip(scores.tolist(), indices.tolist(), strict=True)
                if s >= self.cfg.min_score
            ]
            for scores, indices in zip(top.values, top.indices, strict=True)
        ]

    def _clip_tensor(self, pictures: Sequence[Picture]) -> torch.Tensor:
        """(3, T, size, size) float32 on the model's device, RGB, normalised as the weights were trained.

        Tensors from the host are used where they lie; arrays are moved there first.
        """
        import torch

        frames = [on_device(picture, self._device) for picture in pictures]
        size = (self._size, self._size)
        if len({tuple(frame.shape) for frame in frames}) == 1:  # one resize call for the window
            resized = resize(torch.stack(frames), size, antialias=True)
        else:  # the camera changed resolution within the window
            resized = torch.cat([resize(frame[None], size, antialias=True) for frame in frames])
        mean = torch.tensor(self._mean, device=self._device).view(1, 3, 1, 1)
        std = torch.tensor(self._std, device=self._device).view(1, 3, 1, 1)
        return ((resized / 255.0 - mean) / std).permute(1, 0, 2, 3)

    def close(self) -> None:
        self._model = None
