"""Helpers shared by the torch analyzers: label lists, weight files, image tensors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from camsight.analyzers import AnalyzerConfig, AnalyzerError, Image, resolve_device
from camsight.analyzers.devices import prepare_module
from pydantic import Field, model_validator

if TYPE_CHECKING:
    import torch


class WeightsConfig(AnalyzerConfig):
    """A weights file, or an explicit opt-in to random weights (plumbing tests, benchmarks)."""

    weights: Path | None = Field(
        default=None,
        description="the model's weights: a torch.save state-dict file (required unless random_weights)",
    )
    random_weights: bool = Field(
        default=False,
        description=(
            "run without weights, randomly initialised: results are noise (plumbing tests, benchmarks)"
        ),
    )
    labels: list[str] | Path | None = Field(
        default=None,
        description="class names by class index, or a file with one per line; unset = the model's own",
    )

    @model_validator(mode="after")
    def _weights_or_random(self) -> WeightsConfig:
        if self.weights is None and not self.random_weights:
            raise ValueError(
                "set `weights` to a state-dict file (or random_weights: true for plumbing tests)"
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


def load_weights(module: Any, path: Path | None) -> None:
    """Load a state dict saved with ``torch.save(model.state_dict(), path)`` (tensors only)."""
    if path is None:
        return
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise AnalyzerError(f"cannot load weights {path}: {exc}") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise AnalyzerError(f"weights {path} do not fit the model: {str(exc)[:300]}") from None


def to_tensor(image: Image, device: str, dtype: torch.dtype) -> torch.Tensor:
    """BGR uint8 HxWx3 -> RGB float CxHxW in 0..1 on ``device``."""
    import torch

    rgb = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))
    return torch.from_numpy(rgb).to(device=device).to(dtype=dtype).div_(255.0)


def weights_version(version: str, model: str, cfg: WeightsConfig) -> str:
    """``0.1.0/r3d_18/weights.pt``: the plugin, the architecture and the weights file."""
    return f"{version}/{model}/{cfg.weights.name if cfg.weights else 'random'}"


def load_torchvision_model(
    family: str, model: str, cfg: WeightsConfig, categories: Sequence[str], **model_kwargs: Any
) -> tuple[Any, str, list[str]]:
    """Build a torchvision model of ``family`` ("detection", "video") with the configured weights.

    Returns the module placed on its device at its precision, the device, and
    the class names. Nothing is downloaded: weights come from ``cfg.weights``.
    """
    import torchvision

    if model not in torchvision.models.list_models(module=getattr(torchvision.models, family)):
        raise AnalyzerError(f"{model!r} is not a torchvision {family} model")
    device = resolve_device(cfg.device)
    labels = load_labels(cfg.labels, categories)
    module = torchvision.models.get_model(model, weights=None, **model_kwargs)
    load_weights(module, cfg.weights)
    return prepare_module(module, device, cfg.precision), device, labels
