"""Helpers of the decoder tests: decoder replicas on their own bus connections, registry and status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import av
from camsight.bus import Bus, subjects
from camsight.cameras import CameraConfig
from camsight.decoder.service import DecoderService
from camsight.decoder.sources import EndOfSource, Source
from camsight.v1 import camera_pb2, frame_pb2
from helpers import sample_video
from nats.aio.msg import Msg

TRUNCATED = "truncated: read 5.6 s of 10.0 s (140 of 250 frames)"
"""What a decoder says of :func:`truncated_video`."""


def faststart(path: Path, source: Path) -> Path:
    """``source`` remuxed with its index (moov) in front, as web and camera exports write it."""
    with av.open(str(source)) as original, av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        video = original.streams.video[0]
        stream = out.add_stream_from_template(video)
        for packet in original.demux(video):
            if packet.dts is not None:  # not the demuxer's final empty packet
                packet.stream = stream
                out.mux(packet)
    return path


def read_to_the_end(source: Source) -> int:
    """Grab every picture (the sampler takes all); how many there were."""
    count = 0
    while True:
        try:
            source.grab(lambda t: True)
        except EndOfSource:
            return count
        count += 1


def truncated_video(path: Path, keep: float = 0.6) -> Path:
    """bikes.mp4 (250 frames, 10 s) with its index in front, cut after ``keep`` of its bytes:
    readable, just short (140 frames at 0.6), the way an interrupted copy or upload leaves it."""
    whole = faststart(path.with_name(f"whole-{path.name}"), sample_video("bikes.mp4")).read_bytes()
    path.write_bytes(whole[: int(len(whole) * keep)])
    return path


# Short times so ownership, back-off and watchdogs play out in a test's seconds.
FAST: dict[str, Any] = {
    "lease_ttl_s": 1.5,
    "renew_interval_s": 0.2,
    "backoff_min_s": 0.1,
    "backoff_max_s": 0.5,
    "watchdog_s": 1.5,
    "open_timeout_s": 2.0,
    "pacing_resync_s": 0.5,
    "status_interval_s": 0.5,
}


class RunningDecoder:
    """One DecoderService with its own NATS connection, driven like the runtime does."""

    def __init__(self, service: DecoderService, bus: Bus, task: asyncio.Task[None]) -> None:
        self.service = service
        self.bus = bus
        self.task = task

    async def stop(self) -> None:
        """Graceful: stop cameras, release leases, leave."""
        self.service.ctx.stopping.set()
        await asyncio.wait_for(self.task, 20)
        await self.service.close()
        await self.bus.close()

    async def kill(self) -> None:
        """Like a crash: no lease released, no goodbye; the connection just goes away."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.service.close()
        await self.bus.nc.close()


StartDecoder = Callable[..., Awaitable[RunningDecoder]]


async def put_camera(bus: Bus, camera: CameraConfig) -> None:
    kv = await bus.kv(subjects.CAMERAS_BUCKET)
    await kv.put(camera.id, camera.to_proto().SerializeToString())


async def camera_status(bus: Bus, camera_id: str) -> camera_pb2.CameraStatus | None:
    kv = await bus.kv(subjects.CAMERA_STATUS_BUCKET)
    try:
        entry = await kv.get(camera_id)
    except Exception:
        return None
    return camera_pb2.CameraStatus.FromString(entry.value or b"")


def state_is(bus: Bus, camera_id: str, state: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        status = await camera_status(bus, camera_id)
        return status is not None and status.state == state

    return check


class Frames:
    """Collects the frames of one camera through a core subscription (and its end marker)."""

    def __init__(self) -> None:
        self.frames: list[frame_pb2.Frame] = []
        self.end: frame_pb2.Frame | None = None

    async def on_msg(self, msg: Msg) -> None:
        frame = frame_pb2.Frame.FromString(msg.data)
        if frame.end_of_stream:
            self.end = frame
        else:
            self.frames.append(frame)

    @classmethod
    async def subscribe(cls, bus: Bus, camera: str) -> Frames:
        frames = cls()
        await bus.nc.subscribe(subjects.frames(camera), cb=frames.on_msg)
        return frames

    def more_than(self, count: int) -> bool:
        return len(self.frames) > count
