"""The behavior engine: results in, events out, no I/O.

Per camera: one reorder buffer and one tracker per analyzer (an object
detector and a face analyzer see the same frames but produce different
tracks; two analyzers reporting the same label never share a track), and one
runner per configured rule. Everything is driven by the
frames' own sequence numbers and media times, so the same input always
gives the same events, ids included.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from camsight.behavior import rules
from camsight.behavior.events import Emission
from camsight.behavior.model import Frame, Track
from camsight.behavior.reorder import ReorderBuffer
from camsight.behavior.settings import BehaviorSettings
from camsight.behavior.tracking import StreamTracker
from camsight.cameras import CameraConfig
from camsight.v1 import analysis_pb2

log = logging.getLogger(__name__)
Result = analysis_pb2.AnalysisResult


@dataclass
class Stats:
    """Counters the service exports as metrics."""

    processed: int = 0
    skipped: int = 0
    late: int = 0
    restarts: int = 0
    unconfigured: int = 0
    events: int = 0


@dataclass
class _Stream:
    buffer: ReorderBuffer[Result]
    tracker: StreamTracker
    last: Frame | None = None
    ended: bool = False
    """The stream's end marker was processed (the source ended after ``last``)."""


@dataclass
class CameraEngine:
    """Tracks and rules of one camera."""

    config: CameraConfig
    settings: BehaviorSettings
    stats: Stats
    registry: rules.RuleRegistry = field(default_factory=rules.default_registry)
    streams: dict[str, _Stream] = field(default_factory=dict)
    runners: dict[str, tuple[tuple[Any, ...], rules.RuleRunner]] = field(default_factory=dict)
    labels: frozenset[str] | None = field(default=None, init=False)
    """Labels some rule looks at (None: every label); only those are tracked."""

    def __post_init__(self) -> None:
        self.configure(self.config)

    @property
    def last_frame(self) -> Frame | None:
        frames = [s.last for s in self.streams.values() if s.last is not None]
        return max(frames, key=lambda f: f.t, default=None)

    def configure(self, config: CameraConfig) -> list[Emission]:
        """Apply new rules; unchanged rules keep their state, others end their open events."""
        self.config = config
        # The labels any rule looks at (None: some rule takes every label).
        self.labels = frozenset()
        for rule in config.rules:
            self.labels = None if self.labels is None or not rule.labels else self.labels | set(rule.labels)
        old, self.runners = self.runners, {}
        out: list[Emission] = []
        for rule in config.rules:
            key = rules.spec(rule, config)
            kept = old.pop(rule.id, None)
            if kept is not None and kept[0] == key:
                self.runners[rule.id] = kept
            else:
                if kept is not None:
                    out.extend(self._close(kept[1], "the rule changed"))
                try:
                    self.runners[rule.id] = (key, self.registry.build(rule, config, self.settings))
                except rules.RuleError as exc:  # a camera changed at run time: that rule only is off
                    log.error("camera %s: %s", config.id, exc)
        for _, runner in old.values():
            out.extend(self._close(runner, "the rule was removed"))
        return out

    def state(self) -> dict[str, Any]:
        """Everything that decides this camera's future events, for a checkpoint:
        the config its runners were built for, its streams (reorder buffers,
        trackers) and its rule runners. Stats are the service's, not the camera's."""
        return {"config": self.config, "streams": self.streams, "runners": self.runners}

    def _close(self, runner: rules.RuleRunner, reason: str) -> list[Emission]:
        frame = self.last_frame
        return runner.close(frame, reason) if frame is not None else []

    def close(self, reason: str = "the camera was removed") -> list[Emission]:
        """End every open event (the camera is gone, or its source ended)."""
        out: list[Emission] = []
        for _, runner in self.runners.values():
            out.extend(self._close(runner, reason))
        self.runners.clear()
        return out

    def push(self, result: Result, now: float = 0.0) -> list[Emission]:
        stream = self.streams.get(result.analyzer)
        if stream is None:
            stream = self.streams[result.analyzer] = _Stream(
                ReorderBuffer(self.settings.reorder_window), StreamTracker(self.settings, result.analyzer)
            )
        out: list[Emission] = []
        if stream.buffer.behind(result.frame.seq) and _restarted(stream, result):
            self.stats.restarts += 1
            out.extend(self._process(stream, stream.buffer.restart()))
            out.extend(self._reset(stream))
        released = stream.buffer.push(result.frame.seq, result, now)
        if released.late:
            self.stats.late += 1
            log.debug("late result dropped", extra={"camera": self.config.id, "seq": result.frame.seq})
        out.extend(self._process(stream, released.items))
        return out

    def flush(self, older_than: float | None = None) -> list[Emission]:
        """Release held results (all, or those waiting since before ``older_than``), skipping gaps."""
        out: list[Emission] = []
        for stream in self.streams.values():
            since = stream.buffer.waiting_since
            if since is not None and (older_than is None or since <= older_than):
                out.extend(self._process(stream, stream.buffer.flush()))
        return out

    def _reset(self, stream: _Stream) -> list[Emission]:
        frame = stream.last
        out: list[Emission] = []
        for track in stream.tracker.reset(renumber=frame is not None and frame.recorded):
            for _, runner in self.runners.values():
                out.extend(runner.lost(frame or track.last, track))
        return out

    def _end(self, stream: _Stream) -> list[Emission]:
        """The stream's source ended: its tracks are lost (their events end at their
        last sighting), and once every stream of the camera ended, what is still
        open camera-wide ends too. The rules start afresh for a later run."""
        stream.ended = True
        out = self._reset(stream)
        if all(s.ended for s in self.streams.values()):
            out.extend(self.close("the source ended"))
            self.configure(self.config)
        return out

    def _process(self, stream: _Stream, results: list[Result]) -> list[Emission]:
        out: list[Emission] = []
        for result in results:
            if result.frame.end_of_stream:
                out.extend(self._end(stream))
                continue
            frame = Frame.of(result)
            stream.last = frame
            stream.ended = False
            self.stats.processed += 1
            if result.skipped:
                self.stats.skipped += 1
                seen: list[Track] = []
            else:
                update = stream.tracker.update(frame, result.detections, self.labels)
                seen = update.seen
                for track in update.lost:
                    for _, runner in self.runners.values():
                        out.extend(runner.lost(frame, track))
            present = list(stream.tracker.tracks.values())
            for _, runner in self.runners.values():
                out.extend(runner.step(frame, seen, present))
            for track in seen:
                track.new.clear()
        return out


def _restarted(stream: _Stream, result: Result) -> bool:
    """An earlier frame number with a later capture time (or seq 1 again): the camera restarted.

    A result that is merely late has an earlier capture time than what was
    already processed.
    """
    if result.frame.seq == 1 or stream.last is None:
        return True
    return result.frame.capture_time.ToNanoseconds() > stream.last.ref.capture_time.ToNanoseconds()


class Engine:
    """All cameras this replica owns."""

    def __init__(self, settings: BehaviorSettings, registry: rules.RuleRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or rules.default_registry()
        self.stats = Stats()
        self.cameras: dict[str, CameraEngine] = {}

    def _counted(self, out: list[Emission]) -> list[Emission]:
        self.stats.events += sum(1 for e in out if e.event is not None)
        return out

    def set_camera(self, config: CameraConfig) -> list[Emission]:
        camera = self.cameras.get(config.id)
        if camera is None:
            self.cameras[config.id] = CameraEngine(config, self.settings, self.stats, self.registry)
            return []
        return self._counted(camera.configure(config))

    def restore(self, config: CameraConfig, state: dict[str, Any], now: float = 0.0) -> list[Emission]:
        """Take a camera over from its :meth:`CameraEngine.state`, then apply ``config``:
        rules unchanged since keep their state, the others end their open events.

        Results held for reordering wait from ``now`` (the wall clock of the process that
        held them is not this one's).
        """
        camera = CameraEngine(state["config"], self.settings, self.stats, self.registry)
        camera.streams, camera.runners = state["streams"], state["runners"]
        for stream in camera.streams.values():
            if stream.buffer.waiting_since is not None:
                stream.buffer.waiting_since = now
        self.cameras[config.id] = camera
        return self._counted(camera.configure(config))

    def remove_camera(self, camera_id: str, reason: str = "the camera was removed") -> list[Emission]:
        camera = self.cameras.pop(camera_id, None)
        return self._counted(camera.close(reason) if camera else [])

    def holds(self, camera_id: str, analyzer: str, seq: int) -> bool:
        """The result of (camera, analyzer, seq) waits in a reorder buffer, unprocessed."""
        camera = self.cameras.get(camera_id)
        stream = camera.streams.get(analyzer) if camera else None
        return stream is not None and stream.buffer.holds(seq)

    def push(self, result: Result, now: float = 0.0) -> list[Emission]:
        """Process one result (in whatever order it arrived); returns what to publish."""
        camera = self.cameras.get(result.frame.camera_id)
        if camera is None:
            self.stats.unconfigured += 1
            return []
        return self._counted(camera.push(result, now))

    def flush(self, older_than: float | None = None) -> list[Emission]:
        out: list[Emission] = []
        for camera in self.cameras.values():
            out.extend(camera.flush(older_than))
        return self._counted(out)
