"""``camsight demo`` as a user runs it: embedded NATS, every service, the sample videos, real models.

One run (about 45 s on two cores) is checked for everything the demo
promises: the report, the annotated videos and a data folder that
``camsight events`` reads afterwards with no server. The number of events is
not checked (it depends on the behavior service's rules), only that the
configured kinds of event happened.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from camsight.behavior.settings import BehaviorSettings
from camsight.run.demo import DRIVER, demo_cameras

pytestmark = pytest.mark.slow
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.timeout(600)
def test_demo_writes_report_videos_and_a_queryable_data_folder(
    cli: Cli,
    tmp_path: Path,
    annotated: Callable[[Path, Path], None],
) -> None:
    out = tmp_path / "demo"
    proc = cli("demo", "--out", str(out), timeout=540)
    assert proc.returncode == 0, proc.stderr  # all of it: ffmpeg writes there too
    assert "Traceback" not in proc.stderr
    assert f"report: {(out / 'index.html').resolve()}" in proc.stdout

    cameras = demo_cameras()
    report = (out / "index.html").read_text(encoding="utf-8")
    rule_types = {rule.type.value for camera in cameras for rule in camera.rules if rule.line or rule.zone}
    assert rule_types == {"line_cross", "zone_enter"}
    for needle in ("face_recognized", DRIVER[1], *rule_types):
        assert needle in report, f"the report does not mention {needle}"
    assert list((out / "snapshots").glob("*.jpg")), "no snapshot was written"

    for camera in cameras:
        annotated(out / f"{camera.id}.mp4", Path(camera.source))
        assert f'src="{camera.id}.mp4"' in report

    data = str(out / "data")
    faces = cli("events", "list", "--data-dir", data, "--filter", "type = FACE_RECOGNIZED", "--json")
    assert faces.returncode == 0, faces.stderr
    assert {json.loads(line)["identity_name"] for line in faces.stdout.splitlines()} == {DRIVER[1]}
    # No object event from a track that lived less than the confirmation rule (0.1 s HOG
    # ghosts on bikes became events before issue 18).
    objects = cli(
        "events", "list", "--data-dir", data, "--filter", "type = OBJECT_DETECTED", "--json", "-n", "0"
    )
    assert objects.returncode == 0, objects.stderr
    confirm_s = BehaviorSettings().min_track_age_s
    for event in map(json.loads, objects.stdout.splitlines()):
        if event.get("end_media_time"):
            lived = seconds(event["end_media_time"]) - seconds(event.get("start_media_time", "0s"))
            assert lived >= confirm_s, f"{event['id']}: an object event for a track of {lived:.2f} s"
    counts = cli("events", "count", "--data-dir", data, "--group-by", "type", "--json")
    assert counts.returncode == 0, counts.stderr
    kinds = {json.loads(line)["key"] for line in counts.stdout.splitlines()}
    assert {"LINE_CROSS", "ZONE_ENTER", "FACE_RECOGNIZED"} <= kinds, kinds


def seconds(duration: str) -> float:
    """A protobuf Duration in JSON ("1.500s") as seconds."""
    return float(duration.removesuffix("s"))
