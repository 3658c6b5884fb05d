"""``camsight run`` end to end: embedded NATS, every service, real footage and models."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from helpers import sample_video

pytestmark = pytest.mark.slow


Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def driver_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frame 64 of carphone_distorted, the enrollment photo of the demo (decision 0033)."""
    cap = cv2.VideoCapture(str(sample_video("carphone_distorted.mp4")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 64)
    ok, image = cap.read()
    cap.release()
    assert ok
    path = tmp_path_factory.mktemp("faces") / "driver.jpg"
    cv2.imwrite(str(path), image)
    return path


def run_json(cli: Cli, tmp: Path, driver: Path, name: str) -> list[dict]:
    proc = cli(
        "run",
        str(sample_video("carphone_pristine.mp4")),
        "--json",
        "--enroll",
        f"driver={driver}",
        "--data-dir",
        str(tmp / name),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines, "no events on stdout"
    return [json.loads(line) for line in lines]  # nothing but JSON objects on stdout


def test_recognises_the_enrolled_driver_and_repeats_exactly(
    cli: Cli, tmp_path: Path, driver_jpeg: Path
) -> None:
    first = run_json(cli, tmp_path, driver_jpeg, "one")
    faces = [e for e in first if e["type"] == "EVENT_TYPE_FACE_RECOGNIZED"]
    assert faces, [e["type"] for e in first]
    assert {e["identity_name"] for e in faces} == {"driver"}
    assert faces[0]["camera_id"] == "carphone_pristine"
    assert faces[0]["snapshot_id"]
    states = [e["attributes"]["state"] for e in first if e["type"] == "EVENT_TYPE_CAMERA_STATUS"]
    assert states[-1] == "ended"
    # One face, one track for the whole clip, whatever the detector's dropouts.
    found = [e for e in first if e["type"] != "EVENT_TYPE_CAMERA_STATUS"]
    tracks = {(e.get("analyzer"), e.get("track_id")) for e in found}
    assert tracks == {("centerface", "1")}, tracks

    def analysed(events: list[dict]) -> list[tuple]:
        # A file's event ids derive from media positions: they repeat exactly, and so
        # does what was found. (Wall-clock times are the read time here: carphone has
        # no creation_time tag.)
        return sorted(
            (
                e["id"],
                e["start_media_time"],
                e["type"],
                e["state"],
                e.get("track_id", "0"),
                e.get("identity_id", ""),
                e.get("label", ""),
                e.get("rule_id", ""),
                round(e.get("confidence", 0.0), 4),
            )
            for e in events
            if e["type"] != "EVENT_TYPE_CAMERA_STATUS"
        )

    second = run_json(cli, tmp_path, driver_jpeg, "two")
    assert analysed(first) == analysed(second)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.mp4", "no such file"),
        (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", "empty"),
    ],
)
def test_bad_sources_fail_in_one_line(cli: Cli, tmp_path: Path, make, message: str) -> None:
    source = make(tmp_path)
    proc = cli("run", str(source), "--data-dir", str(tmp_path / "data"))
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unreadable_video_is_reported_without_traceback(cli: Cli, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01not a video at all" * 1000)
    proc = cli("run", str(garbage), "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "garbage" in proc.stderr.strip().splitlines()[-1]


def test_bad_config_exits_2(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("cameras:\n  - id: 'no spaces allowed'\n    source: x.mp4\n")
    video = sample_video("carphone_pristine.mp4")
    proc = cli("run", str(video), "--config", str(config))
    assert proc.returncode == 2
    assert "cameras.0.id" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_mistake_in_an_analyzer_s_settings_is_one_line_before_anything_starts(
    cli: Cli, tmp_path: Path
) -> None:
    """It came 2-4 s late, under the progress bar ("0.0% starting") of a run already started."""
    config = tmp_path / "typo.yaml"
    config.write_text("services:\n  detector:\n    analyzers:\n      motion: {min_aera: 0.01}\n")
    data = tmp_path / "data"
    proc = cli(
        "run", str(sample_video("carphone_pristine.mp4")), "--config", str(config), "--data-dir", str(data)
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "camsight: services.detector.analyzers: invalid config for analyzer 'motion': "
        "min_aera: Extra inputs are not permitted"
    ]
    assert not (data / "nats").exists(), "nats-server was started"
