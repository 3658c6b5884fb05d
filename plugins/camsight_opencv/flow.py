"""Clip analyzer: motion energy over a window from dense optical flow (Farnebäck).

For each consecutive pair in the window the speed is the 95th percentile of
the flow magnitude, as a fraction of the image width per frame. The window
is labelled ``running`` when the mean speed reaches ``running_speed`` and
``sudden_motion`` when one step exceeds the window's median by
``sudden_jump``. A heuristic: no training, no claim beyond "things move
fast here"; the box covers where the flow was strong.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt
from camsight.analyzers import KIND_ACTIONS, Clip, ClipAnalyzer, ClipConfig, Detection, Image
from pydantic import Field

from camsight_opencv.common import shrink

Flow = tuple[float, npt.NDArray[np.float32]]


class FlowConfig(ClipConfig):
    window: int = Field(
        default=8, ge=2, le=512, description="frames per window (the clip the flow is measured over)"
    )
    max_width: int = Field(
        default=160, ge=32, description="wider frames are shrunk to this width before optical flow (pixels)"
    )
    running_speed: float = Field(
        default=0.02,
        gt=0,
        description="mean speed that labels a window `running` (fraction of the image width per frame)",
    )
    sudden_jump: float = Field(
        default=0.04,
        gt=0,
        description=(
            "speed step above the window's median that labels "
            "it `sudden_motion` (fraction of the width per frame)"
        ),
    )


class FlowActivity(ClipAnalyzer):
    name = "flow_activity"
    kind = KIND_ACTIONS
    version = f"0.1.0+opencv{cv2.__version__}"
    Config = FlowConfig

    def __init__(self, config: ClipConfig | None = None) -> None:
        super().__init__(config)
        # Consecutive windows share all but one pair: cache the flow of each pair.
        self._cache: OrderedDict[tuple[str, int, int], Flow] = OrderedDict()

    @property
    def cfg(self) -> FlowConfig:
        assert isinstance(self.config, FlowConfig)
        return self.config

    def analyze_clips(self, clips: Sequence[Clip]) -> list[list[Detection]]:
        return [self._label(clip) for clip in clips]

    def _label(self, clip: Clip) -> list[Detection]:
        cfg = self.cfg
        flows = [
            self._flow(
                clip.camera_id,
                (clip.frames[i].seq, clip.frames[i + 1].seq),
                clip.images[i],
                clip.images[i + 1],
            )
            for i in range(len(clip.images) - 1)
        ]
        speeds = np.array([speed for speed, _ in flows])
        magnitude = np.mean([mag for _, mag in flows], axis=0)
        labels = []
        mean_speed = float(speeds.mean())
        if mean_speed >= cfg.running_speed:
            labels.append(("running", mean_speed / (2 * cfg.running_speed)))
        jump = float(speeds.max() - np.median(speeds))
        if jump >= cfg.sudden_jump:
            labels.append(("sudden_motion", jump / (2 * cfg.sudden_jump)))
        if not labels:
            return []
        box = _strong_region(magnitude)
        return [
            Detection(label, min(1.0, score), box, attributes={"speed": f"{mean_speed:.4f}"})
            for label, score in labels
        ]

    def _flow(self, camera: str, seqs: tuple[int, int], first: Image, second: Image) -> Flow:
        key = (camera, *seqs)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        a = cv2.cvtColor(shrink(first, self.cfg.max_width)[0], cv2.COLOR_BGR2GRAY)
        b = cv2.cvtColor(shrink(second, self.cfg.max_width)[0], cv2.COLOR_BGR2GRAY)
        flow = cv2.calcOpticalFlowFarneback(a, b, cast(Any, None), 0.5, 3, 15, 3, 5, 1.2, 0)
        magnitude = np.linalg.norm(flow, axis=2).astype(np.float32) / a.shape[1]
        result = (float(np.percentile(magnitude, 95)), magnitude)
        self._cache[key] = result
        while len(self._cache) > 4 * self.cfg.window:
            self._cache.popitem(last=False)
        return result

    def close(self) -> None:
        self._cache.clear()


def _strong_region(magnitude: npt.NDArray[np.float32]) -> tuple[float, float, float, float]:
    """Normalised bounding box of the pixels moving faster than half the peak speed."""
    ys, xs = np.nonzero(magnitude >= 0.5 * float(magnitude.max()))
    if len(xs) == 0:
        return (0.0, 0.0, 1.0, 1.0)
    height, width = magnitude.shape
    return (
        float(xs.min() / width),
        float(ys.min() / height),
        float((xs.max() + 1) / width),
        float((ys.max() + 1) / height),
    )
