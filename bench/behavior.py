"""Behavior benchmark: detection messages per second per core, 10 objects each.

Ten objects walk across a camera (each crosses a counting line and a zone,
some stand still), as serialized AnalysisResults. Two loops over the same
bytes, in this process, one after the other, on one core:

* baseline: parse each message (``AnalysisResult.FromString``) and read
  every detection's label, score and box: the floor any consumer of
  DETECTIONS pays (protobuf parsing is lazy, so reading the fields counts);
* behavior: parse, reorder, track (ByteTrack per label) and run five rules
  (object_detected, line_cross, zone_enter, loitering, crowding) through the
  engine, producing the events.

Reported: messages per second for both and the ratio. Target: behavior
>= 2,000 messages/s. NATS is left out on purpose: its cost is the bus's and
is measured by the bus and decoder benchmarks.

Run: ``.venv/bin/python bench/behavior.py [--smoke]``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from camsight.behavior.engine import Engine
from camsight.behavior.settings import BehaviorSettings
from camsight.cameras import CameraConfig
from camsight.v1 import analysis_pb2

FPS = 10
OBJECTS = 10


def camera() -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "bench",
            "source": "file:///bench.mp4",
            "zones": [{"id": "mid", "polygon": [[0.4, 0.0], [0.6, 0.0], [0.6, 1.0], [0.4, 1.0]]}],
            "lines": [{"id": "door", "a": [0.5, 1.0], "b": [0.5, 0.0], "in_side_right": True}],
            "rules": [
                {"id": "seen", "type": "object_detected"},
                {"id": "count", "type": "line_cross", "line": "door"},
                {"id": "enter", "type": "zone_enter", "zone": "mid"},
                {"id": "idle", "type": "loitering", "zone": "mid", "duration_s": 3},
                {"id": "crowd", "type": "crowding", "zone": "mid", "min_count": 3, "duration_s": 2},
            ],
        }
    )


def messages(frames: int) -> list[bytes]:
    """Ten objects in ten lanes; the even ones walk back and forth, the odd ones stand in the zone."""
    out = []
    for seq in range(1, frames + 1):
        result = analysis_pb2.AnalysisResult(analyzer="bench", kind="objects")
        ref = result.frame
        ref.camera_id, ref.seq, ref.stream, ref.stream_sequence = "bench", seq, "FRAMES", seq
        ref.capture_time.FromNanoseconds(1_800_000_000 * 10**9 + seq * 10**9 // FPS)
        ref.media_time.FromNanoseconds(seq * 10**9 // FPS)
        for i in range(OBJECTS):
            phase = (seq * 0.005 + i * 0.07) % 1.6
            x = 0.05 + (phase if phase < 0.8 else 1.6 - phase) if i % 2 == 0 else 0.5
            y = 0.1 + i * 0.085
            label = "person" if i < 7 else "car"
            result.detections.add(
                label=label,
                score=0.6 + 0.03 * i,
                box=analysis_pb2.BoundingBox(x1=x - 0.03, y1=y - 0.07, x2=x + 0.03, y2=y),
            )
        out.append(result.SerializeToString())
    return out


def _rate(work: Any, payloads: list[bytes]) -> float:
    start = time.process_time()  # CPU time of this process: "per core"
    for data in payloads:
        work(data)
    return len(payloads) / (time.process_time() - start)


def _read(data: bytes) -> None:
    for d in analysis_pb2.AnalysisResult.FromString(data).detections:
        _ = (d.label, d.score, d.box.x1, d.box.y1, d.box.x2, d.box.y2)


def run(smoke: bool = False) -> dict[str, Any]:
    frames = 600 if smoke else 6000
    payloads = messages(frames)
    baseline = _rate(_read, payloads)
    engine = Engine(BehaviorSettings())
    engine.set_camera(camera())

    def behave(data: bytes) -> None:
        engine.push(analysis_pb2.AnalysisResult.FromString(data))

    behavior = _rate(behave, payloads)
    return {
        "messages": frames,
        "objects_per_message": OBJECTS,
        "baseline_parse_and_read_msgs_per_s": round(baseline),
        "behavior_msgs_per_s": round(behavior),
        "behavior_over_baseline": round(behavior / baseline, 4),
        "target_msgs_per_s": 2000,
        "meets_target": behavior >= 2000,
        "events": engine.stats.events,
        "tracks_confirmed": sum(s.tracker.confirmed for s in engine.cameras["bench"].streams.values()),
    }


if __name__ == "__main__":
    print(json.dumps(run(smoke="--smoke" in sys.argv), indent=2))
