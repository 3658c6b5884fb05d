"""The index and the filter language without a server: SQL and live predicate agree."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from camsight.query.filters import FilterError, parse_filter
from camsight.query.index import DeadlineExceededError, EventIndex
from camsight.v1 import event_pb2
from query_helpers import FILTERS, make_event


def corpus() -> list[event_pb2.Event]:
    events = []
    for n in range(30):
        event = make_event(
            n,
            camera_id=("lobby", "yard")[n % 2],
            label=("person", "car", "dog")[n % 3],
            type=(event_pb2.EVENT_TYPE_ZONE_ENTER, event_pb2.EVENT_TYPE_LINE_CROSS)[n % 4 // 2],
            identity_id="alice" if n % 10 == 0 else "",
            line_id="l1" if n % 4 >= 2 else "",
            zone_id="gate" if n % 5 == 0 else "door",
            rule_id=f"r{n % 3}",
            confidence=n / 30,
            state=event_pb2.EVENT_STATE_STARTED if n % 7 == 0 else event_pb2.EVENT_STATE_ENDED,
        )
        if n % 7 == 0:
            event.ClearField("end_time")  # ongoing: every end_time comparison is false
        events.append(event)
    return events


def test_sql_and_live_predicate_agree_on_every_filter(tmp_path: Path) -> None:
    events = corpus()
    index = EventIndex(tmp_path / "events.sqlite")
    index.upsert([(e, 1) for e in events])
    for text, _ in FILTERS:
        flt = parse_filter(text)
        from_sql = sorted(e.id for e, _ in index.page(flt, limit=1000))
        assert from_sql == sorted(e.id for e in events if flt.matches(e)), text
    index.close()


def test_values_never_become_sql_text() -> None:
    flt = parse_filter("""camera = "x'); DROP TABLE events; --" OR label = 'a"b'""")
    where, params = flt.sql()
    assert "DROP" not in where and where.count("?") == 2
    assert params == ["x'); DROP TABLE events; --", 'a"b']


def test_upsert_is_idempotent_and_reports_only_changes(tmp_path: Path) -> None:
    index = EventIndex(tmp_path / "events.sqlite")
    event = make_event(1)
    assert [e.id for e in index.upsert([(event, 1), (event, 1)])] == ["ev-00001"]
    assert index.upsert([(event, 1)]) == []
    assert index.total() == 1
    index.close()


@pytest.mark.parametrize(
    "text",
    ["camera", "camera = ", "= x", "camera = a AND", "(camera = a", "camera = a)", "x = 1", "type = BOGUS",
     "confidence = high", "state > STARTED", "start_time > 2026-01-01T00:00:00", "camera = a ; b", "AND"],
)  # fmt: skip
def test_bad_filters_say_why(text: str) -> None:
    with pytest.raises(FilterError) as err:
        parse_filter(text)
    assert str(err.value)


def test_or_binds_tighter_than_and_as_in_aip_160() -> None:
    flt = parse_filter("camera = a AND label = x OR label = y")
    assert flt.canonical() == "(camera = 'a' AND (label = 'x' OR label = 'y'))"
    assert parse_filter("camera='a'   AND label = \"x\" OR label=y").canonical() == flt.canonical()


def test_reads_stop_at_the_deadline(tmp_path: Path) -> None:
    index = EventIndex(tmp_path / "events.sqlite")
    index.upsert([(make_event(n, label=f"l{n % 7}"), 1) for n in range(3000)])
    with pytest.raises(DeadlineExceededError):
        index.count(parse_filter("confidence > 0.1"), group_by="label", deadline=time.monotonic() - 1)
    assert index.count(parse_filter(""), deadline=time.monotonic() + 60)[0].count == 3000
    index.close()
