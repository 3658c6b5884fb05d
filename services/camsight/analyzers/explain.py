"""Explanations: where an analyzer looked, as a saliency map per image (decision 0037).

An analyzer that can explain itself has an ``explain(images)`` method (the
:class:`Explainer` protocol) returning one map per image: float32, the
image's height x width, 0..1, higher where the model's features speak for
what it found. The torch analyzers compute a class-activation map with the
``grad-cam`` package (EigenCAM: the first principal component of a feature
layer's activations, which needs no gradient of a detector's outputs).
:func:`overlay` draws a map over its image; ``camsight analyze --explain``
writes those overlays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt

from camsight.analyzers.api import Image

Saliency = npt.NDArray[np.float32]
"""One image's map: height x width, float32 in 0..1."""


@runtime_checkable
class Explainer(Protocol):
    """An analyzer that can say where it looked; :class:`~camsight.analyzers.AnalyzerError` if it cannot
    in its current configuration (e.g. a back end without access to the model's layers)."""

    def explain(self, images: Sequence[Image]) -> list[Saliency]: ...


def overlay(image: Image, saliency: Saliency, weight: float = 0.45) -> Image:
    """``image`` with ``saliency`` blended over it as a JET heat map (red = most salient)."""
    if saliency.shape != image.shape[:2]:
        raise ValueError(f"saliency map {saliency.shape} does not match the image {image.shape[:2]}")
    levels = np.asarray(np.clip(saliency, 0.0, 1.0) * 255, dtype=np.uint8)
    heat = cv2.applyColorMap(levels, cv2.COLORMAP_JET)
    return np.asarray(cv2.addWeighted(heat, weight, image, 1.0 - weight, 0.0), dtype=np.uint8)
