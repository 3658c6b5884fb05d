"""Events per hour by type as an SVG bar chart, laid out here so the page needs no script."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from camsight.v1 import event_service_pb2

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


def hourly_chart(counted: event_service_pb2.CountEventsResponse) -> Chart:
    """Stacked bars, one per hour from the first to the last with events (the last 48 at most)."""
    per_hour: dict[int, dict[str, int]] = {}
    for row in counted.counts:
        hour = row.bucket_start_time.ToNanoseconds() // HOUR_NS
        per_hour.setdefault(hour, {})[row.key] = per_hour.get(hour, {}).get(row.key, 0) + row.count
    types = sorted({row.key for row in counted.counts})
    css = {kind: f"t{i % PALETTE}" for i, kind in enumerate(types)}
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
