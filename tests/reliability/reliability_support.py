"""Shared machinery of the reliability tests: the whole pipeline in one process, and bus probes.

:func:`running_system` hosts decoder, detector, face, behavior and query in one
:class:`camsight.runtime.serve.Runtime` (exactly what embedded mode does)
against a real nats-server, so a bad-input case can throw garbage at every
subject and then prove that each service still handles a good message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
from camsight.bus import Bus, connect, subjects
from camsight.cameras import CameraConfig
from camsight.config import HttpSettings, NatsSettings, Settings, StreamSettings
from camsight.runtime.serve import Runtime
from camsight.runtime.service import Service
from camsight.v1 import analysis_pb2, camera_service_pb2_grpc, event_service_pb2_grpc, frame_pb2
from helpers import wait_for
from nats.js.api import RawStreamMsg

SERVICES = (
    "camsight.decoder.service:DecoderService",
    "camsight.detector.service:DetectorService",
    "camsight.face.service:FaceService",
    "camsight.behavior.service:BehaviorService",
    "camsight.query.service:QueryService",
)
# A camera the behavior service owns (it is in the registry) that the decoder leaves alone.
RULED_CAMERA = "ruled"


def load(path: str) -> type[Service]:
    import importlib

    module, _, attr = path.partition(":")
    cls: type[Service] = getattr(importlib.import_module(module), attr)
    return cls


def system_settings(nats_url: str, data_dir: Path, **services: dict[str, Any]) -> Settings:
    """Settings for every service on loopback with cheap analyzers (motion, Haar faces)."""
    sections: dict[str, dict[str, Any]] = {
        "detector": {"analyzers": {"motion": {}}, "batch": 4},
        "face": {"detector": "haar_faces", "embed": True, "crop_size": 0},
        "query": {"host": "127.0.0.1", "port": 0, "ack_wait_s": 2.0},
        "decoder": {"status_interval_s": 0.5},
    }
    sections.update(services)
    return Settings(
        instance="reliability",
        nats=NatsSettings(servers=[nats_url], reconnect_wait_s=0.2, reconnect_jitter_s=0.1),
        http=HttpSettings(host="127.0.0.1", port=0),
        data_dir=data_dir,
        services=sections,
    )


@dataclass
class System:
    """The running pipeline plus a client bus and a gRPC channel to its query service."""

    runtime: Runtime
    task: asyncio.Task[int]
    bus: Bus
    channel: grpc.aio.Channel

    @property
    def events(self) -> event_service_pb2_grpc.EventServiceStub:
        return event_service_pb2_grpc.EventServiceStub(self.channel)

    @property
    def cameras(self) -> camera_service_pb2_grpc.CameraServiceStub:
        return camera_service_pb2_grpc.CameraServiceStub(self.channel)

    def ready(self) -> tuple[bool, str]:
        if self.task.done():
            return False, f"runtime exited: {self.task.result()}"
        return self.runtime.readiness()

    async def assert_ready(self) -> None:
        await wait_for(lambda: self.ready()[0], 20, f"every service ready ({self.ready()[1]})")


@asynccontextmanager
async def running_system(nats_url: str, data_dir: Path) -> AsyncIterator[System]:
    settings = system_settings(nats_url, data_dir)
    runtime = Runtime(settings, [load(path) for path in SERVICES], name="reliability")
    task = asyncio.create_task(runtime.run())
    bus = await connect(settings.nats, StreamSettings(), name="reliability-test")
    channel: grpc.aio.Channel | None = None
    try:
        await bus.ensure_topology()
        registry = await bus.kv(subjects.CAMERAS_BUCKET)
        ruled = CameraConfig(id=RULED_CAMERA, source=str(data_dir / "unused.mp4"), enabled=False)
        await registry.put(RULED_CAMERA, ruled.to_proto().SerializeToString())
        system = System(runtime, task, bus, grpc.aio.insecure_channel("unused"))
        await system.assert_ready()
        port = runtime.services[-1].grpc.port  # type: ignore[attr-defined]
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        system.channel = channel
        yield system
    finally:
        if channel is not None:
            await channel.close()
        runtime.stop()
        await asyncio.wait_for(task, 60)
        await bus.close()


# -- messages -----------------------------------------------------------------


def jpeg(width: int = 64, height: int = 48, value: int = 128) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((height, width, 3), value, np.uint8))
    assert ok
    return bytes(buf.tobytes())


def good_frame(camera: str, seq: int, **fields: Any) -> frame_pb2.Frame:
    frame = frame_pb2.Frame(
        camera_id=camera,
        seq=seq,
        width=64,
        height=48,
        source_width=64,
        source_height=48,
        encoding=frame_pb2.IMAGE_ENCODING_JPEG,
        data=jpeg(),
    )
    frame.capture_time.GetCurrentTime()
    frame.media_time.FromNanoseconds(seq * 40_000_000)
    for key, value in fields.items():
        setattr(frame, key, value)
    return frame


def good_result(camera: str, seq: int) -> analysis_pb2.AnalysisResult:
    result = analysis_pb2.AnalysisResult(analyzer="motion", model_version="1")
    result.frame.camera_id = camera
    result.frame.seq = seq
    result.frame.capture_time.GetCurrentTime()
    result.frame.media_time.FromNanoseconds(seq * 40_000_000)
    return result


# -- probes -------------------------------------------------------------------


async def dead_letters(bus: Bus) -> list[RawStreamMsg]:
    """Every message in the DEADLETTER stream, with its headers."""
    info = await bus.js.stream_info(subjects.DEADLETTER_STREAM)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
        out.append(await bus.js.get_msg(subjects.DEADLETTER_STREAM, seq))
    return out


def same_subject(stored: str, published: str) -> bool:
    """Whether a stored subject is the published one, also after a stream's subject transform
    (DETECTIONS inserts a partition token: ``detections.<p>.<analyzer>.<camera>``)."""
    head, _, rest = published.partition(".")
    return stored == published or (stored.startswith(head + ".") and stored.endswith("." + rest))


async def dead_lettered_from(bus: Bus, subject: str, after: int) -> list[RawStreamMsg]:
    """Dead letters of messages published on ``subject``, newer than DEADLETTER seq ``after``."""
    return [
        m
        for m in await dead_letters(bus)
        if (m.seq or 0) > after
        and same_subject((m.headers or {}).get(subjects.ORIGINAL_SUBJECT_HEADER, ""), subject)
    ]


async def deadletter_seq(bus: Bus) -> int:
    return int((await bus.js.stream_info(subjects.DEADLETTER_STREAM)).state.last_seq)


async def acked(bus: Bus, stream: str, seq: int, durables: Sequence[str] = ()) -> bool:
    """Every durable consumer named (all of the stream's when none is) acked stream seq ``seq``."""
    consumers = [c for c in await bus.js.consumers_info(stream) if not durables or c.name in durables]
    return len(consumers) >= max(len(durables), 1) and all(
        c.ack_floor is not None and (c.ack_floor.stream_seq or 0) >= seq for c in consumers
    )
