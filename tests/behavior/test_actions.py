"""Clip analyzers' labels become events: the ``action`` rule."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from behavior_scenes import FPS, camera, of_type, result, run, seq_of
from camsight.v1 import analysis_pb2, event_pb2
from helpers import install_example, sample_video

STARTED, ENDED = event_pb2.EVENT_STATE_STARTED, event_pb2.EVENT_STATE_ENDED


def label(name: str, score: float = 0.9) -> analysis_pb2.Detection:
    """A scene label: a detection of the whole picture (the plugin API's default box)."""
    return analysis_pb2.Detection(
        label=name, score=score, box=analysis_pb2.BoundingBox(x1=0, y1=0, x2=1, y2=1)
    )


def clip_results(
    frames: int, stride: int, labelled: dict[int, list[str]]
) -> list[analysis_pb2.AnalysisResult]:
    """A clip analyzer evaluated every ``stride`` frames (others skipped); ``labelled[seq]`` its labels."""
    out = []
    for seq in range(1, frames + 1):
        if seq % stride:
            out.append(result(seq, analyzer="clips", kind="actions", skipped=True))
        else:
            out.append(
                result(seq, [label(n) for n in labelled.get(seq, [])], analyzer="clips", kind="actions")
            )
    return out


ACTION = {"id": "act", "type": "action", "labels": ["cut", "fall"]}
CUTS = ACTION | {"hysteresis_frames": 1}  # an instantaneous label: ends at the first silent window


def test_a_label_from_a_single_window_is_one_event() -> None:
    events = run(camera(rules=[ACTION]), clip_results(80, 4, {20: ["cut"]}))
    cut = of_type(events, "action")
    assert [e.state for e in cut] == [STARTED, ENDED]
    assert {e.id for e in cut} == {cut[0].id} and cut[0].label == "cut" and cut[0].analyzer == "clips"
    assert seq_of(cut[0].start_time) == 20 and seq_of(cut[1].end_time) == 20
    assert cut[1].track_id == 0


def test_cuts_close_together_are_separate_events_whatever_the_stride() -> None:
    cuts = {8: ["cut"], 16: ["cut"], 28: ["cut"], 36: ["cut"], 48: ["cut"]}  # 1 to 1.5 s apart
    events = run(camera(rules=[CUTS]), clip_results(80, 4, cuts))
    started = [e for e in of_type(events, "action") if e.state == STARTED]
    assert [seq_of(e.start_time) for e in started] == [8, 16, 28, 36, 48]


def test_a_long_action_is_one_event_with_updates_and_ends_after_two_silent_windows() -> None:
    falling = {seq: ["fall"] for seq in range(4, 8 * FPS + 1, 4)}  # reported for 8 s
    events = run(camera(rules=[ACTION]), clip_results(12 * FPS, 4, falling), update_interval_s=2)
    fall = of_type(events, "action")
    assert fall[0].state == STARTED and fall[-1].state == ENDED and len({e.id for e in fall}) == 1
    assert len(fall) > 3  # UPDATED in between
    assert seq_of(fall[-1].end_time) == 8 * FPS
    assert fall[-1].attributes["duration_s"] == f"{(8 * FPS - 4) / FPS:.3f}"


def test_scene_labels_are_not_tracked() -> None:
    cfg = camera(rules=[ACTION, {"id": "seen", "type": "object_detected"}])
    events = run(cfg, clip_results(80, 1, {seq: ["cut"] for seq in range(10, 40)}))
    assert of_type(events, "object_detected") == []
    assert len([e for e in of_type(events, "action") if e.state == STARTED]) == 1


def montage(path: Path, shots: list[tuple[str, int]]) -> Path:
    """Two seconds (20 frames at 10 fps, 320x240) of each ``(sample video, first frame)``:
    real footage whose cuts are where the shots meet, at 2, 4, 6... s."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (320, 240))
    for name, first in shots:
        capture = cv2.VideoCapture(str(sample_video(name)))
        capture.set(cv2.CAP_PROP_POS_FRAMES, first)
        for _ in range(20):
            ok, image = capture.read()
            assert ok, f"{name} has fewer than {first + 20} frames"
            writer.write(cv2.resize(image, (320, 240)))
        capture.release()
    writer.release()
    return path


@pytest.mark.slow
def test_cuts_in_a_montage_of_real_footage_are_action_events_through_camsight_run(tmp_path: Path) -> None:
    """The example clip plugin (examples/camsight-example-clips, pip-installed like a third
    party) on five shots of the sample videos: within a shot the mean grey change between
    frames stays under 20 (bikes' fast riders), at a cut it is over 50; the threshold is 40."""
    from test_trustworthy_events import camsight_run

    site = install_example("camsight-example-clips", tmp_path / "plugin")
    shots = [("bikes.mp4", 0), ("bigbuckbunny.mp4", 0), ("carphone_pristine.mp4", 0), ("bikes.mp4", 100)]
    video = montage(tmp_path / "montage.mp4", [*shots, ("bigbuckbunny.mp4", 60)])
    config = {
        "services": {"detector": {"analyzers": {"scene_change": {}}}},
        "cameras": [
            {
                "id": "montage",
                "source": str(video),
                "analyzers": ["scene_change"],
                "rules": [{"id": "cuts", "type": "action", "labels": ["cut"], "hysteresis_frames": 1}],
            }
        ],
    }
    events = camsight_run(tmp_path, video, config, [site])
    cuts = [e for e in events if e["type"] == "EVENT_TYPE_ACTION"]
    started = [e for e in cuts if e["state"] == "EVENT_STATE_STARTED"]
    # Each cut lands on the first frame of the new shot (the window that ends there).
    assert [e["start_media_time"] for e in started] == ["2s", "4s", "6s", "8s"], json.dumps(cuts)[:2000]
    assert all(e["label"] == "cut" and e["analyzer"] == "scene_change" for e in started)
    ended = [e for e in cuts if e["state"] == "EVENT_STATE_ENDED"]
    assert [e["end_media_time"] for e in ended] == ["2s", "4s", "6s", "8s"]  # one window each
