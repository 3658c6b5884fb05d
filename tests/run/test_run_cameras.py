"""Which cameras ``camsight run`` runs: a source matches a configured camera by its
resolved path, ``--config`` alone runs every configured camera, a configured camera
left out is named; a file is analysed whole however slow the analyzer is; an analyzer
that fails to load stops the run at once, leaving nothing behind; one that fails on
every frame fails the run, its error logged once; a truncated file fails it too."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from camsight.cameras import CameraConfig
from camsight.run import not_run, source_cameras
from camsight.run.pipeline import DEFAULT_RULES
from decoder.decoder_support import TRUNCATED, truncated_video
from helpers import leftovers, sample_video

TESTS = Path(__file__).parent.parent


def camsight_run(tmp_path: Path, config: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    """``camsight run ARGS --config c.yaml --json`` with the test plugins importable and
    the embedded nats-server's folder under ``tmp_path/tmp``."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "camsight", "run", *args, "--config", "c.yaml", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "TMPDIR": str(tmp_path / "tmp"),
        },
    )


def configured(tmp_path: Path) -> list[CameraConfig]:
    clip = tmp_path / "scene" / "x.mp4"
    clip.parent.mkdir()
    clip.write_bytes(b"not read here")
    return [
        CameraConfig(id="door", source=str(clip), fps=5),
        CameraConfig(id="yard", source="rtsp://cam.example/stream"),
    ]


@pytest.mark.parametrize("spelling", ["scene/x.mp4", "./scene/../scene/x.mp4", "ABS", "file://ABS"])
def test_a_source_matches_its_configured_camera_by_resolved_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    monkeypatch.chdir(tmp_path)
    base = configured(tmp_path)
    source = spelling.replace("ABS", str(tmp_path / "scene" / "x.mp4"))
    (camera,) = source_cameras([source], realtime=False, base=base)
    assert camera.id == "door" and camera.fps == 5
    assert [c.id for c in not_run(base, [camera])] == ["yard"]


def test_config_alone_runs_every_configured_camera(tmp_path: Path) -> None:
    base = configured(tmp_path)
    assert [c.id for c in source_cameras([], realtime=False, base=base)] == ["door", "yard"]
    assert not_run(base, base) == []


def test_an_unconfigured_source_is_a_new_camera_and_duplicates_run_once(tmp_path: Path) -> None:
    base = configured(tmp_path)
    door = str(tmp_path / "scene" / "x.mp4")
    cameras = source_cameras([door, "other/x.mp4", door], realtime=True, base=base)
    assert [c.id for c in cameras] == ["door", "x"]
    assert cameras[1].rules == DEFAULT_RULES
    assert all(c.pacing.value == "realtime" for c in cameras)


@pytest.mark.slow
def test_a_file_runs_its_configured_camera_and_is_analysed_whole_by_a_slow_analyzer(
    tmp_path: Path,
) -> None:
    """The config names the file by its absolute path, the command line by a relative
    one: the configured camera runs (its rules listed in the summary), the other
    configured camera is named as not run, and a detector far slower than
    ``max_frame_age_s`` still analyses every frame of the file."""
    shutil.copy(sample_video("carphone_pristine.mp4"), tmp_path / "clip.mp4")
    config = {
        "services": {
            "detector": {
                "plugin_modules": ["run.slow_plugin"],
                "analyzers": {"slow": {"cost_s": 0.02}},
                "max_frame_age_s": 0.05,  # a frame waits far longer than this for a slow analyzer
                "batch": 1,
            }
        },
        "cameras": [
            {
                "id": "car",
                "source": str(tmp_path / "clip.mp4"),
                "analyzers": ["slow"],
                "rules": [{"id": "people", "type": "object_detected", "labels": ["person"]}],
            },
            {"id": "yard", "source": "rtsp://cam.example/stream"},
        ],
    }
    done = camsight_run(tmp_path, config, "clip.mp4")
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert {e["camera_id"] for e in events} == {"car"}
    assert "camera yard (rtsp://cam.example/stream) is configured but not run" in done.stderr
    assert re.search(r"rules car\s*│\s*people \(object_detected\)", done.stderr), done.stderr
    decoded = int(re.search(r"frames decoded\s*│\s*(\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    slow = re.search(r"analyzer slow\s*│\s*([^│]+)│", done.stderr)
    assert slow and decoded > 50, done.stderr
    assert slow.group(1).strip() == f"analyzed {decoded}", "a frame of the file was not analysed"


@pytest.mark.slow
def test_a_truncated_file_is_a_camera_error_in_the_summary_and_the_exit_status(tmp_path: Path) -> None:
    # Readable up to the cut, it used to finish as "ended", 100 %, exit 0, 140 of 250 frames.
    truncated_video(tmp_path / "cut.mp4")
    done = camsight_run(tmp_path, {"services": {"detector": {"analyzers": {"motion": {}}}}}, "cut.mp4")
    assert done.returncode == 1, done.stderr[-3000:]
    assert re.search(r"frames decoded\s*│\s*140\s", done.stderr), done.stderr
    assert re.search(r"error: cut\s*│\s*cut\.mp4: truncated: read 5\.6 s", done.stderr), done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"camsight: cut: cut.mp4: {TRUNCATED}"
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_an_analyzer_that_fails_to_load_stops_the_run_in_one_line(tmp_path: Path) -> None:
    shutil.copy(sample_video("carphone_pristine.mp4"), tmp_path / "clip.mp4")
    config = {
        "services": {
            "detector": {"plugin_modules": ["run.slow_plugin"], "analyzers": {"broken": {}, "motion": {}}}
        }
    }
    done = camsight_run(tmp_path, config, "clip.mp4")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "camsight: detector: analyzer broken failed to load: FileNotFoundError: weights missing: "
        "/models/broken.pt"
    )
    assert not leftovers(tmp_path / "tmp"), "the embedded nats-server or its folder outlived the run"


@pytest.mark.slow
def test_an_analyzer_failing_on_every_frame_fails_the_run_and_its_error_is_logged_once(
    tmp_path: Path,
) -> None:
    """Such a run exited 0 with "failed 250" in its summary, after one error line per batch."""
    shutil.copy(sample_video("carphone_pristine.mp4"), tmp_path / "clip.mp4")
    detector = {
        "plugin_modules": ["analyzers.cli_plugin"],
        "analyzers": {"cli_misbehaves": {"mistake": "value_error"}},
        "batch": 2,
    }
    done = camsight_run(tmp_path, {"services": {"detector": detector}}, "clip.mp4")
    assert done.returncode == 1, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    failed = re.fullmatch(
        r"camsight: analyzer cli_misbehaves failed on all (\d+) frames it was given \(its error is above\)",
        lines[-1],
    )
    assert failed and int(failed.group(1)) > 10, lines[-1]
    logged = [line for line in lines if "camsight.analyzers.host: analyzer cli_misbehaves" in line]
    first = "analyzer cli_misbehaves: analyze failed: ValueError: boom at seq 25 with a second line"
    assert re.search(rf"{first} \(batch of [12]\)$", logged[0]), logged
    # Not a line per batch: the count at the end (and once a minute, should the run last that long).
    assert 2 <= len(logged) <= 3 and all(" more times in " in line for line in logged[1:]), logged
