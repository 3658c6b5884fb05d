"""Clip analyzers' labels become events: the ``action`` rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from behavior_scenes import FPS, camera, of_type, result, run, seq_of
from camsight.v1 import analysis_pb2, event_pb2

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


@pytest.mark.slow
def test_cuts_in_a_montage_are_action_events_through_camsight_run(tmp_path: Path) -> None:
    import cv2
    from test_trustworthy_events import camsight_run

    # Five shots of 2 s (20 frames at 10 fps), each its own brightness and texture: cuts
    # at 2, 4, 6 and 8 s.
    rng = np.random.default_rng(3)
    video = tmp_path / "montage.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 10, (160, 120))
    for level in (30, 200, 60, 230, 90):
        base = (level + rng.integers(-20, 20, (120, 160, 3))).clip(0, 255).astype(np.uint8)
        for _ in range(20):
            writer.write(base)
    writer.release()
    config = {
        "services": {
            "detector": {"plugin_modules": ["behavior.truth_plugin"], "analyzers": {"scene_cut": {}}},
        },
        "cameras": [
            {
                "id": "montage",
                "source": str(video),
                "analyzers": ["scene_cut"],
                "rules": [{"id": "cuts", "type": "action", "labels": ["cut"]}],
            }
        ],
    }
    events = camsight_run(tmp_path, video, config)
    started = [e for e in events if e["type"] == "EVENT_TYPE_ACTION" and e["state"] == "EVENT_STATE_STARTED"]
    assert [e["start_media_time"] for e in started] == ["2s", "4s", "6s", "8s"], json.dumps(started)[:2000]
    assert all(e["label"] == "cut" and e["analyzer"] == "scene_cut" for e in started)
