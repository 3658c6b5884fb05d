"""EventService through a real gRPC channel, fed through the real EVENTS stream."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from camsight.bus import Bus
from camsight.v1 import event_pb2, event_service_pb2
from google.protobuf.duration_pb2 import Duration
from helpers import wait_for
from query_helpers import FILTERS, RunningQuery, add_extras, make_event, ts

ES = event_service_pb2


async def publish(bus: Bus, events: list[event_pb2.Event]) -> None:
    await asyncio.gather(*(bus.publish_event(e) for e in events))


async def ids(query: RunningQuery, flt: str = "", order: str = "", size: int = 1000) -> list[str]:
    """Every id matching ``flt``, following page tokens."""
    out: list[str] = []
    token = ""
    while True:
        resp = await query.events.ListEvents(
            ES.ListEventsRequest(filter=flt, order_by=order, page_size=size, page_token=token), timeout=10
        )
        out += [e.id for e in resp.events]
        token = resp.next_page_token
        if not token:
            return out


@pytest.fixture
async def corpus(bus: Bus, query: RunningQuery) -> list[event_pb2.Event]:
    """40 varied events, indexed."""
    events = []
    for n in range(40):
        events.append(
            add_extras(
                make_event(
                    n,
                    camera_id="lobby" if n % 2 == 0 else "yard",
                    type=event_pb2.EVENT_TYPE_ZONE_ENTER if n % 4 < 2 else event_pb2.EVENT_TYPE_LINE_CROSS,
                    label="person" if n % 3 else "car",
                    identity_id="alice" if n % 10 == 0 else "",
                    zone_id="door" if n % 5 else "gate",
                    line_id="l1" if n % 4 >= 2 else "",
                    rule_id=f"r{n % 3}",
                    confidence=n / 40,
                    state=event_pb2.EVENT_STATE_STARTED if n % 7 == 0 else event_pb2.EVENT_STATE_ENDED,
                ),
                n,
            )
        )
    await publish(bus, events)
    await wait_for(lambda: query.indexed() == 40, 20, "40 events indexed")
    return events


def expected(events: list[event_pb2.Event], pred: object, desc: bool = True) -> list[str]:
    chosen = [e for e in events if pred(e)]  # type: ignore[operator]
    chosen.sort(key=lambda e: (e.start_time.ToNanoseconds(), e.id), reverse=desc)
    return [e.id for e in chosen]


async def test_every_filter_matches_the_published_events(
    corpus: list[event_pb2.Event], query: RunningQuery
) -> None:
    """Each filter of FILTERS, both orders, small pages: same ids as the predicate."""
    for flt, pred in FILTERS:
        assert await ids(query, flt) == expected(corpus, pred), flt
        assert await ids(query, flt, "start_time asc", size=3) == expected(corpus, pred, desc=False), flt


async def test_pagination_walks_every_event_once_in_both_orders(
    corpus: list[event_pb2.Event], query: RunningQuery
) -> None:
    everything = expected(corpus, lambda e: True)
    assert await ids(query, size=7) == everything
    assert await ids(query, order="start_time asc", size=1) == everything[::-1]
    first = await query.events.ListEvents(ES.ListEventsRequest())
    assert len(first.events) == 40 and not first.next_page_token  # page_size 0 -> 50
    capped = await query.events.ListEvents(ES.ListEventsRequest(page_size=5000))
    assert len(capped.events) == 40


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (ES.ListEventsRequest(filter="camera ="), "filter"),
        (ES.ListEventsRequest(filter="colour = red"), "filter"),
        (ES.ListEventsRequest(filter="type = NOPE"), "filter"),
        (ES.ListEventsRequest(filter="camera < lobby"), "filter"),
        (ES.ListEventsRequest(filter="start_time > yesterday"), "filter"),
        (ES.ListEventsRequest(filter="(camera = a"), "filter"),
        (ES.ListEventsRequest(filter="camera = a; DROP TABLE events"), "filter"),
        (ES.ListEventsRequest(page_size=-1), "page_size"),
        (ES.ListEventsRequest(page_token="garbage!"), "page_token"),
        (ES.ListEventsRequest(order_by="camera"), "order_by"),
    ],
)
async def test_bad_requests_are_invalid_argument_naming_the_field(
    query: RunningQuery, request_: event_service_pb2.ListEventsRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await query.events.ListEvents(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(field + ":")


async def test_a_page_token_only_works_with_its_own_filter(
    corpus: list[event_pb2.Event], query: RunningQuery
) -> None:
    page = await query.events.ListEvents(ES.ListEventsRequest(filter="camera = lobby", page_size=2))
    assert page.next_page_token
    for other in (
        ES.ListEventsRequest(filter="camera = yard", page_token=page.next_page_token),
        ES.ListEventsRequest(
            filter="camera = lobby", order_by="start_time asc", page_token=page.next_page_token
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await query.events.ListEvents(other)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in (err.value.details() or "")
    same = await query.events.ListEvents(
        ES.ListEventsRequest(filter="camera  =  'lobby'", page_size=2, page_token=page.next_page_token)
    )
    assert len(same.events) == 2


async def test_duplicate_ids_are_stored_once_and_merged(bus: Bus, query: RunningQuery) -> None:
    started = make_event(1, state=event_pb2.EVENT_STATE_STARTED, revision=0, confidence=0.4)
    started.ClearField("end_time")
    updated = make_event(1, state=event_pb2.EVENT_STATE_UPDATED, revision=1, confidence=0.6)
    updated.ClearField("end_time")
    ended = make_event(1, state=event_pb2.EVENT_STATE_ENDED, revision=2, confidence=0.7, end_time=ts(9))
    ended.start_time.CopyFrom(ts(1.5))  # a later start time is not kept
    # Out of order and repeated: the merge must not care.
    for event in (updated, ended, started, updated, ended):
        await bus.publish(f"events.zone_enter.{event.camera_id}", event)
    await publish(bus, [make_event(2)])
    await wait_for(lambda: query.indexed() == 2, 10, "two events indexed")
    resp = await query.events.ListEvents(ES.ListEventsRequest(filter="camera = lobby"))
    assert [e.id for e in resp.events] == ["ev-00002", "ev-00001"]
    merged = await query.events.GetEvent(ES.GetEventRequest(id="ev-00001"))
    assert merged.state == event_pb2.EVENT_STATE_ENDED and merged.revision == 2
    assert merged.start_time == ts(1) and merged.end_time == ts(9)
    assert merged.confidence == pytest.approx(0.7)


async def test_get_event_unknown_is_not_found(query: RunningQuery) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await query.events.GetEvent(ES.GetEventRequest(id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_count_groups_and_buckets(corpus: list[event_pb2.Event], query: RunningQuery) -> None:
    total = await query.events.CountEvents(ES.CountEventsRequest())
    assert total.total == 40 and [(c.key, c.count) for c in total.counts] == [("", 40)]
    by_type = await query.events.CountEvents(
        ES.CountEventsRequest(filter="camera = lobby", group_by=event_service_pb2.COUNT_GROUP_BY_TYPE)
    )
    assert {c.key: c.count for c in by_type.counts} == {"ZONE_ENTER": 10, "LINE_CROSS": 10}
    bucketed = await query.events.CountEvents(
        ES.CountEventsRequest(group_by=event_service_pb2.COUNT_GROUP_BY_CAMERA, bucket=Duration(seconds=10))
    )
    assert bucketed.total == 40
    assert {(c.bucket_start_time.seconds - ts(0).seconds, c.key): c.count for c in bucketed.counts} == {
        (b, cam): 5 for b in (0, 10, 20, 30) for cam in ("lobby", "yard")
    }
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await query.events.CountEvents(ES.CountEventsRequest(bucket=Duration(nanos=5)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_stream_replays_then_follows_live_without_gaps_or_duplicates(
    bus: Bus, query: RunningQuery
) -> None:
    await publish(bus, [make_event(n, camera_id="lobby" if n % 2 else "yard") for n in range(10)])
    await wait_for(lambda: query.indexed() == 10, 10, "10 events indexed")
    call = query.events.StreamEvents(ES.StreamEventsRequest(filter="camera = lobby", start_time=ts(4)))
    received: list[tuple[str, int]] = []

    async def consume() -> None:
        async for item in call:
            received.append((item.event.id, item.event.revision))

    consumer = asyncio.create_task(consume())
    await wait_for(lambda: len(received) == 3, 10, "the replay of ev 5, 7, 9")
    live = [make_event(n, camera_id="lobby" if n % 2 else "yard") for n in range(10, 20)]
    await publish(bus, live)
    await publish(bus, [make_event(5, revision=2)])  # an update of a replayed event is live news
    await wait_for(lambda: len(received) == 9, 10, "5 live lobby events and one update")
    call.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    assert received == [
        ("ev-00005", 1),
        ("ev-00007", 1),
        ("ev-00009", 1),
        ("ev-00011", 1),
        ("ev-00013", 1),
        ("ev-00015", 1),
        ("ev-00017", 1),
        ("ev-00019", 1),
        ("ev-00005", 2),
    ]


async def test_stream_rejects_time_fields_in_its_filter(query: RunningQuery) -> None:
    call = query.events.StreamEvents(ES.StreamEventsRequest(filter='start_time > "2026-01-01T00:00:00Z"'))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_snapshots_come_back_with_type_and_size(bus: Bus, query: RunningQuery) -> None:
    import cv2
    import numpy as np

    ok, jpeg = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))
    assert ok
    store = await bus.object_store("snapshots")
    await store.put("snap-1", jpeg.tobytes())
    snap = await query.events.GetSnapshot(ES.GetSnapshotRequest(id="snap-1"))
    assert (snap.content_type, snap.width, snap.height) == ("image/jpeg", 64, 48)
    assert snap.data == jpeg.tobytes()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await query.events.GetSnapshot(ES.GetSnapshotRequest(id="missing"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
