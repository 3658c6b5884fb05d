"""``camsight run`` options: ``--annotate DIR`` (videos, bad folders, live sources), ``--report DIR``,
refused ``--enroll``."""

from __future__ import annotations

import html
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from camsight.cameras import CameraConfig
from camsight.cli.common import plain_console
from camsight.cli.run import annotator, print_summary
from camsight.run import PipelineSummary
from camsight.run.annotate import video_file
from camsight.run.report import snapshot_file
from camsight.v1 import camera_pb2
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


@pytest.mark.slow
def test_report_of_a_run_with_its_events_snapshots_and_video(
    cli: Cli, tmp_path: Path, annotated: Callable[[Path, Path], None]
) -> None:
    """``--report out --annotate out``: the demo's page for this run, written from what the run
    printed: every event, each snapshot as a file, the annotated video it plays."""
    source = sample_video("carphone_pristine.mp4")
    config = tmp_path / "camsight.yaml"
    config.write_text(
        f"cameras:\n  - id: car\n    source: {source}\n    fps: 5\n"
        "    rules: [{id: stranger, type: unknown_face}]\n"  # its events carry a snapshot
    )
    proc = cli("run", "--config", str(config), "--annotate", "out", "--report", "out", "--json")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    assert f"report: {(out / 'index.html').resolve()} (open it in a browser)" in proc.stderr
    events = {e["id"]: e for e in map(json.loads, proc.stdout.splitlines())}  # the latest revision wins
    page = (out / "index.html").read_text(encoding="utf-8")
    assert f"{len(events)} events on 1 camera(s): car" in page
    for event in events.values():
        assert html.escape(event["explanation"]["summary"]) in page
    snapshots = {e["snapshot_id"] for e in events.values() if e.get("snapshot_id")}
    assert snapshots, "no event of the run has a snapshot"
    written = {p.name for p in (out / "snapshots").iterdir()}
    assert written == {snapshot_file(s) for s in snapshots}
    for name in written:
        assert (out / "snapshots" / name).read_bytes()[:2] == b"\xff\xd8"  # JPEG
        assert f'src="snapshots/{name}"' in page
    assert 'src="car.mp4"' in page
    annotated(out / "car.mp4", source)


@pytest.mark.parametrize("option", ["--annotate", "--report"])
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "a-file").write_text("x") and d / "a-file", "not a folder"),
        (lambda d: (d / "a-file").write_text("x") and d / "a-file" / "videos", "cannot write there"),
    ],
)
def test_bad_output_folder_fails_before_the_run(
    cli: Cli, tmp_path: Path, option: str, make, message: str
) -> None:
    target = make(tmp_path)
    proc = cli("run", str(sample_video("carphone_pristine.mp4")), option, str(target), "--data-dir", "data")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"camsight: {option} {target}: {message}")
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


def test_the_summary_prints_commands_and_errors_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    # rich's markup would print "pip install 'camsight'" for 'camsight[torch]', and fail on
    # "[/x]" with a MarkupError: what the CLI prints is data.
    summary = PipelineSummary(detector="hog", detector_fallback="get it: pip install 'camsight[torch]'")
    failed = camera_pb2.CameraStatus(state=camera_pb2.CAMERA_STATE_ERROR, last_error="cannot open [/x] [b]")
    summary.cameras["cam"] = failed
    print_summary(summary, plain_console(), [CameraConfig(id="cam", source="/v/[b].mp4")])
    out = capsys.readouterr().out
    assert "cannot open [/x] [b]" in out
    assert "COCO detector not used: get it: pip install 'camsight[torch]'" in out
