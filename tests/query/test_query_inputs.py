"""Edge and hostile inputs through a real gRPC channel: each is answered, or refused with
INVALID_ARGUMENT and a fixed one-line message naming the field; never UNKNOWN, never a
Python exception's text, never the whole of a long input echoed back."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re

import grpc
import pytest
from camsight.bus import Bus
from camsight.query import queries
from camsight.query.ingest import LiveHub
from camsight.query.server import REFLECTION_V1
from camsight.v1 import (
    analysis_pb2,
    camera_service_pb2,
    event_pb2,
    event_service_pb2,
    face_gallery_service_pb2,
)
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from helpers import wait_for
from query_helpers import BASE_NS, RunningQuery, make_event

ES = event_service_pb2
CODE = grpc.StatusCode
# What a client is told about a bug on the server, whatever the bug.
INTERNAL = "internal error; see the query service log"


async def refused(call: object) -> grpc.aio.AioRpcError:
    """The error a unary call, or a stream's first read, fails with."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await (call.read() if isinstance(call, grpc.aio.UnaryStreamCall) else call)  # type: ignore[misc]
    return err.value


async def invalid(call: object) -> str:
    """The message of a call that must be INVALID_ARGUMENT: one line, no Python in it."""
    error = await refused(call)
    message = error.details() or ""
    assert error.code() == CODE.INVALID_ARGUMENT, (error.code(), message)
    assert "\n" not in message and "<class" not in message and "Error" not in message, message
    return message


async def listed(query: RunningQuery, flt: str) -> list[str]:
    reply = await query.events.ListEvents(ES.ListEventsRequest(filter=flt, page_size=1000), timeout=10)
    return [e.id for e in reply.events]


@pytest.fixture
async def three(bus: Bus, query: RunningQuery) -> list[event_pb2.Event]:
    """Three events: a crossing in, a crossing out, a zone entry; one with a float32 confidence
    whose double is not the nearest to its printed value, one at a sub-microsecond time."""
    events = [
        make_event(1, type=event_pb2.EVENT_TYPE_LINE_CROSS, direction=analysis_pb2.CROSSING_DIRECTION_IN),
        make_event(2, type=event_pb2.EVENT_TYPE_LINE_CROSS, direction=analysis_pb2.CROSSING_DIRECTION_OUT),
        make_event(3, confidence=0.6142231),
    ]
    events[2].start_time.FromNanoseconds(BASE_NS + 3_890_418_000)
    await asyncio.gather(*(bus.publish_event(e) for e in events))
    await wait_for(lambda: query.indexed() == 3, 20, "3 events indexed")
    return events


# -- 1. times, durations and page tokens outside the representable range ------------------


async def test_no_bound_times_are_clamped_to_the_index_range(
    three: list[event_pb2.Event], query: RunningQuery
) -> None:
    everything = sorted(e.id for e in three)
    for flt in (
        'start_time < "9999-12-31T23:59:59Z"',
        "start_time >= 0001-01-01T00:00:00Z AND end_time <= 9999-12-31T23:59:59.999999999Z",
        'start_time > "1000-01-01T00:00:00Z"',
    ):
        assert sorted(await listed(query, flt)) == everything, flt
        count = await query.events.CountEvents(ES.CountEventsRequest(filter=flt), timeout=10)
        assert count.total == 3, flt
    assert (
        await listed(query, 'start_time > "2263-01-01T00:00:00Z" OR end_time < "1677-01-01T00:00:00Z"') == []
    )


async def test_buckets_are_one_second_to_the_longest_the_index_holds(
    three: list[event_pb2.Event], query: RunningQuery
) -> None:
    for bucket in (Duration(seconds=86400 * 10**6), Duration(seconds=1, nanos=2_000_000_000), Duration()):
        message = await invalid(query.events.CountEvents(ES.CountEventsRequest(bucket=bucket)))
        assert message == "bucket: must be a duration from 1s to 9223372036s (292 years)"
    longest = await query.events.CountEvents(ES.CountEventsRequest(bucket=Duration(seconds=9223372036)))
    assert [(c.bucket_start_time.seconds, c.count) for c in longest.counts] == [(0, 3)]


async def test_stream_start_time_far_ahead_replays_nothing_then_follows(
    bus: Bus, query: RunningQuery
) -> None:
    year_3000 = Timestamp(seconds=32503680000)
    call = query.events.StreamEvents(ES.StreamEventsRequest(start_time=year_3000))
    await wait_for(lambda: query.service.hub.subscribers == 1, 10, "the live tail")
    await bus.publish_event(make_event(7))
    item = await asyncio.wait_for(call.read(), 10)
    assert item.event.id == "ev-00007"
    call.cancel()


async def test_stream_refuses_an_invalid_start_time(query: RunningQuery) -> None:
    for start in (Timestamp(seconds=1, nanos=2_000_000_000), Timestamp(seconds=253402300800)):
        message = await invalid(query.events.StreamEvents(ES.StreamEventsRequest(start_time=start)))
        assert message == "start_time: must be a valid Timestamp: from year 1 to 9999, nanos 0 to 999999999"


def forged(token: str, **changes: object) -> str:
    """``token`` (a real one) with its JSON fields changed."""
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    return base64.urlsafe_b64encode(json.dumps({**data, **changes}).encode()).decode()


def raw_token(data: str | bytes) -> str:
    return base64.urlsafe_b64encode(data.encode() if isinstance(data, str) else data).decode()


async def test_forged_page_tokens_are_malformed(three: list[event_pb2.Event], query: RunningQuery) -> None:
    real = (await query.events.ListEvents(ES.ListEventsRequest(page_size=1))).next_page_token
    assert real
    for token in (
        forged(real, p=[10**30, "x"]),
        forged(real, p=[-(2**63) - 1, "x"]),
        forged(real, p=None),
        forged(real, p=[]),
        forged(real, p=["1", "x"]),
        forged(real, p=[1.5, "x"]),
        forged(real, p=[True, "x"]),
        forged(real, p=[1, 2]),
        forged(real, p=[1, "x", 3]),
        forged(real, p={"a": 1}),
        raw_token('{"p": [1, "x"]}'),
        raw_token("[1, 2]"),
        raw_token('"text"'),
        raw_token("[" * 100_000),
        raw_token(b"\xff\xfe"),
        "garbage!",
        "é",
    ):
        message = await invalid(query.events.ListEvents(ES.ListEventsRequest(page_token=token)))
        assert message == "page_token: malformed page token", token[:80]
    # The extremes of the range are positions like any other.
    for start_ns in (2**63 - 1, -(2**63)):
        page = await query.events.ListEvents(ES.ListEventsRequest(page_token=forged(real, p=[start_ns, "x"])))
        assert len(page.events) == (3 if start_ns > 0 else 0)


async def test_a_camera_page_token_is_checked_the_same_way(query: RunningQuery) -> None:
    for token in (raw_token('{"p": [], "b": "x"}'), raw_token('{"p": null, "b": "x"}'), "garbage!"):
        request = camera_service_pb2.ListCamerasRequest(page_token=token)
        assert await invalid(query.cameras.ListCameras(request)) == "page_token: malformed page token"


# -- 1. anything unexpected is INTERNAL, logged ---------------------------------------------


async def test_a_bug_is_internal_with_a_neutral_message_and_logged(
    query: RunningQuery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    def broken_hub(self: LiveHub) -> None:
        raise KeyError("no such subscription")

    monkeypatch.setattr(queries, "list_events", broken)
    monkeypatch.setattr(LiveHub, "subscribe", broken_hub)
    with caplog.at_level(logging.ERROR, logger="camsight.query.rpc"):
        for call in (
            query.events.ListEvents(ES.ListEventsRequest()),
            query.events.StreamEvents(ES.StreamEventsRequest()),
        ):
            error = await refused(call)
            assert (error.code(), error.details()) == (CODE.INTERNAL, INTERNAL)
    assert "EventServicer.ListEvents failed" in caplog.text and "Traceback" in caplog.text
    assert "SQLite INTEGER" in caplog.text and "no such subscription" in caplog.text


# -- 2, 3, 13. numbers: fixed messages, finite, float32 -------------------------------------


@pytest.mark.parametrize(
    "value", ["high", "NaN", "inf", "-Infinity", "1e999", "1e39", "1_0", "0x1p-2", '" 0.5"']
)
async def test_bad_numbers_get_one_fixed_message(query: RunningQuery, value: str) -> None:
    message = await invalid(query.events.ListEvents(ES.ListEventsRequest(filter=f"confidence >= {value}")))
    assert message == (
        f"filter: bad value {value.strip(chr(34))!r} for confidence at position 15: "
        "expected a number such as 0.8"
    )


async def test_confidence_filters_on_the_value_events_show(
    three: list[event_pb2.Event], bus: Bus, query: RunningQuery
) -> None:
    shown = (await query.events.GetEvent(ES.GetEventRequest(id="ev-00003"))).confidence
    assert f"{shown:.7g}" == "0.6142231"
    assert await listed(query, "confidence = 0.6142231") == ["ev-00003"]
    assert await listed(query, "confidence >= 0.6142231 AND confidence <= 0.6142231") == ["ev-00003"]
    assert await listed(query, "confidence < 0.6142231 AND camera = lobby AND confidence > 0.5") == []
    # The live tail's predicate agrees with SQL.
    call = query.events.StreamEvents(ES.StreamEventsRequest(filter="confidence = 0.6142231"))
    await wait_for(lambda: query.service.hub.subscribers == 1, 10, "the live tail")
    await bus.publish_event(make_event(9, confidence=0.6142231))
    assert (await asyncio.wait_for(call.read(), 10)).event.id == "ev-00009"
    call.cancel()


# -- 4. RFC 3339 to the nanosecond, and nothing else ----------------------------------------


async def test_filter_times_keep_every_digit(three: list[event_pb2.Event], query: RunningQuery) -> None:
    assert await listed(query, 'start_time >= "2026-01-01T00:00:03.890418001Z"') == []
    assert await listed(query, 'start_time = "2026-01-01T00:00:03.890418Z"') == ["ev-00003"]
    assert await listed(query, "start_time >= 2026-01-01T01:00:03.890418000+01:00") == ["ev-00003"]
    assert await listed(query, "start_time > 2026-01-01t00:00:03.890417999z") == ["ev-00003"]
    assert await listed(query, "start_time <= 2025-12-31T19:00:03.890417999-05:00") == [
        "ev-00002",
        "ev-00001",
    ]


@pytest.mark.parametrize(
    "value",
    [
        '"2026-01-01 00:00:00Z"',
        "2026-01-01T00:00:00+0100",
        "2026-01-01T00:00:00",
        "2026-1-1T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00.1234567891Z",
        "2026-01-01T00:00:00+25:00",
        "20260101T000000Z",
        "yesterday",
    ],
)
async def test_other_time_forms_are_refused_with_an_example(query: RunningQuery, value: str) -> None:
    message = await invalid(query.events.ListEvents(ES.ListEventsRequest(filter=f"end_time < {value}")))
    assert message == (
        f"filter: bad value {value.strip(chr(34))!r} for end_time at position 12: expected an RFC 3339 "
        "timestamp such as 2026-01-01T00:00:00Z or 2026-01-01T08:30:00.5+01:00"
    )


# -- 5. long input is never echoed whole ------------------------------------------------------


async def test_long_ids_are_refused_and_never_echoed_whole(query: RunningQuery) -> None:
    huge = "x" * 10_000
    assert (
        await invalid(query.events.GetEvent(ES.GetEventRequest(id=huge))) == "id: must be 1 to 256 characters"
    )
    assert await invalid(query.events.GetEvent(ES.GetEventRequest())) == "id: must be 1 to 256 characters"
    request = face_gallery_service_pb2.EnrollFaceFromEventRequest(event_id=huge, identity_id="bob")
    assert await invalid(query.faces.EnrollFaceFromEvent(request)) == "event_id: must be 1 to 256 characters"
    longest = await refused(query.events.GetEvent(ES.GetEventRequest(id="y" * 256)))
    assert longest.code() == CODE.NOT_FOUND
    assert longest.details() == f"event {'y' * 40!r}... (256 characters) not found"
    for call in (
        query.cameras.GetCamera(camera_service_pb2.GetCameraRequest(id=huge)),
        query.events.ListEvents(ES.ListEventsRequest(filter=f"{'a' * 4000} = 1")),
        query.events.ListEvents(ES.ListEventsRequest(filter=f"label = x '{'é' * 4000}'")),
        query.events.ListEvents(ES.ListEventsRequest(filter=f"confidence > {'1' * 4000}x")),
        query.events.ListEvents(ES.ListEventsRequest(order_by=huge)),
    ):
        message = await invalid(call)
        assert len(message) < 300 and "characters)" in message, message


# -- 8, 9. health List, reflection of v1 -------------------------------------------------------


async def test_health_list_answers_what_check_answers(query: RunningQuery) -> None:
    health = health_pb2_grpc.HealthStub(query.channel)
    listed_ = await health.List(health_pb2.HealthListRequest(), timeout=5)
    names = {"", "camsight.v1.EventService", "camsight.v1.CameraService", "camsight.v1.FaceGalleryService"}
    assert set(listed_.statuses) == names
    for name, status in listed_.statuses.items():
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        assert status == await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
    await query.service.grpc.set_serving(False)
    statuses = (await health.List(health_pb2.HealthListRequest(), timeout=5)).statuses
    assert {s.status for s in statuses.values()} == {health_pb2.HealthCheckResponse.NOT_SERVING}


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
async def test_reflection_lists_and_describes_both_versions(query: RunningQuery, version: str) -> None:
    call = query.channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in (await call.read()).list_services_response.service}
    assert {REFLECTION_V1, "grpc.reflection.v1alpha.ServerReflection", "grpc.health.v1.Health"} <= names
    for name in sorted(names):  # what `grpcurl describe` does: every listed name resolves
        await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=name))
        reply = await call.read()
        assert reply.WhichOneof("message_response") == "file_descriptor_response", name
        files = [
            FileDescriptorProto.FromString(f) for f in reply.file_descriptor_response.file_descriptor_proto
        ]
        package, service = name.rsplit(".", 1)
        assert any(f.package == package and service in {s.name for s in f.service} for f in files), name
    await call.done_writing()


# -- 10, 11. filter messages for AIP-160 forms the subset lacks -------------------------------


NEGATION = "NOT and - (negation) are not supported at position {}; use != instead"
AT_THE_END = "at position {} (the end of the filter)"


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ("NOT camera = bikes", NEGATION.format(1)),
        ("camera = a AND not label = b", NEGATION.format(16)),
        ("-camera = bikes", NEGATION.format(1)),
        ("camera = bikes and label = car", "AND/OR must be upper case: 'and' at position 16"),
        ("camera = a Or camera = b", "AND/OR must be upper case: 'Or' at position 12"),
        ("camera : bikes", "':' (has) is not supported at position 8; compare with = instead"),
        ("camera:bikes", "':' (has) is not supported at position 7; compare with = instead"),
        ("camera = bikes camera", "expected a comparison after 'camera' " + AT_THE_END.format(22)),
        ("camera = ", "expected a value for 'camera' " + AT_THE_END.format(10)),
        ("(camera = a", "expected ')' " + AT_THE_END.format(12)),
        ("camera = a AND", "expected a field name or '(' " + AT_THE_END.format(15)),
        ("label < car", "label (string) supports only = and !=, not < at position 7"),
        ("(" * 17 + "camera = a" + ")" * 17, "filter nests deeper than 16 levels at position 17"),
        (" ".join(["camera = a"] * 65), "filter has more than 64 comparisons at position 705"),
        ("direction = up", "bad value 'up' for direction at position 13: expected one of IN, OUT"),
        (
            "start_media_time > 1.5m",
            "bad value '1.5m' for start_media_time at position 20: expected seconds such as 12.5 or 12.5s",
        ),
    ],
)
async def test_filter_errors_say_what_and_where(query: RunningQuery, flt: str, message: str) -> None:
    assert await invalid(query.events.ListEvents(ES.ListEventsRequest(filter=flt))) == f"filter: {message}"


async def test_media_times_take_aip_160_durations(bus: Bus, query: RunningQuery) -> None:
    events = [make_event(n) for n in range(4)]
    for n, event in enumerate(events):
        event.start_media_time.FromNanoseconds(n * 750_000_000)
    await asyncio.gather(*(bus.publish_event(e) for e in events))
    await wait_for(lambda: query.indexed() == 4, 20, "4 events indexed")
    assert await listed(query, "start_media_time >= 1.5s") == ["ev-00003", "ev-00002"]
    assert await listed(query, "start_media_time >= 1.5") == ["ev-00003", "ev-00002"]
    assert await listed(query, "start_media_time < '0.75s'") == ["ev-00000"]


async def test_stream_filter_errors_point_at_the_request_field(query: RunningQuery) -> None:
    message = await invalid(
        query.events.StreamEvents(ES.StreamEventsRequest(filter="camera = a end_time > 0"))
    )
    assert message == (
        "filter: end_time at position 12 cannot filter a live stream; use the request's start_time field"
    )
    message = await invalid(query.events.StreamEvents(ES.StreamEventsRequest(filter="colour = red")))
    known = re.search(r"\(known: (.*)\)", message)
    assert known, message
    assert "start_time" not in known.group(1).split(", ") and "end_time" not in known.group(1).split(", ")
    assert "start_media_time" in known.group(1)


# -- 12. direction is absent on anything but a line crossing ----------------------------------


async def test_direction_not_equal_matches_only_the_other_crossings(
    three: list[event_pb2.Event], query: RunningQuery
) -> None:
    assert await listed(query, "direction != IN") == ["ev-00002"]
    assert await listed(query, "direction != OUT") == ["ev-00001"]
    assert await listed(query, "direction = IN OR direction != IN") == ["ev-00002", "ev-00001"]
