"""Helpers of the analyzer tests: frames as the decoder publishes them, and a result collector."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from camsight.bus import Bus, subjects
from camsight.config import NatsSettings, Settings
from camsight.runtime import ServiceContext
from camsight.v1 import analysis_pb2, frame_pb2

Image = np.ndarray[Any, np.dtype[np.uint8]]


def make_frame(
    camera: str, seq: int, image: Image, age_s: float = 0.0, paced: bool = False
) -> frame_pb2.Frame:
    """A Frame as the decoder publishes it: JPEG-encoded, captured ``age_s`` seconds ago;
    ``paced`` as for a lossless camera (a file)."""
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    height, width = image.shape[:2]
    frame = frame_pb2.Frame(
        camera_id=camera,
        seq=seq,
        width=width,
        height=height,
        source_width=width,
        source_height=height,
        encoding=frame_pb2.IMAGE_ENCODING_JPEG,
        data=jpeg.tobytes(),
        paced=paced,
    )
    frame.capture_time.FromNanoseconds(int((time.time() - age_s) * 1e9))
    frame.media_time.FromNanoseconds(int(seq / 25 * 1e9))
    return frame


async def publish_frames(
    bus: Bus, camera: str, images: Sequence[Image], age_s: float = 0.0, paced: bool = False
) -> None:
    for seq, image in enumerate(images, start=1):
        await bus.publish(subjects.frames(camera), make_frame(camera, seq, image, age_s, paced))


class Results:
    """Collects every AnalysisResult published on ``detections.>`` (core subscription)."""

    def __init__(self) -> None:
        self.items: list[analysis_pb2.AnalysisResult] = []

    def of(self, analyzer: str) -> list[analysis_pb2.AnalysisResult]:
        return sorted((r for r in self.items if r.analyzer == analyzer), key=lambda r: r.frame.seq)


def context(
    bus: Bus, nats_settings: NatsSettings, section: dict[str, Any], name: str = "detector", **top: Any
) -> ServiceContext:
    """A context for service ``name`` with ``section`` as its settings and ``top`` as top-level ones."""
    ctx = ServiceContext(Settings(nats=nats_settings, instance="test-1", services={name: section}, **top))
    ctx.attach(bus)
    return ctx


@dataclass
class OnHost:
    """What a test needs to run analyzers behind a host on its nats-server (fixture ``on_host``)."""

    bus: Bus
    nats_settings: NatsSettings
    results: Results
    monkeypatch: pytest.MonkeyPatch
