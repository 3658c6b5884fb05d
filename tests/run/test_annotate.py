"""Annotated videos: real decoding of bikes.mp4, real H.264 encoding through imageio-ffmpeg.

Results are hand-made (no analyzer runs here): what is under test is the
matching of sampled results to source frames, the drawing and the encoding.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from camsight.behavior.geometry import side_of_segment
from camsight.cameras import CameraConfig
from camsight.overlay import detection_caption, in_arrow
from camsight.run.annotate import ResultTimeline, annotate_video, overlay_rows, place_events
from camsight.v1 import analysis_pb2, event_pb2
from helpers import sample_video
from privacy_support import CARPHONE_FACE, CARPHONE_FRAME, assert_blurred, carphone_frame

CAPTURE_EPOCH_NS = 1_764_201_600_000_000_000  # any wall-clock origin
SAMPLE_EVERY_S = 0.2  # the decoder's sampling in these tests: 5 of bikes' 25 frames per second
BOX = (0.25, 0.2, 0.45, 0.9)


def result(
    media_s: float, *detections: analysis_pb2.Detection, analyzer: str = "hog"
) -> analysis_pb2.AnalysisResult:
    msg = analysis_pb2.AnalysisResult(analyzer=analyzer, kind="objects", detections=detections)
    msg.frame.camera_id = "bikes"
    msg.frame.media_time.FromNanoseconds(round(media_s * 1e9))
    msg.frame.capture_time.FromNanoseconds(CAPTURE_EPOCH_NS + round(media_s * 1e9))
    return msg


def person(box: tuple[float, float, float, float] = BOX, track_id: int = 7) -> analysis_pb2.Detection:
    detection = analysis_pb2.Detection(label="person", score=0.9, track_id=track_id)
    detection.box.x1, detection.box.y1, detection.box.x2, detection.box.y2 = box
    return detection


def face(matched: bool) -> analysis_pb2.Detection:
    detection = analysis_pb2.Detection(label="face", score=0.8)
    detection.box.x1, detection.box.y1, detection.box.x2, detection.box.y2 = (0.6, 0.1, 0.7, 0.3)
    detection.identity.matched = matched
    detection.identity.display_name = "driver" if matched else ""
    return detection


def line_cross(media_s: float, in_count: int) -> event_pb2.Event:
    event = event_pb2.Event(
        id=f"cross-{in_count}",
        type=event_pb2.EVENT_TYPE_LINE_CROSS,
        camera_id="bikes",
        label="person",
        line_id="middle",
        attributes={"in_count": str(in_count), "out_count": "0"},
    )
    event.start_time.FromNanoseconds(CAPTURE_EPOCH_NS + round(media_s * 1e9))
    event.explanation.summary = f"person track 7 crossed line middle going in (in {in_count}, out 0)"
    return event


@pytest.fixture
def camera() -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "bikes",
            "source": str(sample_video("bikes.mp4")),
            "zones": [{"id": "kerb", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]}],
            "lines": [{"id": "middle", "a": [0.75, 0.0], "b": [0.75, 1.0]}],
        }
    )


def frame_at(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = cap.read()
    finally:
        cap.release()
    assert ok, f"{path.name} has no frame {index}"
    return image


def box_edge_diff(annotated: np.ndarray, source: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Mean absolute difference along the box's left edge (a column a few pixels high)."""
    height, width = source.shape[:2]
    x = round(box[0] * (width - 1))
    rows = slice(round(box[1] * (height - 1)) + 5, round(box[3] * (height - 1)) - 5)
    column_a = annotated[rows, x].astype(np.int16)
    column_s = source[rows, x].astype(np.int16)
    return float(np.abs(column_a - column_s).mean())


def test_annotated_video_has_every_frame_and_the_drawings(tmp_path: Path, camera: CameraConfig) -> None:
    source = sample_video("bikes.mp4")
    # Results for the sampled frames of the first four seconds (frame 0, 5, 10...).
    results = [result(i * SAMPLE_EVERY_S, person(), face(matched=i % 2 == 0)) for i in range(20)]
    out = annotate_video(source, results, camera, [line_cross(1.0, 1)], tmp_path / "bikes.mp4")

    assert out == tmp_path / "bikes.mp4"
    cap = cv2.VideoCapture(str(out))
    try:
        assert cap.isOpened(), "the annotated video does not open with OpenCV"
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        count = 0
        while cap.grab():
            count += 1
    finally:
        cap.release()
    source_cap = cv2.VideoCapture(str(source))
    expected_size = (
        int(source_cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(source_cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    expected_count = int(source_cap.get(cv2.CAP_PROP_FRAME_COUNT))
    source_cap.release()
    assert size == expected_size
    assert count == expected_count == 250

    # Frame 12 (0.48 s) sits between two sampled frames: the result of 0.4 s is drawn.
    annotated, original = frame_at(out, 12), frame_at(source, 12)
    assert box_edge_diff(annotated, original, BOX) > 40, "the box edge was not drawn"
    # A patch far from every drawing only differs by compression noise: frames are aligned.
    patch = (slice(40, 100), slice(20, 120))
    assert np.abs(annotated[patch].astype(np.int16) - original[patch].astype(np.int16)).mean() < 12
    # Long after the last result (4 s) the box is gone rather than lingering.
    late, late_source = frame_at(out, 200), frame_at(source, 200)
    assert box_edge_diff(late, late_source, BOX) < 15, "a stale box was drawn"


def test_results_are_drawn_while_fresh_per_analyzer() -> None:
    period = 1 / 25
    timeline = ResultTimeline(
        [
            result(0.0, person()),
            result(0.2, person()),
            result(0.2, face(matched=True), analyzer="centerface"),
            result(1.0, person()),
        ],
        "bikes",
        period,
    )
    assert [r.analyzer for r in timeline.at(0.0)] == ["hog"]
    assert {(r.analyzer, r.frame.media_time.ToNanoseconds()) for r in timeline.at(0.28)} == {
        ("hog", 200_000_000),
        ("centerface", 200_000_000),
    }
    assert timeline.at(0.6) == [], "results older than one sampled-frame interval are stale"
    # A frame whose timestamp rounds a hair below the result's still gets it.
    assert [r.frame.media_time.ToNanoseconds() for r in timeline.at(1.0 - period / 4)] == [1_000_000_000]


def test_other_cameras_and_skipped_results_are_ignored() -> None:
    other = result(0.0, person())
    other.frame.camera_id = "carphone"
    skipped = result(0.0)
    skipped.skipped, skipped.skip_reason = True, "too old"
    assert ResultTimeline([other, skipped], "bikes", 0.04).at(0.0) == []


def test_events_are_placed_by_capture_time_and_counted(camera: CameraConfig) -> None:
    results = [result(i * SAMPLE_EVERY_S) for i in range(10)]
    status = event_pb2.Event(id="status", type=event_pb2.EVENT_TYPE_CAMERA_STATUS, camera_id="bikes")
    status.start_time.FromNanoseconds(CAPTURE_EPOCH_NS + 450_000_000)
    status.explanation.summary = "camera bikes is online"
    events = [line_cross(0.4, 1), line_cross(1.3, 2)]
    placed = place_events([*events, status], results)
    assert [round(p.media_time, 3) for p in placed] == [0.4, 0.45, 1.3]

    assert overlay_rows(camera, placed, 0.2) == ["middle: in 0 out 0"]
    # The camera's status change is not a scene event: not in the overlay.
    assert overlay_rows(camera, placed, 0.5) == ["middle: in 1 out 0", events[0].explanation.summary]
    assert overlay_rows(camera, placed, 1.5)[0] == "middle: in 2 out 0"
    assert overlay_rows(camera, placed, 9.0) == ["middle: in 2 out 0"], "old events leave the overlay"
    assert place_events(events, []) == [], "without capture times events cannot be placed"


def test_a_recordings_events_are_placed_at_their_media_time(camera: CameraConfig) -> None:
    """A phone's video says when it was recorded: its events' start_time is months before the
    reading's capture times, and only their media time places them (before, at about
    -8e6 s, counted from the first frame and never shown as recent)."""
    results = [result(i * SAMPLE_EVERY_S) for i in range(10)]
    events = [line_cross(0.4, 1), line_cross(1.3, 2)]
    for e in events:
        e.start_media_time.FromNanoseconds(e.start_time.ToNanoseconds() - CAPTURE_EPOCH_NS)
        e.start_time.FromNanoseconds(e.start_time.ToNanoseconds() - 90 * 86400 * 10**9)
    placed = place_events(events, results)
    assert [round(p.media_time, 3) for p in placed] == [0.4, 1.3]
    assert overlay_rows(camera, placed, 0.2) == ["middle: in 0 out 0"]
    assert place_events(events, []) == placed, "a media time needs no result to place it"


def test_captions_name_faces_and_tracks() -> None:
    assert detection_caption(person()) == "person 0.90 #7"
    assert detection_caption(face(matched=True)) == "driver 0.80"
    assert detection_caption(face(matched=False)) == "unknown 0.80"


def test_faces_whose_privacy_says_blur_are_blurred_in_the_video(tmp_path: Path) -> None:
    """carphone with the man's face flagged PRIVACY_BLUR: the written (H.264) frame hides it."""
    source = sample_video("carphone_pristine.mp4")
    camera = CameraConfig.model_validate({"id": "bikes", "source": str(source)})
    private = face(matched=False)
    private.box.x1, private.box.y1, private.box.x2, private.box.y2 = CARPHONE_FACE
    private.privacy = analysis_pb2.PRIVACY_BLUR
    results = [result(i * SAMPLE_EVERY_S, private, analyzer="centerface") for i in range(25)]
    out = annotate_video(source, results, camera, [], tmp_path / "carphone.mp4")
    cap = cv2.VideoCapture(str(out))
    cap.set(cv2.CAP_PROP_POS_FRAMES, CARPHONE_FRAME)
    ok, written = cap.read()
    cap.release()
    assert ok
    assert_blurred(written, carphone_frame(), CARPHONE_FACE)


@pytest.mark.parametrize("in_side_right", [False, True])
@pytest.mark.parametrize(
    ("a", "b"), [((320, 0), (320, 271)), ((10, 200), (600, 40)), ((500, 250), (100, 30))]
)
def test_in_arrow_points_where_the_behavior_service_counts_in(
    a: tuple[int, int], b: tuple[int, int], in_side_right: bool
) -> None:
    _, tip = in_arrow(a, b, in_side_right, 40)
    assert side_of_segment(tip, a, b) == (1 if in_side_right else -1)


def test_odd_sized_video_is_padded_to_even(tmp_path: Path, camera: CameraConfig) -> None:
    source = tmp_path / "odd.avi"  # lossless raw video: OpenCV's writers round sizes to even
    writer = imageio_ffmpeg.write_frames(
        str(source), (101, 75), pix_fmt_in="bgr24", pix_fmt_out="bgr24", codec="rawvideo", macro_block_size=1
    )
    writer.send(None)
    for i in range(5):
        writer.send(np.full((75, 101, 3), 40 * i, np.uint8).tobytes())
    writer.close()
    out = annotate_video(source, [], camera, [], tmp_path / "odd.mp4")
    cap = cv2.VideoCapture(str(out))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (102, 76)
    cap.release()


def test_unreadable_source_is_a_clear_error(tmp_path: Path, camera: CameraConfig) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video")
    with pytest.raises(ValueError, match="cannot decode"):
        annotate_video(bogus, [], camera, [], tmp_path / "out.mp4")


def test_ffmpeg_failing_is_a_one_line_error(tmp_path: Path, camera: CameraConfig) -> None:
    """ffmpeg cannot create the output (a folder is in the way), exits, and the next frame finds no reader."""
    out = tmp_path / "taken.mp4"
    out.mkdir()
    with pytest.raises(OSError, match=r"cannot write .*taken\.mp4: ffmpeg stopped") as raised:
        annotate_video(sample_video("bikes.mp4"), [], camera, [], out)
    assert "\n" not in str(raised.value)


def test_ffmpeg_is_started_without_a_fork_handler_hazard() -> None:
    """Embedded mode runs a gRPC server: a fork() with preexec_fn next to its threads broke
    the ffmpeg child now and then; annotate makes imageio-ffmpeg take the vfork path."""
    from imageio_ffmpeg._utils import _popen_kwargs  # this module imported annotate already

    assert _popen_kwargs(prevent_sigint=True)["preexec_fn"] is None
