"""Which detector ``camsight run`` and ``camsight demo`` use when the config names none.

A COCO detector by name (:data:`COCO_MODEL`, chosen by bench/models.py: decision
0035) when its weights are in the torch cache or can be fetched now (once,
with torchvision's progress bar); else the detector service's own defaults,
HOG people + MOG2 motion, and one line saying so with the command that gets
the COCO detector. A config whose ``services.detector.analyzers`` is set is
the user's choice and is kept as it is. ``CAMSIGHT_NO_DOWNLOAD=1`` uses the
cache only (a node whose lookups hang rather than fail, a test suite).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from camsight.analyzers.manager import default_manager
from camsight.config import Settings
from camsight.run.weights import PullFailed, cache_file, default_weights, pull

COCO_MODEL = "ssdlite320_mobilenet_v3_large"
COCO_ANALYZER = "torchvision_detector"
PULL_COMMAND = f"camsight models pull {COCO_MODEL}"
COCO_CONFIG: dict[str, Any] = {"model": COCO_MODEL, "weights": "DEFAULT", "min_score": 0.5}
NO_DOWNLOAD = "CAMSIGHT_NO_DOWNLOAD"
HOG_FALLBACK = (
    "HOG people + MOG2 motion, a CPU baseline: it finds upright walkers and takes some clutter "
    "(blurred headlights, posts) for people, so expect false person events"
)
"""The fallback, said plainly: on the demo's street montage most of its person tracks are
headlight bokeh (seen in the report's snapshots, 2026-12-07)."""


@dataclass(frozen=True)
class DetectorChoice:
    """The detector settings a run uses and what to tell the user about them."""

    settings: Settings
    detector: str
    """What detects objects, for the summary."""
    fallback: str | None = None
    """Why the COCO detector is not used and the one command that gets it; None when it is."""


def choose_detector(settings: Settings) -> DetectorChoice:
    """``settings`` with the COCO detector when it can be had (may download its weights: blocking)."""
    section = settings.services.get("detector", {})
    if "analyzers" in section:
        return DetectorChoice(settings, "as configured (services.detector.analyzers)")
    reason = _unavailable(section)
    if reason is not None:
        return DetectorChoice(settings, HOG_FALLBACK, reason)
    detector = {**section, "analyzers": {COCO_ANALYZER: COCO_CONFIG}}
    chosen = settings.model_copy(update={"services": {**settings.services, "detector": detector}})
    return DetectorChoice(chosen, f"{COCO_MODEL} (COCO, torchvision weights DEFAULT)")


def _unavailable(section: dict[str, Any]) -> str | None:
    """Why the COCO detector cannot run here (one line with the fix), or None once its weights are cached."""
    manager = default_manager(section.get("disabled_plugins", ()), section.get("plugin_modules", ()))
    if COCO_ANALYZER not in manager.analyzers():
        return f"the torch plugin is not installed (pip install 'camsight[torch]', then {PULL_COMMAND})"
    weights = default_weights(COCO_MODEL)
    absent = f"{COCO_MODEL} weights are not in the torch cache"
    if os.environ.get(NO_DOWNLOAD) == "1" and not cache_file(weights).is_file():
        return f"{absent} ({NO_DOWNLOAD}=1); get them with: {PULL_COMMAND}"
    try:
        pull(weights)
    except PullFailed as exc:
        return f"{absent} ({exc}); get them with: {PULL_COMMAND}"
    return None
