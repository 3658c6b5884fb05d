"""The demo's HTML report: summary, event timeline, snapshot gallery, events, videos.

One ``index.html`` that needs nothing from the network: the timeline is an
inline SVG drawn here, styles are inline, there is no JavaScript. It refers
only to files inside the output folder (``snapshots/<id>.jpg``, written here,
and the annotated videos), so the folder can be zipped, moved or served as is.

The page is assembled from small functions, one per section, each returning
escaped HTML; :data:`PAGE` is the only template. Every piece of text that
came from a config or an event goes through :func:`html.escape`.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

from google.protobuf.timestamp_pb2 import Timestamp

from camsight.v1 import analysis_pb2, event_pb2

# Mark colours of the timeline (and the legend), per event type. Tests look
# for these colours in a screenshot, so keep them saturated and distinct.
TYPE_COLOURS = {
    "object_detected": "#1f77b4",
    "zone_enter": "#2ca02c",
    "zone_exit": "#8fd175",
    "line_cross": "#d62728",
    "loitering": "#ff7f0e",
    "crowding": "#9467bd",
    "face_recognized": "#e377c2",
    "unknown_face": "#8c564b",
    "camera_status": "#7f7f7f",
    "action": "#17becf",
}
OTHER_COLOUR = "#bcbd22"
# Backgrounds of the timeline's rows, alternating (tests find the timeline by them).
TIMELINE_ROW_FILLS = ("#eef2f7", "#f8fafc")

# Timeline geometry, in SVG user units (the SVG scales to the page width).
SVG_WIDTH = 1200
LABEL_WIDTH = 170
PLOT_RIGHT = SVG_WIDTH - 20
ROW_HEIGHT = 40
AXIS_HEIGHT = 34
MARK_RADIUS = 7

SUMMARY_LABELS = {
    "seconds": "Run time (s)",
    "frames_decoded": "Frames decoded",
    "frames_dropped": "Frames dropped",
    "fps": "Throughput (frames/s)",
    "events_by_type": "Events by type",
    "analyzer_frames": "Frames per analyzer",
    "errors": "Errors",
}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,150}$")

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1240px; padding: 0 16px;
       color: #222; background: #fff; }
h1 { margin-bottom: 4px; }
h2 { margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.muted { color: #666; }
.stats { display: flex; flex-wrap: wrap; gap: 12px; }
.stat { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.stat b { display: block; font-size: 1.5em; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
svg.timeline { width: 100%; height: auto; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; width: 240px; border: 1px solid #ddd; border-radius: 6px; overflow: hidden; }
figure img { width: 100%; display: block; }
figcaption { padding: 6px 8px; font-size: 0.85em; }
video { max-width: 100%; background: #000; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 6px; margin-right: 4px; }
</style>
</head>
<body>
<h1>$title</h1>
<p class="muted">$subtitle</p>
<h2>Summary</h2>
$summary
<h2>Timeline</h2>
$timeline
<h2>Snapshots</h2>
$gallery
<h2>Videos</h2>
$videos
<h2>Events</h2>
$table
</body>
</html>
""")


def enum_name(name_of: Callable[[Any], str], value: int, prefix: str) -> str:
    """``EVENT_TYPE_LINE_CROSS`` -> ``line_cross``; a value this build does not know stays a number."""
    try:
        return name_of(value).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


def type_name(event: event_pb2.Event) -> str:
    return enum_name(event_pb2.EventType.Name, event.type, "EVENT_TYPE_")


def type_colour(name: str) -> str:
    return TYPE_COLOURS.get(name, OTHER_COLOUR)


def when(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def clock(ts: Timestamp) -> str:
    return when(ts).strftime("%H:%M:%S.%f")[:-3]


def subject(event: event_pb2.Event) -> str:
    """What the event is about: the identity for faces, else the label."""
    if event.type == event_pb2.EVENT_TYPE_FACE_RECOGNIZED:
        return event.identity_name or event.identity_id or "known face"
    if event.type == event_pb2.EVENT_TYPE_UNKNOWN_FACE:
        return "unknown face"
    return event.label


def where(event: event_pb2.Event) -> str:
    if event.line_id:
        direction = enum_name(analysis_pb2.CrossingDirection.Name, event.direction, "CROSSING_DIRECTION_")
        return f"line {event.line_id}" + ("" if direction == "unspecified" else f" ({direction})")
    return f"zone {event.zone_id}" if event.zone_id else ""


def snapshot_file(snapshot_id: str) -> str:
    """File name of a snapshot: its id when that is a safe name, else a hash of it."""
    if _SAFE_NAME.match(snapshot_id):
        return f"{snapshot_id}.jpg"
    return hashlib.blake2s(snapshot_id.encode(), digest_size=12).hexdigest() + ".jpg"


def by_time(events: Iterable[event_pb2.Event]) -> list[event_pb2.Event]:
    return sorted(events, key=lambda e: (e.start_time.ToNanoseconds(), e.camera_id, e.id))


# --- summary -----------------------------------------------------------------


def summary_html(summary: Mapping[str, object], events: Sequence[event_pb2.Event]) -> str:
    """Scalars as big numbers, mappings (events by type, per analyzer...) as small tables."""
    stats = [("Events", str(len(events)))]
    tables = []
    for key, value in summary.items():
        label = SUMMARY_LABELS.get(key, key.replace("_", " ").capitalize())
        if isinstance(value, Mapping):
            if value:
                tables.append(f"<h3>{html.escape(label)}</h3>{mapping_table(value)}")
        else:
            stats.append((label, str(value)))
    cards = "".join(
        f'<div class="stat">{html.escape(label)}<b>{html.escape(value)}</b></div>' for label, value in stats
    )
    return f'<div class="stats">{cards}</div>' + "".join(tables)


def mapping_table(value: Mapping[object, object]) -> str:
    """A two-column table; nested mappings (analyzer -> outcome -> frames) become columns."""
    rows = list(value.items())
    columns = sorted({str(k) for _, v in rows if isinstance(v, Mapping) for k in v})
    if columns:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", *columns])
        body = "".join(
            f"<tr><th>{html.escape(str(key))}</th>"
            + "".join(f"<td>{html.escape(str(_get(inner, c)))}</td>" for c in columns)
            + "</tr>"
            for key, inner in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _get(inner: object, column: str) -> object:
    return inner.get(column, "") if isinstance(inner, Mapping) else ""


# --- timeline ----------------------------------------------------------------


def nice_step(span: float, max_ticks: int = 10) -> float:
    """1, 2 or 5 times a power of ten, so that ``span`` gets at most ``max_ticks`` ticks."""
    raw = max(span, 1e-9) / max_ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def tick_label(seconds: float, span: float) -> str:
    if span < 120:
        return f"{seconds:g} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def timeline_svg(events: Sequence[event_pb2.Event]) -> str:
    """One row per camera, one mark per event (a bar when it lasted), time axis from the first event."""
    timed = [e for e in events if e.HasField("start_time")]
    if not timed:
        return '<p class="muted">No events.</p>'
    t0 = min(e.start_time.ToNanoseconds() for e in timed)
    ends = [e.end_time.ToNanoseconds() for e in timed if e.HasField("end_time")]
    t1 = max([e.start_time.ToNanoseconds() for e in timed] + ends)
    span = max((t1 - t0) / 1e9, 1.0)
    cameras = sorted({e.camera_id for e in timed})
    plot_width = PLOT_RIGHT - LABEL_WIDTH
    height = len(cameras) * ROW_HEIGHT + AXIS_HEIGHT + 30

    def x(ns: int) -> float:
        return LABEL_WIDTH + (ns - t0) / 1e9 / span * plot_width

    parts = []
    for row, camera in enumerate(cameras):
        y = row * ROW_HEIGHT + ROW_HEIGHT / 2
        fill = TIMELINE_ROW_FILLS[row % 2]
        parts.append(
            f'<rect x="0" y="{row * ROW_HEIGHT}" width="{SVG_WIDTH}" height="{ROW_HEIGHT}" fill="{fill}"/>'
        )
        parts.append(f'<text x="8" y="{y + 5:.1f}" font-size="14">{html.escape(camera)}</text>')
    for event in timed:
        parts.append(event_mark(event, cameras.index(event.camera_id), x))
    axis_y = len(cameras) * ROW_HEIGHT
    parts.append(f'<line x1="{LABEL_WIDTH}" y1="{axis_y}" x2="{PLOT_RIGHT}" y2="{axis_y}" stroke="#444"/>')
    step = nice_step(span)
    for i in range(int(span / step) + 1):
        tx = LABEL_WIDTH + i * step / span * plot_width
        parts.append(f'<line x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{axis_y + 6}" stroke="#444"/>')
        parts.append(
            f'<text x="{tx:.1f}" y="{axis_y + 20}" font-size="12" text-anchor="middle">'
            f"{html.escape(tick_label(i * step, span))}</text>"
        )
    parts.append(
        f'<text x="{LABEL_WIDTH}" y="{axis_y + AXIS_HEIGHT + 16}" font-size="12" fill="#666">'
        f"time since the first event ({html.escape(when_text(t0))})</text>"
    )
    svg = (
        f'<svg class="timeline" viewBox="0 0 {SVG_WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'role="img" aria-label="event timeline">{"".join(parts)}</svg>'
    )
    return svg + legend(sorted({type_name(e) for e in timed}))


def when_text(ns: int) -> str:
    stamp = Timestamp()
    stamp.FromNanoseconds(ns)
    return when(stamp).strftime("%Y-%m-%d %H:%M:%S UTC")


def event_mark(event: event_pb2.Event, row: int, x: Callable[[int], float]) -> str:
    """A dot at the start; a bar to the end when the event lasted (zone stays, loitering...)."""
    colour = type_colour(type_name(event))
    y = row * ROW_HEIGHT + ROW_HEIGHT / 2
    start = x(event.start_time.ToNanoseconds())
    tip = html.escape(
        f"{clock(event.start_time)} {type_name(event)} {subject(event)} {event.explanation.summary}"
    )
    bar = ""
    if event.HasField("end_time") and event.end_time.ToNanoseconds() > event.start_time.ToNanoseconds():
        end = x(event.end_time.ToNanoseconds())
        bar = (
            f'<rect x="{start:.1f}" y="{y - 4:.1f}" width="{max(end - start, 2):.1f}" height="8" '
            f'fill="{colour}" opacity="0.6"/>'
        )
    dot = f'<circle cx="{start:.1f}" cy="{y:.1f}" r="{MARK_RADIUS}" fill="{colour}"/>'
    return f"<g><title>{tip}</title>{bar}{dot}</g>"


def legend(types: Sequence[str]) -> str:
    items = "".join(
        f'<span style="margin-right:16px"><span class="swatch" style="background:{type_colour(t)}"></span>'
        f"{html.escape(t)}</span>"
        for t in types
    )
    return f"<p>{items}</p>"


# --- gallery, videos, table ------------------------------------------------------


def gallery_html(events: Sequence[event_pb2.Event], snapshots: Mapping[str, bytes]) -> str:
    """One figure per stored snapshot, captioned by the first event that refers to it; an
    event's explanation (its snapshot with the saliency map drawn over it) right after it."""
    first_event: dict[str, event_pb2.Event] = {}
    for event in by_time(events):
        if event.snapshot_id in snapshots:
            first_event.setdefault(event.snapshot_id, event)
    explanations = {
        e.explain_snapshot_id: e for e in first_event.values() if e.explain_snapshot_id in snapshots
    }
    figures = []
    for snapshot_id in [
        *first_event,
        *(s for s in snapshots if s not in first_event and s not in explanations),
    ]:
        shown = first_event.get(snapshot_id)
        figures.append(figure(snapshot_id, f"snapshot {snapshot_id}", snapshot_caption(shown, snapshot_id)))
        if shown is not None and shown.explain_snapshot_id in explanations:
            looked = f"where {shown.analyzer} looked (saliency map, red = most)"
            figures.append(figure(shown.explain_snapshot_id, looked, html.escape(looked)))
    if not figures:
        return '<p class="muted">No snapshots.</p>'
    return f'<div class="gallery">{"".join(figures)}</div>'


def figure(snapshot_id: str, alt: str, caption: str) -> str:
    """A gallery figure of the stored picture ``snapshot_id``; ``caption`` is HTML already."""
    src = html.escape(quote(f"snapshots/{snapshot_file(snapshot_id)}"))
    return f'<figure><img src="{src}" alt="{html.escape(alt)}"><figcaption>{caption}</figcaption></figure>'


def snapshot_caption(event: event_pb2.Event | None, snapshot_id: str) -> str:
    """Type and camera, who or what, and when; the bare id for a snapshot no event refers to."""
    if event is None:
        return html.escape(snapshot_id)
    lines = (f"{type_name(event)} · {event.camera_id}", subject(event), f"{clock(event.start_time)} UTC")
    return "<br>".join(html.escape(line) for line in lines if line)


def videos_html(out_dir: Path, videos: Sequence[Path]) -> str:
    if not videos:
        return '<p class="muted">No annotated videos.</p>'
    root = out_dir.resolve()
    blocks = []
    for video in videos:
        try:
            relative = video.resolve().relative_to(root).as_posix()
        except ValueError:
            raise ValueError(f"video {video} is not inside the report folder {out_dir}") from None
        src = html.escape(quote(relative))
        blocks.append(
            f"<h3>{html.escape(video.name)}</h3>"
            f'<video controls muted preload="metadata" src="{src}">'
            f'<a href="{src}">{html.escape(video.name)}</a></video>'
        )
    return "".join(blocks)


EVENT_COLUMNS = ("Start (UTC)", "Camera", "Type", "State", "Who / what", "Track", "Where", "Score", "Why")


def events_table(events: Sequence[event_pb2.Event]) -> str:
    if not events:
        return '<p class="muted">No events.</p>'
    head = "".join(f"<th>{c}</th>" for c in EVENT_COLUMNS)
    rows = []
    for event in by_time(events):
        cells = (
            clock(event.start_time) if event.HasField("start_time") else "",
            event.camera_id,
            type_name(event),
            enum_name(event_pb2.EventState.Name, event.state, "EVENT_STATE_"),
            subject(event),
            str(event.track_id) if event.track_id else "",
            where(event),
            f"{event.confidence:.2f}" if event.confidence else "",
            event.explanation.summary,
        )
        swatch = f'<span class="swatch" style="background:{type_colour(type_name(event))}"></span>'
        body = "".join(
            f"<td>{swatch if i == 2 else ''}{html.escape(cell)}</td>" for i, cell in enumerate(cells)
        )
        rows.append(f"<tr>{body}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_report(
    out_dir: Path,
    events: Sequence[event_pb2.Event],
    snapshots: Mapping[str, bytes],
    videos: Sequence[Path],
    summary: Mapping[str, object],
    title: str = "camsight report",
) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/snapshots/*.jpg``; returns the page's path.

    ``events``: one message per event id (the latest revision); ``snapshots``:
    JPEG bytes by snapshot id; ``videos``: files already inside ``out_dir``
    (a ValueError otherwise: the page refers to them by relative path);
    ``summary``: e.g. ``PipelineSummary.as_dict()``, scalars and mappings.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if snapshots:
        folder = out_dir / "snapshots"
        folder.mkdir(exist_ok=True)
        for snapshot_id, data in snapshots.items():
            (folder / snapshot_file(snapshot_id)).write_bytes(data)
    cameras = sorted({e.camera_id for e in events})
    subtitle = (
        f"{len(events)} events on {len(cameras)} camera(s): {', '.join(cameras)}" if cameras else "No events."
    )
    page = PAGE.substitute(
        title=html.escape(title),
        subtitle=html.escape(subtitle),
        summary=summary_html(summary, events),
        timeline=timeline_svg(events),
        gallery=gallery_html(events, snapshots),
        videos=videos_html(out_dir, videos),
        table=events_table(events),
    )
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
