"""The live view: a camera's newest frames with its current detections, zones and lines drawn.

One :class:`LiveFeed` per watched camera, shared by every viewer: it follows
``frames.<camera>`` and ``detections.*.<camera>`` with core NATS subscriptions (no
consumer, nothing acknowledged: a viewer must never hold frames back from the
analyzers), draws the newest frame with each analyzer's newest result, at most
``MAX_FPS`` times a second, and hands the same JPEG to every viewer. The cost is
therefore per watched camera, not per browser (docs/decisions/0056). Decoding,
drawing and encoding run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import cv2
import numpy as np
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from camsight.analyzers.pictures import decode_frame
from camsight.bus import Bus, subjects
from camsight.cameras import CameraConfig
from camsight.overlay import Style, draw_result, draw_zones_and_lines
from camsight.v1 import analysis_pb2, frame_pb2

log = logging.getLogger(__name__)

MAX_FPS = 10.0
JPEG_QUALITY = 80
THUMBNAIL_WIDTH = 160


def render(
    frame: frame_pb2.Frame, results: list[analysis_pb2.AnalysisResult], camera: CameraConfig | None
) -> bytes | None:
    """The frame as a JPEG with zones, lines and detections drawn; None when it cannot be decoded."""
    decoded = decode_frame(frame)
    if isinstance(decoded, str):
        return None
    image = np.array(decoded)  # a writable copy (raw frames are views of the message)
    style = Style.for_frame(image.shape[0])
    if camera is not None:
        draw_zones_and_lines(image, camera, style)
    for result in results:
        draw_result(image, result, style)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return bytes(data.tobytes()) if ok else None


def thumbnail(frame: frame_pb2.Frame) -> bytes | None:
    """The frame shrunk to ``THUMBNAIL_WIDTH`` pixels wide, as a JPEG; None when it cannot be decoded."""
    decoded = decode_frame(frame)
    if isinstance(decoded, str):
        return None
    height, width = decoded.shape[:2]
    size = (THUMBNAIL_WIDTH, max(1, round(height * THUMBNAIL_WIDTH / width)))
    small = cv2.resize(decoded, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return bytes(data.tobytes()) if ok else None


class LiveFeed:
    """One camera's drawn frames; viewers wait for a newer one than they have."""

    def __init__(self, bus: Bus, camera_id: str, camera: CameraConfig | None) -> None:
        self.bus = bus
        self.camera_id = camera_id
        self.camera = camera
        self.viewers = 0
        self.jpeg = b""
        self.sequence = 0
        self._frame: frame_pb2.Frame | None = None
        self._results: dict[str, analysis_pb2.AnalysisResult] = {}
        self._arrived = asyncio.Event()
        self._drawn = asyncio.Condition()
        self._subscriptions: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    async def start(self) -> None:
        nc = self.bus.nc
        self._subscriptions = [
            await nc.subscribe(subjects.frames(self.camera_id), cb=self._on_frame),
            await nc.subscribe(subjects.detections_of_camera(self.camera_id), cb=self._on_result),
        ]
        await nc.flush()  # the server has both subscriptions before the first viewer counts
        self._task = asyncio.create_task(self._draw(), name=f"console-live-{self.camera_id}")

    async def _on_frame(self, msg: Msg) -> None:
        try:
            frame = frame_pb2.Frame.FromString(msg.data)
        except DecodeError:
            return  # the decoder's consumers dead-letter it; a viewer just skips it
        if frame.data:
            self._frame = frame
            self._arrived.set()

    async def _on_result(self, msg: Msg) -> None:
        try:
            result = analysis_pb2.AnalysisResult.FromString(msg.data)
        except DecodeError:
            return
        if not result.skipped:
            self._results[result.analyzer] = result

    async def _draw(self) -> None:
        """Draw the newest frame, then wait out the rest of 1/MAX_FPS (frames between are skipped)."""
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            frame, results = self._frame, list(self._results.values())
            assert frame is not None
            began = time.monotonic()
            jpeg = await asyncio.to_thread(render, frame, results, self.camera)
            if jpeg is not None:
                async with self._drawn:
                    self.jpeg, self.sequence = jpeg, self.sequence + 1
                    self._drawn.notify_all()
            await asyncio.sleep(max(0.0, 1.0 / MAX_FPS - (time.monotonic() - began)))

    async def next(self, after: int) -> tuple[bytes, int] | None:
        """The first drawn frame newer than sequence ``after``; None once the feed closed."""
        async with self._drawn:
            await self._drawn.wait_for(lambda: self.closed or self.sequence > after)
            return None if self.closed else (self.jpeg, self.sequence)

    async def close(self) -> None:
        async with self._drawn:
            self.closed = True
            self._drawn.notify_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in self._subscriptions:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class LiveFeeds:
    """The feeds of the cameras someone is watching: started by the first viewer, closed by the last."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._feeds: dict[str, LiveFeed] = {}

    def viewers(self, camera_id: str) -> int:
        feed = self._feeds.get(camera_id)
        return 0 if feed is None else feed.viewers

    @contextlib.asynccontextmanager
    async def watch(self, camera_id: str, camera: CameraConfig | None) -> AsyncIterator[LiveFeed]:
        feed = self._feeds.get(camera_id)
        if feed is None:
            feed = self._feeds[camera_id] = LiveFeed(self.bus, camera_id, camera)
            await feed.start()
        feed.viewers += 1
        try:
            yield feed
        finally:
            feed.viewers -= 1
            if feed.viewers == 0 and self._feeds.get(camera_id) is feed:
                del self._feeds[camera_id]
                await feed.close()

    async def close(self) -> None:
        """Wake every viewer (their streams end) and stop every feed."""
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.close()
