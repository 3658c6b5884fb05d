"""A small synchronous client for the CLI (and scripts): channel, token, errors, JSON.

It hides the plumbing every command repeats: the channel with optional TLS,
the bearer token as call metadata, a default deadline, and turning a failed
call into one readable line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from camsight.query import queries
from camsight.query.errors import ApiError
from camsight.query.index import EventIndex
from camsight.query.settings import default_index_path
from camsight.v1 import (
    camera_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
    face_gallery_service_pb2_grpc,
)

DEFAULT_SERVER = "localhost:50051"
R = TypeVar("R")


class ClientError(Exception):
    """A call failed; the message is one line fit for a terminal."""


def to_json(message: Message) -> str:
    """One line of JSON with the proto field names (what ``--json`` prints)."""
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True), sort_keys=True)


@dataclass
class Client:
    server: str = DEFAULT_SERVER
    token: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    timeout: float = 30.0
    _channel: grpc.Channel | None = field(default=None, repr=False)

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            if self.tls or self.ca_file:
                root = self.ca_file.read_bytes() if self.ca_file else None
                self._channel = grpc.secure_channel(self.server, grpc.ssl_channel_credentials(root))
            else:
                self._channel = grpc.insecure_channel(self.server)
        return self._channel

    @property
    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []

    def events(self) -> event_service_pb2_grpc.EventServiceStub:
        return event_service_pb2_grpc.EventServiceStub(self.channel)

    def cameras(self) -> camera_service_pb2_grpc.CameraServiceStub:
        return camera_service_pb2_grpc.CameraServiceStub(self.channel)

    def faces(self) -> face_gallery_service_pb2_grpc.FaceGalleryServiceStub:
        return face_gallery_service_pb2_grpc.FaceGalleryServiceStub(self.channel)

    def call(self, method: Callable[..., R], request: Message) -> R:
        """A unary call with the token and deadline; failures become :class:`ClientError`."""
        try:
            return method(request, metadata=self.metadata, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise ClientError(describe(exc, self.server)) from None

    def all_pages(self, method: Callable[..., Any], request: Any, field: str) -> list[Any]:
        """Every item of a paged List call (cameras, statuses, identities)."""
        items: list[Any] = []
        while True:
            response = self.call(method, request)
            items += list(getattr(response, field))
            if not response.next_page_token:
                return items
            request.page_token = response.next_page_token

    def stream(self, method: Callable[..., Iterator[R]], request: Message) -> Iterator[R]:
        """A server-streaming call without deadline (a tail runs until interrupted)."""
        try:
            yield from method(request, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise ClientError(describe(exc, self.server)) from None

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()


def describe(exc: grpc.RpcError, server: str) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the query service at {server}: {details}"
    name = code.name if code is not None else "ERROR"
    return f"{name}: {details}"


class LocalEvents:
    """Read-only event queries straight from a data folder's index (no server)."""

    def __init__(self, data_dir: Path) -> None:
        path = default_index_path(data_dir)
        if not path.is_file():
            raise ClientError(f"no event index in {data_dir} (expected {path})")
        self.index = EventIndex(path)

    def _run(self, fn: Callable[..., R], *args: Any) -> R:
        try:
            return fn(self.index, *args)
        except ApiError as exc:
            raise ClientError(f"{exc.code.name}: {exc.message}") from None

    def list(self, request: event_service_pb2.ListEventsRequest) -> event_service_pb2.ListEventsResponse:
        return self._run(queries.list_events, request)

    def get(self, event_id: str) -> event_pb2.Event:
        return self._run(queries.get_event, event_id)

    def count(self, request: event_service_pb2.CountEventsRequest) -> event_service_pb2.CountEventsResponse:
        return self._run(queries.count_events, request)

    def close(self) -> None:
        self.index.close()
