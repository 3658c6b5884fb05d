"""``camsight demo`` as a user runs it: embedded NATS, every service, the sample videos, real models.

One run (about 45 s on two cores) is checked for everything the demo
promises: the report, the annotated videos and a data folder that
``camsight events`` reads afterwards with no server. The number of events is
not checked (it depends on the behavior service's rules), only that the
configured kinds of event happened. That run is offline with an empty torch
cache, so it also checks the fallback to HOG + motion and the line saying so.

A second run has the COCO detector's weights in its cache (random weights
under torchvision's file name: plumbing, not accuracy) and the network
blocked: it must run that detector on every frame and fetch nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from camsight.behavior.settings import BehaviorSettings
from camsight.run.demo import DRIVER, demo_cameras
from camsight.run.detector import COCO_MODEL, PULL_COMMAND
from camsight.run.weights import default_weights
from torch_cache import seed

pytestmark = pytest.mark.slow
Cli = Callable[..., subprocess.CompletedProcess[str]]
DEMO_FRAMES = 250 + 120  # bikes.mp4 and carphone_pristine.mp4


@pytest.mark.timeout(600)
def test_demo_writes_report_videos_and_a_queryable_data_folder(
    cli: Cli,
    offline_cli: Cli,
    tmp_path: Path,
    annotated: Callable[[Path, Path], None],
) -> None:
    out = tmp_path / "demo"
    proc = offline_cli("demo", "--out", str(out), timeout=540)
    assert proc.returncode == 0, proc.stderr  # all of it: ffmpeg writes there too
    assert "Traceback" not in proc.stderr
    assert f"report: {(out / 'index.html').resolve()}" in proc.stdout
    # Offline with an empty cache: HOG + motion, said once, with the command that gets the detector.
    assert proc.stdout.count("COCO detector not used") == 1
    fallback = next(line for line in proc.stdout.splitlines() if "COCO detector not used" in line)
    assert fallback.endswith(f"get them with: {PULL_COMMAND}")
    assert re.search(r"analyzer hog\W+analyzed", proc.stdout)

    cameras = demo_cameras()
    report = (out / "index.html").read_text(encoding="utf-8")
    rule_types = {rule.type.value for camera in cameras for rule in camera.rules if rule.line or rule.zone}
    assert rule_types == {"line_cross", "zone_enter"}
    # HOG's people enter the kerb; its few short tracks cross no line (motion no longer counts).
    for needle in ("face_recognized", DRIVER[1], "zone_enter"):
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
    assert {"OBJECT_DETECTED", "ZONE_ENTER", "FACE_RECOGNIZED"} <= kinds, kinds
    # On a moving camera, motion is the camera's own: no rule of the demo counts it.
    labels = cli("events", "count", "--data-dir", data, "--group-by", "label", "--json")
    assert labels.returncode == 0, labels.stderr
    assert "motion" not in {json.loads(line).get("key") for line in labels.stdout.splitlines()}


@pytest.mark.timeout(600)
def test_demo_runs_its_coco_detector_from_the_cache_with_the_network_blocked(
    offline_cli: Cli, tmp_path: Path
) -> None:
    with pytest.MonkeyPatch.context() as env:  # seed the child's cache, tmp_path/torch
        env.setenv("TORCH_HOME", str(tmp_path / "torch"))
        seed(default_weights(COCO_MODEL), COCO_MODEL, weights_backbone=None)
    out = tmp_path / "demo"
    proc = offline_cli("demo", "--out", str(out), timeout=540)
    assert proc.returncode == 0, proc.stderr
    assert "COCO detector not used" not in proc.stdout
    assert re.search(rf"analyzer torchvision_detector\W+analyzed {DEMO_FRAMES}\b", proc.stdout), proc.stdout
    assert "analyzer hog" not in proc.stdout and "analyzer motion" not in proc.stdout
    assert COCO_MODEL in (out / "index.html").read_text(encoding="utf-8")
    assert not (tmp_path / "network.log").exists(), (tmp_path / "network.log").read_text()


def seconds(duration: str) -> float:
    """A protobuf Duration in JSON ("1.500s") as seconds."""
    return float(duration.removesuffix("s"))
