"""Helpers of the query tests: events to publish, the real service in-process on a free gRPC port.

The service runs inside :class:`camsight.runtime.serve.Runtime` exactly as
``camsight serve query`` runs it, against the per-test nats-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from camsight.config import HttpSettings, NatsSettings, Settings
from camsight.query.service import QueryService
from camsight.runtime.serve import Runtime
from camsight.v1 import (
    analysis_pb2,
    camera_service_pb2_grpc,
    event_pb2,
    event_service_pb2_grpc,
    face_gallery_service_pb2_grpc,
)
from google.protobuf.timestamp_pb2 import Timestamp
from helpers import wait_for

BASE_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def ts(seconds: float) -> Timestamp:
    """A timestamp ``seconds`` after 2026-01-01T00:00:00Z."""
    out = Timestamp()
    out.FromNanoseconds(BASE_NS + int(seconds * 1e9))
    return out


def make_event(n: int, **fields: Any) -> event_pb2.Event:
    """Event number ``n`` starting n seconds after the base time; fields override."""
    event = event_pb2.Event(
        id=f"ev-{n:05d}",
        type=event_pb2.EVENT_TYPE_ZONE_ENTER,
        state=event_pb2.EVENT_STATE_ENDED,
        camera_id="lobby",
        label="person",
        zone_id="door",
        rule_id="r1",
        confidence=0.5,
        revision=1,
    )
    event.start_time.CopyFrom(ts(n))
    event.end_time.CopyFrom(ts(n + 0.5))
    for key, value in fields.items():
        if isinstance(value, Timestamp):
            getattr(event, key).CopyFrom(value)
        else:
            setattr(event, key, value)
    return event


def add_extras(event: event_pb2.Event, n: int) -> event_pb2.Event:
    """Give event ``n`` a direction, attributes and media times, varied (and sometimes unset) by n."""
    if n % 4 >= 2:
        event.direction = (analysis_pb2.CROSSING_DIRECTION_IN, analysis_pb2.CROSSING_DIRECTION_OUT, 0)[n % 3]
    if n % 2 == 0:
        event.attributes["in_count"] = str(n % 4)
    if n % 5 == 0:
        event.attributes["action"] = "running"
    if n % 6 == 0:
        event.attributes["odd-key_2"] = "x y 'q'"
    if n % 9:
        event.start_media_time.FromNanoseconds(n * 10**9)
        if event.HasField("end_time"):
            event.end_media_time.FromNanoseconds(n * 10**9 + 5 * 10**8)
    return event


@dataclass
class RunningQuery:
    runtime: Runtime
    task: asyncio.Task[int]
    channel: grpc.aio.Channel

    @property
    def service(self) -> QueryService:
        service = self.runtime.services[0]
        assert isinstance(service, QueryService)
        return service

    @property
    def events(self) -> event_service_pb2_grpc.EventServiceStub:
        return event_service_pb2_grpc.EventServiceStub(self.channel)

    @property
    def cameras(self) -> camera_service_pb2_grpc.CameraServiceStub:
        return camera_service_pb2_grpc.CameraServiceStub(self.channel)

    @property
    def faces(self) -> face_gallery_service_pb2_grpc.FaceGalleryServiceStub:
        return face_gallery_service_pb2_grpc.FaceGalleryServiceStub(self.channel)

    def indexed(self) -> int:
        assert self.service.index is not None
        return self.service.index.total()


def query_settings(nats: NatsSettings, data_dir: Path, **query: Any) -> Settings:
    return Settings(
        instance="test",
        nats=nats,
        data_dir=data_dir,
        http=HttpSettings(host="127.0.0.1", port=0),
        services={"query": {"host": "127.0.0.1", "port": 0, **query}},
    )


@asynccontextmanager
async def running_query(settings: Settings) -> AsyncIterator[RunningQuery]:
    runtime = Runtime(settings, [QueryService], "query")
    task = asyncio.create_task(runtime.run())

    def ready() -> bool:
        if task.done():
            task.result()
        return runtime.readiness()[0]

    await wait_for(ready, 20, "the query service to be ready")
    service = runtime.services[0]
    assert isinstance(service, QueryService)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        yield RunningQuery(runtime, task, channel)
    finally:
        await channel.close()
        runtime.stop()
        await asyncio.wait_for(task, 30)


# Filters with the predicate they must match, used against the server and the bare index.
FILTERS = [
    ('camera = "lobby"', lambda e: e.camera_id == "lobby"),
    ("camera != lobby", lambda e: e.camera_id != "lobby"),
    ("type = ZONE_ENTER", lambda e: e.type == event_pb2.EVENT_TYPE_ZONE_ENTER),
    ("type = event_type_line_cross", lambda e: e.type == event_pb2.EVENT_TYPE_LINE_CROSS),
    ('label = "car"', lambda e: e.label == "car"),
    ("identity = alice", lambda e: e.identity_id == "alice"),
    ("zone = gate", lambda e: e.zone_id == "gate"),
    ("line = l1", lambda e: e.line_id == "l1"),
    ("rule = 'r2'", lambda e: e.rule_id == "r2"),
    ("state = STARTED", lambda e: e.state == event_pb2.EVENT_STATE_STARTED),
    ("confidence >= 0.5", lambda e: e.confidence >= 0.5),
    ("confidence < 0.25", lambda e: e.confidence < 0.25),
    (
        'start_time >= "2026-01-01T00:00:10Z" AND start_time < "2026-01-01T00:00:20Z"',
        lambda e: 10 <= e.start_time.seconds - ts(0).seconds < 20,
    ),
    ("end_time <= 2026-01-01T00:00:05.5Z", lambda e: e.end_time.ToNanoseconds() <= ts(5.5).ToNanoseconds()),
    (
        "camera = lobby AND (type = LINE_CROSS OR label = car)",
        lambda e: e.camera_id == "lobby" and (e.type == event_pb2.EVENT_TYPE_LINE_CROSS or e.label == "car"),
    ),
    ("camera = yard label = person", lambda e: e.camera_id == "yard" and e.label == "person"),
    ("direction = IN", lambda e: e.direction == analysis_pb2.CROSSING_DIRECTION_IN),
    ("direction = out", lambda e: e.direction == analysis_pb2.CROSSING_DIRECTION_OUT),
    # Only line crossings have a direction: != on it is false for every other event.
    ("direction != CROSSING_DIRECTION_IN", lambda e: e.direction == analysis_pb2.CROSSING_DIRECTION_OUT),
    ("direction != OUT", lambda e: e.direction == analysis_pb2.CROSSING_DIRECTION_IN),
    ('attributes.in_count = "2"', lambda e: e.attributes.get("in_count") == "2"),
    # An event without the attribute fails every comparison on it, != included.
    ("attributes.in_count != 2", lambda e: e.attributes.get("in_count") not in (None, "2")),
    ("attributes.odd-key_2 = \"x y 'q'\"", lambda e: e.attributes.get("odd-key_2") == "x y 'q'"),
    (
        "attributes.action = running OR direction = IN",
        lambda e: (
            e.attributes.get("action") == "running" or e.direction == analysis_pb2.CROSSING_DIRECTION_IN
        ),
    ),
    ("attributes.missing = x", lambda e: False),
    (
        "start_media_time >= 10 AND start_media_time < 20.5",
        lambda e: e.HasField("start_media_time") and 10 <= e.start_media_time.ToNanoseconds() / 1e9 < 20.5,
    ),
    (
        "end_media_time <= 5.5",
        lambda e: e.HasField("end_media_time") and e.end_media_time.ToNanoseconds() <= 5.5e9,
    ),
    (
        "start_media_time != 3",
        lambda e: e.HasField("start_media_time") and e.start_media_time.ToNanoseconds() != 3e9,
    ),
    ('camera = "lobby\' OR 1=1 --"', lambda e: False),
    ('attributes.in_count = "\') OR 1=1 --"', lambda e: False),
    ('label = "x\\"; DROP TABLE events; --"', lambda e: False),
]
