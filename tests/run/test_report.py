"""The HTML report: written from real JPEG snapshots of the sample videos, rendered in headless Chromium.

Chromium is Debian's ``chromium`` package (``apt-get install chromium``; the
``chromium`` fixture skips without it, or fails with CAMSIGHT_REQUIRE_BROWSER=1); the
screenshot proves the page renders the timeline marks and a snapshot, not
just that the HTML contains them.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from camsight.behavior.snapshots import render
from camsight.run.report import TIMELINE_ROW_FILLS, TYPE_COLOURS, nice_step, snapshot_file, write_report
from camsight.v1 import analysis_pb2, event_pb2, frame_pb2
from helpers import sample_video
from privacy_support import CARPHONE_FACE, assert_blurred, carphone_frame

START_NS = 1_764_201_600_000_000_000
SUMMARY = {
    "seconds": 12.5,
    "frames_decoded": 370,
    "frames_dropped": 0,
    "fps": 29.6,
    "events_by_type": {"line_cross": 2, "face_recognized": 1},
    "analyzer_frames": {"hog": {"analyzed": 250, "dropped": 0}, "centerface": {"analyzed": 120}},
    "errors": {},
}
SCREEN = (1280, 2000)


def jpeg_of(video: str, index: int) -> bytes:
    cap = cv2.VideoCapture(str(sample_video(video)))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    assert ok
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def event(
    event_id: str, kind: int, camera: str, at_s: float, until_s: float | None = None, **fields: object
) -> event_pb2.Event:
    msg = event_pb2.Event(
        id=event_id, type=kind, camera_id=camera, state=event_pb2.EVENT_STATE_ENDED, **fields
    )
    msg.start_time.FromNanoseconds(START_NS + round(at_s * 1e9))
    if until_s is not None:
        msg.end_time.FromNanoseconds(START_NS + round(until_s * 1e9))
    return msg


def sample_events() -> list[event_pb2.Event]:
    return [
        event(
            "bikes-person-1",
            event_pb2.EVENT_TYPE_OBJECT_DETECTED,
            "bikes",
            0.4,
            6.0,
            label="person",
            track_id=1,
            snapshot_id="bikes-person-1-3",
            confidence=0.81,
        ),
        event(
            "bikes-cross-1",
            event_pb2.EVENT_TYPE_LINE_CROSS,
            "bikes",
            2.2,
            2.2,
            label="person",
            track_id=1,
            line_id="middle",
            direction=analysis_pb2.CROSSING_DIRECTION_IN,
            attributes={"in_count": "1", "out_count": "0"},
        ),
        event(
            "bikes-cross-2",
            event_pb2.EVENT_TYPE_LINE_CROSS,
            "bikes",
            7.5,
            7.5,
            label="person",
            line_id="middle",
        ),
        event(
            "bikes-kerb-1", event_pb2.EVENT_TYPE_ZONE_ENTER, "bikes", 3.0, 5.0, label="person", zone_id="kerb"
        ),
        event(
            "carphone-driver-1",
            event_pb2.EVENT_TYPE_FACE_RECOGNIZED,
            "carphone",
            1.0,
            3.9,
            label="face",
            identity_id="driver",
            identity_name="driver",
            snapshot_id="carphone-driver-1-5",
            explanation=event_pb2.EventExplanation(summary="face <b>matched</b> driver & co"),
        ),
    ]


def snapshots() -> dict[str, bytes]:
    return {
        "bikes-person-1-3": jpeg_of("bikes.mp4", 75),
        "carphone-driver-1-5": jpeg_of("carphone_pristine.mp4", 5),
    }


def screenshot(chromium: str, page: Path, tmp_path: Path) -> np.ndarray:
    png = tmp_path / "page.png"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--mute-audio",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--screenshot={png}",
        f"--window-size={SCREEN[0]},{SCREEN[1]}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert png.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert image is not None, "the screenshot is not a readable PNG"
    return image


def bgr(hex_colour: str) -> np.ndarray:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return np.array([b, g, r], dtype=np.int16)


def near(image: np.ndarray, hex_colour: str, tolerance: int = 12) -> np.ndarray:
    """Mask of the pixels within ``tolerance`` of a colour on every channel."""
    return np.all(np.abs(image.astype(np.int16) - bgr(hex_colour)) <= tolerance, axis=2)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    out = tmp_path / "report"
    out.mkdir()
    shutil.copy(sample_video("bikes.mp4"), out / "bikes.mp4")
    return write_report(out, sample_events(), snapshots(), [out / "bikes.mp4"], SUMMARY)


def test_report_renders_timeline_and_snapshots_in_chromium(
    report: Path, tmp_path: Path, chromium: str
) -> None:
    image = screenshot(chromium, report, tmp_path)
    assert image.shape[:2] == (SCREEN[1], SCREEN[0])
    assert image.std() > 20, "the page rendered blank"

    # The timeline: the screen rows whose width is mostly a timeline row background.
    rows = np.flatnonzero(
        np.any([near(image, fill, 2).mean(axis=1) > 0.5 for fill in TIMELINE_ROW_FILLS], axis=0)
    )
    assert rows.size, "no timeline rows in the screenshot"
    band = image[rows.min() : rows.max() + 1]
    for kind in ("object_detected", "line_cross", "zone_enter", "face_recognized"):
        assert near(band, TYPE_COLOURS[kind]).sum() > 40, f"no {kind} mark on the timeline"

    # A snapshot: the bikes frame, scaled to the gallery's 240 px width, is found in the page.
    frame = cv2.imdecode(np.frombuffer(snapshots()["bikes-person-1-3"], np.uint8), cv2.IMREAD_COLOR)
    scaled = cv2.resize(
        frame, (240, round(frame.shape[0] * 240 / frame.shape[1])), interpolation=cv2.INTER_AREA
    )
    score = cv2.matchTemplate(image, scaled, cv2.TM_CCOEFF_NORMED).max()
    assert score > 0.8, f"the bikes snapshot is not rendered in the gallery (best match {score:.2f})"


def test_report_files_and_escaping(report: Path) -> None:
    out = report.parent
    page = report.read_text(encoding="utf-8")
    for snapshot_id, data in snapshots().items():
        assert (out / "snapshots" / snapshot_file(snapshot_id)).read_bytes() == data
    # Everything the page refers to is a file inside the report folder; nothing comes from the network.
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and all((out / html.unescape(ref)).is_file() for ref in refs), refs
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<script" not in page
    assert "face &lt;b&gt;matched&lt;/b&gt; driver &amp; co" in page
    assert "<b>matched</b>" not in page
    assert '<video controls muted preload="metadata" src="bikes.mp4">' in page
    for text in ("Frames decoded", "370", "Throughput (frames/s)", "29.6", "line middle (in)"):
        assert text in page


def test_unsafe_snapshot_ids_get_hashed_names() -> None:
    assert snapshot_file("bikes-person-1-3") == "bikes-person-1-3.jpg"
    for bad in ("../escape", "a/b", ".hidden", ""):
        name = snapshot_file(bad)
        assert re.fullmatch(r"[0-9a-f]{24}\.jpg", name), name


def test_videos_outside_the_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not inside the report folder"):
        write_report(tmp_path / "report", [], {}, [sample_video("bikes.mp4")], {})


def test_empty_report_still_renders(tmp_path: Path) -> None:
    page = write_report(tmp_path / "empty", [], {}, [], {"frames_decoded": 0}).read_text(encoding="utf-8")
    assert "No events." in page and "No snapshots." in page


@pytest.mark.parametrize(("span", "step"), [(1.0, 0.1), (9.96, 1.0), (45.0, 5.0), (600.0, 100.0)])
def test_axis_steps_are_round(span: float, step: float) -> None:
    assert nice_step(span) == pytest.approx(step)


def test_the_snapshot_of_a_face_to_blur_is_blurred_in_the_report(tmp_path: Path) -> None:
    """The report shows the stored snapshots: the behavior service's rendering of carphone's face,
    flagged PRIVACY_BLUR, reaches the page's folder blurred."""
    original = carphone_frame()
    ok, data = cv2.imencode(".jpg", original, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    frame = frame_pb2.Frame(
        camera_id="carphone", seq=5, width=176, height=144, encoding=frame_pb2.IMAGE_ENCODING_JPEG
    )
    frame.data = data.tobytes()
    x1, y1, x2, y2 = CARPHONE_FACE
    face = analysis_pb2.Detection(
        label="face",
        score=0.9,
        box=analysis_pb2.BoundingBox(x1=x1, y1=y1, x2=x2, y2=y2),
        privacy=analysis_pb2.PRIVACY_BLUR,
    )
    snapshot = render(frame, face)
    assert snapshot is not None
    stranger = event(
        "carphone-stranger-1",
        event_pb2.EVENT_TYPE_UNKNOWN_FACE,
        "carphone",
        0.2,
        3.9,
        label="face",
        snapshot_id="carphone-stranger-1-5",
        explanation=event_pb2.EventExplanation(detections=[face]),
    )
    write_report(tmp_path, [stranger], {stranger.snapshot_id: snapshot}, [], SUMMARY)
    shown = cv2.imread(str(tmp_path / "snapshots" / snapshot_file(stranger.snapshot_id)))
    assert shown is not None
    assert_blurred(shown, original, CARPHONE_FACE)


def test_an_event_s_explanation_is_shown_right_after_its_snapshot(tmp_path: Path) -> None:
    """An explanation is not a snapshot of its own: it follows the snapshot it explains."""
    face = event(
        "carphone-stranger-2",
        event_pb2.EVENT_TYPE_UNKNOWN_FACE,
        "carphone",
        0.2,
        3.9,
        label="face",
        analyzer="centerface",
        snapshot_id="carphone-stranger-2-5",
        explain_snapshot_id="carphone-stranger-2-5-explain",
    )
    pictures = {"carphone-stranger-2-5": b"snapshot", "carphone-stranger-2-5-explain": b"overlay"}
    page = write_report(tmp_path, [face], pictures, [], SUMMARY).read_text()
    sources = re.findall(r'<img src="snapshots/([^"]+)"', page)
    assert sources == ["carphone-stranger-2-5.jpg", "carphone-stranger-2-5-explain.jpg"]
    assert "where centerface looked" in page
    assert (tmp_path / "snapshots" / "carphone-stranger-2-5-explain.jpg").read_bytes() == b"overlay"
