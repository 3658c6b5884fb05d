"""Fixtures of the analyzer tests: real frames of the bikes sample, and a detector on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import cv2
import pytest
from analyzer_helpers import Image, OnHost, Results
from camsight.bus import Bus, connect, subjects
from camsight.config import NatsSettings, StreamSettings
from camsight.v1 import analysis_pb2
from helpers import sample_video
from yolo_exports import exports, frames  # noqa: F401 (fixtures: YOLO ONNX exports, the frames they see)


@pytest.fixture
async def bus(nats_settings: NatsSettings) -> AsyncIterator[Bus]:
    """Like the shared fixture, but FRAMES keeps 100 frames per camera so a test can publish
    a whole clip at once (the default keeps 8: newest win, as in production)."""
    b = await connect(nats_settings, StreamSettings(frames_per_camera=100), name="test")
    await b.ensure_topology()
    yield b
    await b.close()


@pytest.fixture(scope="session")
def bikes() -> list[Image]:
    """Frames 36..60 of bikes.mp4 (640x272), decoded with OpenCV: cyclists HOG can see."""
    capture = cv2.VideoCapture(str(sample_video("bikes.mp4")))
    images = []
    try:
        while len(images) < 60:
            ok, image = capture.read()
            assert ok, "bikes.mp4 has fewer than 60 frames"
            images.append(image)
    finally:
        capture.release()
    return images[35:60]


@pytest.fixture
async def results(bus: Bus) -> AsyncIterator[Results]:
    collected = Results()

    async def on_msg(msg: Any) -> None:
        result = analysis_pb2.AnalysisResult()
        result.ParseFromString(msg.data)
        collected.items.append(result)

    sub = await bus.nc.subscribe(subjects.DETECTIONS_ALL, cb=on_msg)
    yield collected
    await sub.unsubscribe()


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Any], Awaitable[None]]]:
    """Start services (start + run as a task); stop, drain and close them at the end."""
    started: list[tuple[Any, asyncio.Task[None]]] = []

    async def start(service: Any) -> None:
        await service.start()
        started.append((service, asyncio.create_task(service.run())))

    yield start
    for service, task in started:
        service.ctx.stopping.set()
        await asyncio.wait_for(task, 30)
        await service.close()


@pytest.fixture
def on_host(
    bus: Bus, nats_settings: NatsSettings, results: Results, monkeypatch: pytest.MonkeyPatch
) -> OnHost:
    return OnHost(bus, nats_settings, results, monkeypatch)
