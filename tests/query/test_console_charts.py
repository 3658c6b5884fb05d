"""The events timeline's layout at its edges (the page itself: test_console_http.py)."""

from __future__ import annotations

import re

from camsight.query.console.charts import LABELS, RIGHT, WIDTH, events_timeline
from query_helpers import make_event


def test_one_instant_gets_an_axis_of_a_second() -> None:
    running = make_event(0)
    running.ClearField("end_time")
    timeline = events_timeline([running])
    (mark,) = timeline.marks
    assert (mark.x, mark.width, mark.event_id) == (LABELS, 0.0, running.id)  # a dot at the axis' start
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", label) for _, label in timeline.ticks)


def test_an_axis_over_days_shows_dates_and_ends_at_the_last_end() -> None:
    timeline = events_timeline([make_event(0), make_event(3 * 86_400, camera_id="yard")])
    assert [camera for _, camera in timeline.rows] == ["lobby", "yard"]
    assert all(re.fullmatch(r"\d\d-\d\d \d\d:\d\d", label) for _, label in timeline.ticks)
    last = max(timeline.marks, key=lambda m: m.x)
    assert last.x + last.width <= WIDTH - RIGHT + 0.01 and last.width >= 4  # too short to see: widened


def test_no_events_no_timeline() -> None:
    assert events_timeline([]).marks == []
