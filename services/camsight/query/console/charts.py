"""The console's SVG charts, laid out here so the pages need no script: events per hour by type
(overview) and the listed events on a time axis (the events page's timeline)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from camsight.query.console.render import event_type
from camsight.v1 import event_pb2, event_service_pb2

HOUR_NS = 3600 * 10**9
MAX_HOURS = 48
WIDTH, HEIGHT, AXIS = 960, 240, 20
PALETTE = 8  # CSS classes t0..t7 (console.css)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    legend: list[tuple[str, str]]
    peak: int


def type_classes(types: Iterable[str]) -> dict[str, str]:
    """Event type -> its colour's CSS class, in sorted order (the same type, the same colour on
    every chart of one answer)."""
    return {kind: f"t{i % PALETTE}" for i, kind in enumerate(sorted(set(types)))}


def hourly_chart(counted: event_service_pb2.CountEventsResponse) -> Chart:
    """Stacked bars, one per hour from the first to the last with events (the last 48 at most)."""
    per_hour: dict[int, dict[str, int]] = {}
    for row in counted.counts:
        hour = row.bucket_start_time.ToNanoseconds() // HOUR_NS
        per_hour.setdefault(hour, {})[row.key] = per_hour.get(hour, {}).get(row.key, 0) + row.count
    types = sorted({row.key for row in counted.counts})
    css = type_classes(types)
    if not per_hour:
        return Chart(WIDTH, HEIGHT, [], [], [], 0)
    last = max(per_hour)
    hours = list(range(max(min(per_hour), last - MAX_HOURS + 1), last + 1))
    peak = max(sum(per_hour.get(h, {}).values()) for h in hours)
    slot = WIDTH / len(hours)
    scale = (HEIGHT - AXIS) / peak
    bars, ticks = [], []
    for i, hour in enumerate(hours):
        top = float(HEIGHT - AXIS)
        label = datetime.fromtimestamp(hour * 3600, UTC).strftime("%m-%d %H:00")
        for kind in types:
            count = per_hour.get(hour, {}).get(kind, 0)
            if count:
                top -= count * scale
                bars.append(
                    Bar(
                        i * slot + 1,
                        top,
                        max(slot - 2, 1),
                        count * scale,
                        css[kind],
                        f"{label} {kind}: {count}",
                    )
                )
        if i % max(1, len(hours) // 8) == 0:
            ticks.append((i * slot + 2, label))
    return Chart(WIDTH, HEIGHT, bars, ticks, [(css[k], k) for k in types], peak)


# Timeline geometry (SVG user units; the SVG scales to the page width).
ROW, LABELS, RIGHT, DOT = 26, 130, 12, 5
TIMELINE_TICKS = 6


@dataclass(frozen=True)
class Mark:
    """One event: a bar from its start to its end, or a dot (width 0) when it has no end."""

    x: float
    y: float
    width: float
    css: str
    title: str
    event_id: str


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    labels: int  # where the plot starts: the camera names are left of it
    rows: list[tuple[float, str]]  # (y of the row's middle, camera)
    marks: list[Mark]
    ticks: list[tuple[float, str]]
    legend: list[tuple[str, str]]


def events_timeline(events: Sequence[event_pb2.Event]) -> Timeline:
    """The events of one list page on a time axis from the first start to the last end, one
    row per camera, coloured by type; each mark links to its event (the template)."""
    if not events:
        return Timeline(WIDTH, 0, LABELS, [], [], [], [])
    cameras = sorted({e.camera_id for e in events})
    css = type_classes(event_type(e.type) for e in events)
    first = min(e.start_time.ToNanoseconds() for e in events)
    last = max(max(e.start_time.ToNanoseconds(), e.end_time.ToNanoseconds()) for e in events)
    span = max(last - first, 10**9)  # one instant still gets an axis of one second
    plot = WIDTH - LABELS - RIGHT

    def x_of(ns: int) -> float:
        return LABELS + (ns - first) / span * plot

    height = len(cameras) * ROW + AXIS
    marks = []
    for e in events:
        start, end = e.start_time.ToNanoseconds(), e.end_time.ToNanoseconds()
        y = cameras.index(e.camera_id) * ROW + ROW / 2
        width = max(x_of(end) - x_of(start), 4.0) if end > start else 0.0
        x = min(x_of(start), LABELS + plot - width)  # a widened bar at the end stays on the axis
        title = f"{_clock(start, span)} {event_type(e.type)} {e.label or e.identity_name}".rstrip()
        marks.append(Mark(x, y, width, css[event_type(e.type)], title, e.id))
    ticks = [
        (x_of(ns), _clock(ns, span))
        for ns in (first + span * i // (TIMELINE_TICKS - 1) for i in range(TIMELINE_TICKS))
    ]
    rows = [(i * ROW + ROW / 2, camera) for i, camera in enumerate(cameras)]
    return Timeline(WIDTH, height, LABELS, rows, marks, ticks, [(c, k) for k, c in css.items()])


def _clock(ns: int, span: int) -> str:
    """A tick's or mark's time (UTC): with the date when the axis spans more than a day."""
    when = datetime.fromtimestamp(ns / 1e9, UTC)
    return when.strftime("%m-%d %H:%M" if span > 86_400 * 10**9 else "%H:%M:%S")
