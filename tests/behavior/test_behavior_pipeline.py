"""A generated video of moving shapes through the real pipeline: decoder, detector (motion), behavior."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from camsight.cameras import CameraConfig
from camsight.config import Settings, StreamSettings
from camsight.run.pipeline import EmbeddedPipeline
from camsight.v1 import analysis_pb2, event_pb2
from helpers import sample_video

W, H, FPS, FRAMES = 320, 240, 10, 70
# FRAMES keeps 8 frames per camera by default and a file is decoded as fast as the
# analyzers go (4 frames in flight): a behavior replica slowed down by a busy test
# machine can then find a frame gone before it fetches its snapshot. Keeping more
# frames makes the snapshot assertions certain (see docs/rules.md, snapshots).
ROOMY = StreamSettings(frames_per_camera=64)
# (row centre y, start x, pixels per frame): two shapes walk right, one walks left.
SHAPES = [(0.25, 20, 4), (0.75, 30, 4), (0.5, 300, -4)]


def shapes_video(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (W, H))
    assert writer.isOpened()
    for i in range(FRAMES):
        image = np.full((H, W, 3), 30, np.uint8)
        for row, x0, step in SHAPES:
            x, y = x0 + step * i, int(row * H)
            cv2.rectangle(image, (x - 14, y - 20), (x + 14, y + 20), (230, 230, 230), -1)
        writer.write(image)
    writer.release()
    return path


@pytest.mark.slow
async def test_moving_shapes_are_counted_exactly_through_the_pipeline(tmp_path: Path) -> None:
    video = shapes_video(tmp_path / "shapes.mp4")
    cam = CameraConfig.model_validate(
        {
            "id": "shapes",
            "source": str(video),
            "analyzers": ["motion"],
            "lines": [{"id": "mid", "a": [0.5, 1.0], "b": [0.5, 0.0], "in_side_right": True}],
            "rules": [{"id": "count", "type": "line_cross", "line": "mid", "labels": ["motion"]}],
        }
    )
    settings = Settings(streams=ROOMY, services={"detector": {"analyzers": {"motion": {}}}})
    services = (
        "camsight.decoder.service:DecoderService",
        "camsight.detector.service:DetectorService",
        "camsight.behavior.service:BehaviorService",
    )
    events: list[event_pb2.Event] = []
    async with EmbeddedPipeline(settings, tmp_path / "data", services=services) as pipeline:
        async with pipeline.watch_events(events.append):
            await pipeline.add_cameras([cam])
            await pipeline.wait_finished(["shapes"])
    crossings = [e for e in events if e.type == event_pb2.EVENT_TYPE_LINE_CROSS]
    directions = sorted(e.direction for e in crossings)
    assert directions == [
        analysis_pb2.CROSSING_DIRECTION_IN,
        analysis_pb2.CROSSING_DIRECTION_IN,
        analysis_pb2.CROSSING_DIRECTION_OUT,
    ], [e.explanation.summary for e in crossings]
    assert max(int(e.attributes["in_count"]) for e in crossings) == 2
    assert all(e.snapshot_id for e in crossings)


def video_frame(path: Path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = capture.read()
    finally:
        capture.release()
    assert ok, f"frame {index} of {path.name}"
    return image


@pytest.mark.slow
async def test_bikes_line_and_zone_events_carry_snapshots_of_the_object(tmp_path: Path) -> None:
    """HOG people on bikes.mp4: a line a cyclist rides across, a zone people stand in."""
    video = sample_video("bikes.mp4")
    cam = CameraConfig.model_validate(
        {
            "id": "bikes",
            "source": str(video),
            "analyzers": ["hog"],
            "lines": [{"id": "kerb", "a": [0.37, 0.8], "b": [0.37, 0.3]}],
            "zones": [{"id": "left", "polygon": [[0.15, 0.45], [0.35, 0.45], [0.35, 0.95], [0.15, 0.95]]}],
            "rules": [
                {"id": "cross", "type": "line_cross", "line": "kerb", "labels": ["person"]},
                {"id": "enter", "type": "zone_enter", "zone": "left", "labels": ["person"]},
            ],
        }
    )
    settings = Settings(streams=ROOMY, services={"detector": {"analyzers": {"hog": {}}}})
    services = (
        "camsight.decoder.service:DecoderService",
        "camsight.detector.service:DetectorService",
        "camsight.behavior.service:BehaviorService",
    )
    events: list[event_pb2.Event] = []
    async with EmbeddedPipeline(settings, tmp_path / "data", services=services) as pipeline:
        async with pipeline.watch_events(events.append):
            await pipeline.add_cameras([cam])
            await pipeline.wait_finished(["bikes"])
        store = await pipeline.bus.object_store("snapshots")
        ours = [e for e in events if e.rule_id in ("cross", "enter")]
        assert {e.rule_id for e in ours} == {"cross", "enter"}, [e.explanation.summary for e in ours]
        for event in ours:
            assert event.snapshot_id, event.explanation.summary
            data = (await store.get(event.snapshot_id)).data or b""
            snapshot = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert snapshot is not None and snapshot.shape == (272, 640, 3)
            # It is the frame the object was detected in (seq n is frame n - 1 of the file)...
            seq = int(event.snapshot_id.rsplit("-", 1)[1])
            original = video_frame(video, seq - 1)
            assert np.median(cv2.absdiff(snapshot, original)) < 8
            # ...with the detection's box drawn on it in green.
            green = (snapshot[:, :, 1] > 200) & (snapshot[:, :, 0] < 80) & (snapshot[:, :, 2] < 80)
            assert green.sum() > 100
