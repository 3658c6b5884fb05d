"""Templates: one jinja2 environment, autoescaped, with the filters pages share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from camsight.query.console.session import Session
from camsight.v1 import camera_pb2, event_pb2


def timestamp(value: Timestamp) -> str:
    """UTC, to the millisecond; empty when unset (a running event has no end)."""
    if not value.seconds and not value.nanos:
        return ""
    when = datetime.fromtimestamp(value.ToNanoseconds() / 1e9, UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def media_time(value: Duration) -> str:
    return f"{value.ToNanoseconds() / 1e9:.3f} s"


def seconds(value: Duration) -> str:
    """A media time as a media fragment's seconds (``#t=3.600``)."""
    return f"{value.ToNanoseconds() / 1e9:.3f}"


def event_type(value: int) -> str:
    return event_pb2.EventType.Name(event_pb2.EventType.ValueType(value)).removeprefix("EVENT_TYPE_")


def event_state(value: int) -> str:
    return event_pb2.EventState.Name(event_pb2.EventState.ValueType(value)).removeprefix("EVENT_STATE_")


def camera_state(value: int) -> str:
    return (
        camera_pb2.CameraState.Name(camera_pb2.CameraState.ValueType(value))
        .removeprefix("CAMERA_STATE_")
        .lower()
    )


ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("camsight.query.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(
    timestamp=timestamp,
    media_time=media_time,
    seconds=seconds,
    event_type=event_type,
    event_state=event_state,
    camera_state=camera_state,
)


def page(name: str, session: Session | None, *, status: int = 200, **context: Any) -> web.Response:
    """A full page; ``session`` None for the login page. Nothing here is cached by the browser."""
    html = ENV.get_template(name).render(session=session, **context)
    return web.Response(
        text=html, status=status, content_type="text/html", headers={"Cache-Control": "no-store"}
    )


def fragment(name: str, **context: Any) -> str:
    """A piece of a page (an event row for the live list), on one line for SSE."""
    return " ".join(ENV.get_template(name).render(**context).split("\n"))
