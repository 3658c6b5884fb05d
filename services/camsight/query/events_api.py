"""EventService: list, get, count, stream events and fetch snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import nats.js.errors

from camsight.bus import Bus, subjects
from camsight.naming import shown
from camsight.query import queries, rpc
from camsight.query.errors import ApiError, invalid, not_found
from camsight.query.filters import FIELDS, BoolOp, Comparison, Filter, timestamp_ns
from camsight.query.index import EventIndex, Key
from camsight.query.ingest import LiveHub
from camsight.query.snapshots import image_info
from camsight.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc

REPLAY_PAGE = 500


def replay_start(request: event_service_pb2.StreamEventsRequest) -> int | None:
    """Where StreamEvents replays from, in the index's nanoseconds; None: live events only.

    A time outside the index's range is clamped like a filter's (year 3000: nothing to
    replay, then live events); an invalid Timestamp is INVALID_ARGUMENT.
    """
    if not request.HasField("start_time"):
        return None
    try:
        return timestamp_ns(request.start_time)
    except ValueError:
        raise invalid(
            "start_time", "must be a valid Timestamp: from year 1 to 9999, nanos 0 to 999999999"
        ) from None


class EventServicer(event_service_pb2_grpc.EventServiceServicer):
    def __init__(self, index: EventIndex, hub: LiveHub, bus: Bus) -> None:
        self.index = index
        self.hub = hub
        self.bus = bus

    @rpc.unary
    async def ListEvents(
        self, request: event_service_pb2.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> event_service_pb2.ListEventsResponse:
        return await asyncio.to_thread(queries.list_events, self.index, request, rpc.deadline(context))

    @rpc.unary
    async def GetEvent(
        self, request: event_service_pb2.GetEventRequest, context: grpc.aio.ServicerContext
    ) -> event_pb2.Event:
        return await asyncio.to_thread(queries.get_event, self.index, request.id, rpc.deadline(context))

    @rpc.unary
    async def CountEvents(
        self, request: event_service_pb2.CountEventsRequest, context: grpc.aio.ServicerContext
    ) -> event_service_pb2.CountEventsResponse:
        return await asyncio.to_thread(queries.count_events, self.index, request, rpc.deadline(context))

    @rpc.streaming
    async def StreamEvents(
        self, request: event_service_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[event_service_pb2.StreamEventsResponse]:
        """Replay stored events, then follow live ones, without a gap or a duplicate.

        The live subscription opens before the replay reads the index, so an
        event committed during the replay is queued; queued events the replay
        already sent (same or older revision) are skipped.
        """
        flt = queries.parse(request.filter, live=True)
        start_ns = replay_start(request)
        sub = self.hub.subscribe()
        try:
            replayed: dict[str, tuple[int, int]] = {}
            if start_ns is not None:
                async for event in self._replay(flt, start_ns):
                    replayed[event.id] = (event.revision, event.state)
                    yield event_service_pb2.StreamEventsResponse(event=event)
            while True:
                if sub.overflowed and sub.queue.empty():
                    raise ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED, "live tail fell too far behind")
                event = await sub.queue.get()
                if not flt.matches(event):
                    continue
                sent = replayed.get(event.id)
                if sent is not None and (event.revision, event.state) <= sent:
                    continue
                yield event_service_pb2.StreamEventsResponse(event=event)
        finally:
            self.hub.unsubscribe(sub)

    async def _replay(self, flt: Filter, start_ns: int) -> AsyncIterator[event_pb2.Event]:
        since = Comparison(FIELDS["start_time"], ">=", start_ns)
        bounded = Filter(BoolOp("AND", (since, flt.root)) if flt.root else since)
        after: Key | None = None
        while True:
            rows = await asyncio.to_thread(
                self.index.page, bounded, descending=False, after=after, limit=REPLAY_PAGE
            )
            for event, _ in rows:
                yield event
            if len(rows) < REPLAY_PAGE:
                return
            after = rows[-1][1]

    @rpc.unary
    async def GetSnapshot(
        self, request: event_service_pb2.GetSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> event_service_pb2.Snapshot:
        snapshot_id = queries.opaque_id(request.id, "id")
        store = await self.bus.object_store(subjects.SNAPSHOTS_STORE)
        try:
            result = await asyncio.wait_for(store.get(snapshot_id), rpc.timeout(context, 30.0))
        except nats.js.errors.NotFoundError:
            raise not_found(f"snapshot {shown(snapshot_id)}") from None
        data = result.data or b""
        content_type, width, height = await asyncio.to_thread(image_info, data, result.info.headers)
        return event_service_pb2.Snapshot(
            id=snapshot_id, content_type=content_type, data=data, width=width, height=height
        )
