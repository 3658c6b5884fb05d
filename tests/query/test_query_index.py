"""The index and the filter language without a server: SQL and live predicate agree."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from camsight.query.filters import FilterError, parse_filter
from camsight.query.index import SCHEMA_VERSION, DeadlineExceededError, EventIndex
from camsight.v1 import analysis_pb2, event_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from query_helpers import FILTERS, add_extras, make_event


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
        events.append(add_extras(event, n))
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


def test_attribute_keys_and_values_never_become_sql_text() -> None:
    where, params = parse_filter('attributes.in_count = "\') OR 1=1 --"').sql()
    assert where == "json_extract(attributes, ?) = ?"
    assert params == ['$."in_count"', "') OR 1=1 --"]


@pytest.mark.parametrize(
    "text",
    [
        "camera",
        "camera = ",
        "= x",
        "camera = a AND",
        "(camera = a",
        "camera = a)",
        "x = 1",
        "type = BOGUS",
        "confidence = high",
        "state > STARTED",
        "start_time > 2026-01-01T00:00:00",
        "camera = a ; b",
        "AND",
    ],
)
def test_bad_filters_say_why(text: str) -> None:
    with pytest.raises(FilterError) as err:
        parse_filter(text)
    assert str(err.value)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("attributes. = x", "'attributes.'"),
        ("attributes = x", "'attributes'"),
        ("attributes.a.b = x", "'attributes.a.b'"),
        ("attributes.a:b = x", "'attributes.a:b'"),
        (f"attributes.{'k' * 65} = x", "attributes.kkk"),
        ("attributes.in_count > 2", "attributes.in_count"),
        ("direction > IN", "direction"),
        ("direction = sideways", "direction"),
        ("direction = UNSPECIFIED", "direction"),
        ("start_media_time > soon", "start_media_time"),
        ("end_media_time < inf", "end_media_time"),
        ("start_media_time > 1e12", "start_media_time"),
        ("colour = red", "'colour'"),
    ],
)
def test_bad_fields_and_values_are_one_line_naming_the_field(text: str, named: str) -> None:
    with pytest.raises(FilterError) as err:
        parse_filter(text)
    message = str(err.value)
    assert named in message and "\n" not in message


def test_unknown_fields_list_the_attribute_form() -> None:
    with pytest.raises(FilterError, match=r"attributes\.<key>"):
        parse_filter("colour = red")


def test_canonical_text_parses_back_to_the_same_filter() -> None:
    flt = parse_filter(
        "type = zone_enter direction = CROSSING_DIRECTION_OUT start_time > 2026-01-01T00:00:00.25Z "
        "start_media_time >= 1.1 end_media_time < -2 attributes.in_count = 3"
    )
    assert flt.canonical() == (
        "(type = ZONE_ENTER AND direction = OUT AND start_time > '2026-01-01T00:00:00.250Z' AND "
        "start_media_time >= 1.1 AND end_media_time < -2 AND attributes.in_count = '3')"
    )
    assert parse_filter(flt.canonical()) == flt
    assert flt.sql()[1] == [
        2,
        2,
        1_767_225_600_250_000_000,
        1_100_000_000,
        -2_000_000_000,
        '$."in_count"',
        "3",
    ]


# The schema before version 2 (direction, attributes, media times), as files on disk still have it.
SCHEMA_V1 = """
CREATE TABLE events (
    id TEXT PRIMARY KEY, camera TEXT NOT NULL, type INTEGER NOT NULL, state INTEGER NOT NULL,
    label TEXT NOT NULL, identity TEXT NOT NULL, zone TEXT NOT NULL, line TEXT NOT NULL,
    rule TEXT NOT NULL, confidence REAL NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER,
    revision INTEGER NOT NULL, seen_ns INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE INDEX events_time ON events (start_ns, id);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    """The new columns are filled from each stored Event; the meta (stream generation) is kept."""
    path = tmp_path / "events.sqlite"
    events = corpus()
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V1)
        conn.execute("INSERT INTO meta VALUES ('generation', 'g1')")
        conn.executemany(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (e.id, e.camera_id, e.type, e.state, e.label, e.identity_id, e.zone_id, e.line_id, e.rule_id,
                 e.confidence, e.start_time.ToNanoseconds(),
                 e.end_time.ToNanoseconds() if e.HasField("end_time") else None, e.revision, 1,
                 e.SerializeToString(deterministic=True))
                for e in events
            ],
        )  # fmt: skip
    conn.close()
    index = EventIndex(path)
    assert index.get_meta("generation") == "g1" and index.total() == len(events)
    for text, _ in FILTERS:
        flt = parse_filter(text)
        assert sorted(e.id for e, _ in index.page(flt, limit=1000)) == sorted(
            e.id for e in events if flt.matches(e)
        ), text
    assert index.upsert([(make_event(99, direction=analysis_pb2.CROSSING_DIRECTION_IN), 2)])
    index.close()
    index = EventIndex(path)  # opening again is a no-op
    assert [e.id for e, _ in index.page(parse_filter("direction = IN AND camera = lobby"), limit=1)] == [
        "ev-00099"
    ]
    index.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


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


# Comparisons that parse, for the property below: every field, every operator it allows,
# values that hit the corpus, miss it, or fall on unset fields.
VALID_COMPARISONS = st.one_of(
    st.builds(
        lambda f, o, v: f"{f} {o} {v}",
        st.sampled_from(
            [
                "camera",
                "label",
                "zone",
                "line",
                "identity",
                "attributes.in_count",
                "attributes.action",
                "attributes.odd-key_2",
                "attributes.none",
            ]
        ),
        st.sampled_from(["=", "!="]),
        st.sampled_from(
            ["lobby", "person", "door", "l1", "alice", "0", "'2'", "running", "\"x y 'q'\"", "''"]
        ),
    ),
    st.builds(
        lambda o, v: f"direction {o} {v}", st.sampled_from(["=", "!="]), st.sampled_from(["IN", "out"])
    ),
    st.builds(
        lambda f, o, v: f"{f} {o} {v}",
        st.sampled_from(["start_media_time", "end_media_time", "confidence"]),
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        st.sampled_from(["0", "0.5", "3", "3.5", "10", "20.5", "-1"]),
    ),
)
VALID_FILTERS = st.recursive(
    VALID_COMPARISONS,
    lambda inner: st.builds(
        lambda a, op, b: f"({a} {op} {b})", inner, st.sampled_from(["AND", "OR", ""]), inner
    ),
    max_leaves=5,
)


@pytest.fixture(scope="module")
def filled_index(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EventIndex, list[event_pb2.Event]]]:
    events = corpus()
    index = EventIndex(tmp_path_factory.mktemp("index") / "events.sqlite")
    index.upsert([(e, 1) for e in events])
    yield index, events
    index.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=VALID_FILTERS)
def test_sql_and_predicate_agree_on_random_filters(
    filled_index: tuple[EventIndex, list[event_pb2.Event]], text: str
) -> None:
    index, events = filled_index
    flt = parse_filter(text)
    assert sorted(e.id for e, _ in index.page(flt, limit=1000)) == sorted(
        e.id for e in events if flt.matches(e)
    )
    again = parse_filter(flt.canonical())
    assert [again.matches(e) for e in events] == [flt.matches(e) for e in events]
