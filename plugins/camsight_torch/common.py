"""Helpers shared by the torch analyzers: label lists, weight files, image tensors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camsight.analyzers import AnalyzerConfig, AnalyzerError, Picture, resolve_device
from camsight.analyzers.devices import prepare_module
from camsight.analyzers.pictures import on_device
from pydantic import Field, model_validator

from camsight_torch.weights import is_named, resolve, state_dict

if TYPE_CHECKING:
    import torch


class WeightsConfig(AnalyzerConfig):
    """A weights file, or an explicit opt-in to random weights (plumbing tests, benchmarks)."""

    weights: str | None = Field(
        default=None,
        description=(
            "the model's weights: DEFAULT, a torchvision weights name (e.g."
            " FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1, from the torch cache, downloaded once"
            " when absent) or a torch.save state-dict file (required unless random_weights)"
        ),
    )
    random_weights: bool = Field(
        default=False,
        description=(
            "run without weights, randomly initialised: results are noise (plumbing tests, benchmarks)"
        ),
    )
    labels: list[str] | Path | None = Field(
        default=None,
        description=(
            "class names by class index, or a file with one per line;"
            " unset = the named weights' own, else the model's default"
        ),
    )

    @property
    def named_weights(self) -> str | None:
        """The weights name when ``weights`` names torchvision weights rather than a file."""
        return self.weights if self.weights is not None and is_named(self.weights) else None

    @model_validator(mode="after")
    def _weights_or_random(self) -> WeightsConfig:
        if self.weights is None and not self.random_weights:
            raise ValueError(
                "set `weights` to DEFAULT, a weights name or a state-dict file"
                " (or random_weights: true for plumbing tests)"
            )
        return self


def load_labels(labels: Sequence[str] | Path | None, default: Sequence[str]) -> list[str]:
    """Class names from a list, a file (one per line, blank lines ignored) or ``default``."""
    if labels is None:
        return list(default)
    if isinstance(labels, Path):
        try:
            return [line.strip() for line in labels.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise AnalyzerError(f"cannot read label file {labels}: {exc}") from None
    return list(labels)


def label_of(labels: Sequence[str], index: int) -> str:
    return labels[index] if 0 <= index < len(labels) else f"class_{index}"


def load_weights(module: Any, path: Path) -> None:
    """Load a state dict saved with ``torch.save(model.state_dict(), path)`` (tensors only)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise AnalyzerError(f"cannot load weights {path}: {exc}") from None
    fit_state(module, state, str(path))


def fit_state(module: Any, state: dict[str, Any], source: str) -> None:
    """Load ``state`` into ``module``; a mismatch names the weights and the model's class."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise AnalyzerError(
            f"weights {source} do not fit the model {module.__class__.__name__}: {first}"
        ) from None


def to_tensor(picture: Picture, device: str, dtype: torch.dtype) -> torch.Tensor:
    """A BGR uint8 HxWx3 array, or the host's RGB uint8 3xHxW tensor -> RGB float 3xHxW in 0..1 on ``device``.

    The host's tensor already lies on ``device`` (``inputs = "tensor"``): it is
    only converted to ``dtype`` there, never copied through host memory.
    """
    return on_device(picture, device).to(dtype=dtype).div_(255.0)


def resize(pictures: torch.Tensor, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    """Bilinear resize of ``N x 3 x H x W`` uint8 pictures to ``size`` (height, width), where they lie;
    float out, in whole grey levels (as OpenCV's uint8 resizes).

    On the CPU torch resizes uint8 directly (its vectorised path: 3 to 8 times faster than
    in float, measured in decision 0076); CUDA resizes floats only.
    """
    from torch.nn.functional import interpolate

    if pictures.device.type == "cpu":
        return interpolate(pictures, size, mode="bilinear", antialias=antialias).float()
    resized = interpolate(pictures.float(), size, mode="bilinear", antialias=antialias)
    return resized.round_().clamp_(0, 255)


def weights_version(version: str, model: str, cfg: WeightsConfig) -> str:
    """``0.1.0/r3d_18/weights.pt``: the plugin, the architecture and the weights file."""
    if cfg.weights is None:
        return f"{version}/{model}/random"
    return f"{version}/{model}/{cfg.named_weights or Path(cfg.weights).name}"


@dataclass(frozen=True)
class Loaded:
    """A built model: the module on its device at its precision, and what came with its weights."""

    module: Any
    device: str
    labels: list[str]
    weights: Any  # the torchvision WeightsEnum member, for named weights; else None


def load_torchvision_model(
    family: str,
    model: str,
    cfg: WeightsConfig,
    categories: Sequence[str],
    num_classes: int,
    **model_kwargs: Any,
) -> Loaded:
    """Build a torchvision model of ``family`` ("detection", "video") with the configured weights.

    Named weights bring their own class count and labels (``meta["categories"]``)
    and come from the torch cache (see ``camsight_torch.weights``); a file is a
    state dict for a model of ``num_classes`` classes.
    """
    import torchvision

    if model not in torchvision.models.list_models(module=getattr(torchvision.models, family)):
        raise AnalyzerError(f"{model!r} is not a torchvision {family} model")
    device = resolve_device(cfg.device)
    named = resolve(model, cfg.named_weights) if cfg.named_weights else None
    if named is not None:
        categories = named.meta["categories"]
        num_classes = len(categories)
    labels = load_labels(cfg.labels, categories)
    module = torchvision.models.get_model(model, weights=None, num_classes=num_classes, **model_kwargs)
    if named is not None:
        fit_state(module, state_dict(named), str(named))
    elif cfg.weights is not None:
        load_weights(module, Path(cfg.weights))
    return Loaded(prepare_module(module, device, cfg.precision), device, labels, named)
