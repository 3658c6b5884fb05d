"""Annotated copies of source videos: boxes, names, zones, lines and running counts.

The decoder samples a file by media time and analyzers only see the sampled
frames, so most source frames have no result of their own. This module
re-decodes every source frame with OpenCV and draws, per analyzer, the most
recent result at or before the frame's media time while it is fresh (no older
than one sampled-frame interval), so boxes neither flicker nor linger.

An event of a recording carries its place in the video (``start_media_time``,
decision 0046); its ``start_time`` is on the recording's clock (the container's
creation time plus the media time), which can be months away from when the
file was read. Events without a media time (a live source's) are placed through
the results' (capture time, media time) pairs: the last pair at or before the
event's start, plus the difference. Events that cannot be placed are left out
of the overlay; the report still lists them.

The output is H.264 (yuv420p, ``+faststart``) written by the ffmpeg binary of
imageio-ffmpeg, because no OpenCV wheel writes H.264 and browsers play
nothing else reliably. :func:`annotate_video` blocks (call it through
``asyncio.to_thread``); :func:`annotate_cameras` is the one piece that
``camsight run --annotate`` and ``camsight demo`` call once a run drained.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import statistics
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from google.protobuf.duration_pb2 import Duration

from camsight.analyzers import KIND_MOTION
from camsight.bus import subjects
from camsight.bus.subjects import event_type_token
from camsight.cameras import CameraConfig
from camsight.decoder.sources import SourceKind, classify
from camsight.overlay import (
    TEXT_COLOUR,
    Image,
    Style,
    draw_result,
    draw_text,
    draw_zones_and_lines,
)
from camsight.privacy import blur_boxes
from camsight.run.pipeline import EmbeddedPipeline, PipelineSummary
from camsight.v1 import analysis_pb2, event_pb2

# imageio-ffmpeg starts ffmpeg with preexec_fn=os.setpgrp (so Ctrl-C does not reach it),
# which makes Python fork() instead of vfork(): in a process whose gRPC server (embedded
# mode's query service) has threads running, gRPC's fork handlers then broke the child
# before it could exec ffmpeg now and then ("Broken pipe", no ffmpeg output: 2 of ~6 runs).
# Without preexec_fn Python takes the vfork path, which runs no fork handlers. Ctrl-C then
# also reaches ffmpeg, which is what the user wants while videos are being written.
os.environ.setdefault("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", "1")

# How long an event stays in the "recent events" overlay, in media seconds.
RECENT_EVENT_S = 2.0
RECENT_EVENT_ROWS = 3


def seconds(duration: Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


class ResultTimeline:
    """The camera's results in media-time order, consumed as source frames advance."""

    def __init__(
        self, results: Iterable[analysis_pb2.AnalysisResult], camera_id: str, frame_period: float
    ) -> None:
        kept = [r for r in results if r.frame.camera_id == camera_id and not r.skipped]
        self.results = sorted(kept, key=lambda r: seconds(r.frame.media_time))
        times = sorted({seconds(r.frame.media_time) for r in self.results})
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # A frame's results are drawn until the next sampled frame is due,
        # with half a source frame of slack for timestamp rounding.
        self.tolerance = frame_period / 2
        self.fresh_for = max(statistics.median_low(gaps) if gaps else 0.0, frame_period) + self.tolerance
        self._next = 0
        self._latest: dict[str, analysis_pb2.AnalysisResult] = {}

    def at(self, media_time: float) -> list[analysis_pb2.AnalysisResult]:
        """The latest fresh result of every analyzer at ``media_time`` (call with increasing times)."""
        while self._next < len(self.results) and (
            seconds(self.results[self._next].frame.media_time) <= media_time + self.tolerance
        ):
            result = self.results[self._next]
            self._latest[result.analyzer] = result
            self._next += 1
        return [
            r for r in self._latest.values() if media_time - seconds(r.frame.media_time) <= self.fresh_for
        ]


@dataclass(frozen=True)
class PlacedEvent:
    media_time: float
    event: event_pb2.Event


def place_events(
    events: Sequence[event_pb2.Event], results: Sequence[analysis_pb2.AnalysisResult]
) -> list[PlacedEvent]:
    """Events on the media timeline: at their media time, else through the results'
    (capture, media) time pairs."""
    pairs = sorted(
        {
            (r.frame.capture_time.ToNanoseconds(), seconds(r.frame.media_time))
            for r in results
            if r.frame.HasField("capture_time")
        }
    )
    captures = [c for c, _ in pairs]
    placed = []
    for event in events:
        if event.HasField("start_media_time"):
            placed.append(PlacedEvent(seconds(event.start_media_time), event))
        elif pairs and event.HasField("start_time"):
            start = event.start_time.ToNanoseconds()
            capture, media = pairs[max(0, bisect.bisect_right(captures, start) - 1)]
            placed.append(PlacedEvent(media + (start - capture) / 1e9, event))
    return sorted(placed, key=lambda p: p.media_time)


def overlay_rows(camera: CameraConfig, placed: Sequence[PlacedEvent], media_time: float) -> list[str]:
    """Running line counts, then the most recent events (newest first).

    Camera status changes (online, ended) say nothing about the scene and
    are left out.
    """
    past = [p for p in placed if p.media_time <= media_time]
    rows = []
    for line in camera.lines:
        crossings = [
            p.event
            for p in past
            if p.event.type == event_pb2.EVENT_TYPE_LINE_CROSS and p.event.line_id == line.id
        ]
        counts = crossings[-1].attributes if crossings else {}
        name = line.display_name or line.id
        rows.append(f"{name}: in {counts.get('in_count', '0')} out {counts.get('out_count', '0')}")
    recent = [
        p.event
        for p in past
        if media_time - p.media_time <= RECENT_EVENT_S and p.event.type != event_pb2.EVENT_TYPE_CAMERA_STATUS
    ]
    for event in reversed(recent[-RECENT_EVENT_ROWS:]):
        rows.append(event.explanation.summary or f"{event_type_token(event.type)} {event.label}".strip())
    return rows


def draw_overlay(image: Image, rows: Sequence[str], style: Style) -> None:
    width = image.shape[1]
    max_chars = max(8, int(width / (20 * style.scale)))
    for i, row in enumerate(rows):
        text = row if len(row) <= max_chars else row[: max_chars - 1] + "~"
        draw_text(
            image, text, (4, image.shape[0] - 6 - (len(rows) - 1 - i) * style.line_height), style, TEXT_COLOUR
        )


def source_frames(source: Path) -> Generator[tuple[float, Image], None, None]:
    """(media seconds, BGR image) for every frame, timed like the decoder (CAP_PROP_POS_MSEC)."""
    cap = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise ValueError(f"cannot decode {source}: not a video container or codec FFmpeg can read")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    try:
        index = 0
        while True:
            ok, image = cap.read()
            if not ok or image is None:
                return
            msec = float(cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
            yield (msec / 1000.0 if msec > 0 or index == 0 else index / fps), image
            index += 1
    finally:
        cap.release()


def video_fps(source: Path) -> float:
    cap = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()
    return fps if 0 < fps <= 240 else 25.0


def annotate_video(
    source: Path,
    results: Iterable[analysis_pb2.AnalysisResult],
    camera: CameraConfig,
    events: Sequence[event_pb2.Event],
    out: Path,
) -> Path:
    """Write ``out``: every frame of ``source`` with results, zones, lines and counts drawn.

    ``results`` are the camera's AnalysisResults (any analyzers, any order;
    other cameras' and skipped results are ignored); ``events`` its events.
    Detections whose privacy says blur (:mod:`camsight.privacy`) are blurred. Frames with
    an odd width or height get one black row/column of padding (yuv420p needs
    even sizes). Returns ``out``; raises ValueError for a source OpenCV
    cannot decode and OSError when ffmpeg stops (disk full, killed).
    """
    fps = video_fps(source)
    timeline = ResultTimeline(results, camera.id, 1.0 / fps)
    placed = place_events(events, timeline.results)
    frames = source_frames(source)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"{source} has no frame to annotate")
    height, width = first[1].shape[:2]
    size = (width + width % 2, height + height % 2)
    style = Style.for_frame(height)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(
        str(out),
        size,
        pix_fmt_in="bgr24",
        fps=fps,
        codec="libx264",
        macro_block_size=2,
        ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart", "-preset", "veryfast", "-crf", "23"],
    )
    writer.send(None)
    try:
        for media_time, image in itertools.chain([first], frames):
            fresh = timeline.at(media_time)
            blur_boxes(image, (d for result in fresh for d in result.detections))  # before any drawing
            draw_zones_and_lines(image, camera, style)
            for result in sorted(fresh, key=lambda r: r.kind != KIND_MOTION):  # objects on top
                draw_result(image, result, style)
            draw_overlay(image, overlay_rows(camera, placed, media_time), style)
            if size != (width, height):
                image = cv2.copyMakeBorder(
                    image, 0, size[1] - height, 0, size[0] - width, cv2.BORDER_CONSTANT
                )
            try:
                writer.send(np.ascontiguousarray(image).tobytes())
            except OSError as exc:  # imageio-ffmpeg's message spans lines and repeats the command
                raise OSError(
                    f"cannot write {out}: ffmpeg stopped ({str(exc).splitlines()[0]}); "
                    "its own message, if any, is above"
                ) from exc
    finally:
        frames.close()
        writer.close()
    return out


def video_file(camera: CameraConfig) -> Path | None:
    """The video file behind ``camera``, or None when its source cannot be decoded a second time.

    Streams and webcams are live (what they showed is gone once read) and
    image folders are not videos, so only files can be annotated.
    """
    kind, target = classify(camera.source)
    return Path(target) if kind is SourceKind.FILE else None


async def annotate_cameras(
    pipeline: EmbeddedPipeline,
    summary: PipelineSummary,
    cameras: Sequence[CameraConfig],
    out: Path,
    since_ns: int,
) -> list[Path]:
    """Write ``out/<camera id>.mp4`` for every camera with a video file; returns the videos written.

    Call it once the run drained and while the pipeline still runs: the
    results are read back from the DETECTIONS stream (kept for
    ``streams.detections_max_age_s``), the events from ``summary``. A data
    folder may be reused, so the stream can also hold earlier runs' results
    of the same camera: only frames captured from ``since_ns`` (wall clock,
    taken before the run) on are drawn. Cameras that ended in error are left
    out: their error is reported already.
    """
    videos = []
    for camera in cameras:
        source = video_file(camera)
        if source is None or camera.id in summary.errors:
            continue
        raw = await pipeline.bus.read_stream(
            subjects.DETECTIONS_STREAM, subjects.detections_of_camera(camera.id)
        )
        results = [
            result
            for result in map(analysis_pb2.AnalysisResult.FromString, raw)
            if result.frame.capture_time.ToNanoseconds() >= since_ns
        ]
        events = [e for e in summary.events.values() if e.camera_id == camera.id]
        video = out / f"{camera.id}.mp4"
        videos.append(await asyncio.to_thread(annotate_video, source, results, camera, events, video))
    return videos
