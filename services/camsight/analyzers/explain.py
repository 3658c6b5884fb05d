"""Explanations: where an analyzer looked, as a saliency map per image (decision 0037).

An analyzer that can explain itself has an ``explain(images)`` method (the
:class:`Explainer` protocol) returning one map per image: float32, the
image's height x width, 0..1, higher where the model's features speak for
what it found. The torch analyzers compute a class-activation map with the
``grad-cam`` package (EigenCAM: the first principal component of a feature
layer's activations, which needs no gradient of a detector's outputs).
:func:`overlay` draws a map over its image; ``camsight analyze --explain``
writes those overlays.

On the bus a map travels small (:func:`encode`: an 8-bit PNG of at most
:data:`MAP_SIDE` px on its longer side, ~1 KB, whatever the frame's size) in
``AnalysisResult.saliency`` of an analyzer configured with ``explain: true``;
the behavior service draws it over the event's snapshot (:func:`decode`
stretches it back). The maps are smooth at feature resolution (CenterFace's
explained layer is 1/32 of its input: 5x6 cells on carphone), so the small
map loses nothing a heat map shows.
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

MAP_SIDE = 64
"""Longer side of a map on the bus, in pixels."""


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


def encode(saliency: Saliency) -> bytes:
    """``saliency`` as a small 8-bit grayscale PNG (longer side at most :data:`MAP_SIDE`)."""
    height, width = saliency.shape
    scale = min(1.0, MAP_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(saliency, size, interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", np.asarray(np.clip(small, 0.0, 1.0) * 255 + 0.5, np.uint8))
    if not ok:
        raise ValueError("the saliency map could not be encoded")
    return bytes(png.tobytes())


def decode(png: bytes, height: int, width: int) -> Saliency | None:
    """A map from :func:`encode` stretched to ``height`` x ``width``; None when unreadable."""
    small = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    if small is None or height < 1 or width < 1:
        return None
    stretched = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(stretched, np.float32) / np.float32(255.0)
