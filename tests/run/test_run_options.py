"""``camsight run`` options: ``--annotate DIR`` (videos, bad folders, live sources), refused ``--enroll``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from camsight.cameras import CameraConfig
from camsight.cli.run import annotator
from camsight.run.annotate import video_file
from helpers import sample_video

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.slow
def test_annotate_writes_every_file_source_and_reruns_show_only_their_own(
    cli: Cli, tmp_path: Path, annotated: Callable[[Path, Path], None]
) -> None:
    """Three runs on one data folder: carphone at 5 fps (a camera of the config file),
    the same again, then carphone_distorted (not in the config file).

    Each run finds the earlier ones' cameras, events and results in the data
    folder: it must play, print, count and draw only its own.
    """
    source, other = sample_video("carphone_pristine.mp4"), sample_video("carphone_distorted.mp4")
    config = tmp_path / "camsight.yaml"
    config.write_text(f"cameras:\n  - id: car\n    source: {source}\n    fps: 5\n")
    runs = []
    for videos, video, camera in (
        ("first", source, "car"),
        ("second", source, "car"),
        ("third", other, "carphone_distorted"),
    ):
        proc = cli(
            "run", str(video), "--config", str(config), "--annotate", videos, "--data-dir", "data", "--json"
        )
        assert proc.returncode == 0, proc.stderr  # all of it: ffmpeg writes there too
        annotated(tmp_path / videos / f"{camera}.mp4", video)
        assert f"annotated video: {videos}/{camera}.mp4" in proc.stderr  # stdout holds only events
        runs.append([json.loads(line) for line in proc.stdout.splitlines()])
        assert {e["camera_id"] for e in runs[-1]} == {camera}, "an earlier run's camera played again"
    first, second, _ = ({event["id"] for event in run} for run in runs)
    assert first and second
    assert not first & second, "the second run printed the first one's events"
    for run in runs:
        ended = [
            e for e in run if e["type"] == "EVENT_TYPE_CAMERA_STATUS" and e["attributes"]["state"] == "ended"
        ]
        assert len(ended) == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "a-file").write_text("x") and d / "a-file", "not a folder"),
        (lambda d: (d / "a-file").write_text("x") and d / "a-file" / "videos", "cannot write there"),
    ],
)
def test_bad_annotate_folder_fails_before_the_run(cli: Cli, tmp_path: Path, make, message: str) -> None:
    target = make(tmp_path)
    proc = cli(
        "run", str(sample_video("carphone_pristine.mp4")), "--annotate", str(target), "--data-dir", "data"
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"camsight: --annotate {target}: {message}")
    assert not (tmp_path / "data").exists(), "the pipeline started"


def test_only_video_files_can_be_annotated(tmp_path: Path) -> None:
    bikes = sample_video("bikes.mp4")
    assert video_file(CameraConfig(id="a", source=str(bikes))) == bikes
    assert video_file(CameraConfig(id="b", source=f"file://{bikes}")) == bikes
    for live in ("rtsp://user:secret@10.0.0.5/stream", "https://cam.example/live.m3u8", "0", "/dev/video0"):
        assert video_file(CameraConfig(id="c", source=live)) is None
    assert video_file(CameraConfig(id="d", source=str(tmp_path))) is None  # an image folder


def test_live_sources_are_named_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cameras = [
        CameraConfig(id="door", source="rtsp://user:secret@10.0.0.5/stream"),
        CameraConfig(id="street", source=str(sample_video("bikes.mp4"))),
    ]
    annotator(cameras, tmp_path, [])
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "door is not annotated" in lines[0]
    assert "network" in lines[0]
    assert "secret" not in lines[0]


def test_refused_enrollment_fails_in_one_line(cli: Cli, tmp_path: Path) -> None:
    """The face service refuses a picture with no face: exit 2 naming it, before any frame is read."""
    blank = tmp_path / "blank.jpg"
    assert cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    proc = cli(
        "run", str(sample_video("carphone_pristine.mp4")), "--enroll", f"bob={blank}", "--data-dir", "data"
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "camsight: --enroll bob: enrolling 'bob' was refused: no face found in the image" in proc.stderr
