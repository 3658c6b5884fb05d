"""The author kit without NATS: sources (video, image folder), batching, clip windows, frame decoding."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from analyzers.cli_plugin import Misbehaves
from camsight.analyzers import KIND_OBJECTS, Detection, FrameAnalyzer, FrameInfo, Image, Keypoint
from camsight.analyzers.manager import default_manager
from camsight.analyzers.pictures import decode_frame
from camsight.analyzers.testing import (
    ConformanceError,
    check_conformance,
    read_source,
    run_on_frames,
    run_on_source,
)
from camsight.v1 import frame_pb2
from helpers import sample_video


def test_run_on_a_folder_of_images_keeps_order_and_metadata(tmp_path: Path, bikes: list[Any]) -> None:
    for i, image in enumerate(bikes[:10]):
        cv2.imwrite(str(tmp_path / f"{i:03d}.jpg"), image)
    (tmp_path / "notes.txt").write_text("not an image")
    analyzer = default_manager().create("motion")
    results = list(run_on_source(analyzer, tmp_path, batch=2))
    assert [info.seq for info, _, _ in results] == list(range(1, 11))
    assert all((info.width, info.height) == (640, 272) for info, _, _ in results)
    assert any(dets for _, _, dets in results), "the cyclists move"


def test_run_on_a_video_with_a_clip_analyzer_yields_every_frame() -> None:
    analyzer = default_manager().create("flow_activity", {"window": 3, "stride": 2})
    analyzer.load()
    frames = list(read_source(sample_video("bikes.mp4"), limit=9))
    assert frames[1][1].media_time == pytest.approx(1 / 25)
    results = list(run_on_frames(analyzer, frames, batch=4))
    assert len(results) == 9
    analyzer.close()


def test_a_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither a video file nor a folder"):
        list(read_source(tmp_path / "nope.mp4"))


def test_decode_frame_handles_jpeg_raw_and_garbage(bikes: list[Any]) -> None:
    image = np.ascontiguousarray(bikes[0][:32, :48])
    raw = frame_pb2.Frame(
        width=48, height=32, encoding=frame_pb2.IMAGE_ENCODING_RAW_BGR, data=image.tobytes()
    )
    decoded = decode_frame(raw)
    assert isinstance(decoded, np.ndarray) and np.array_equal(decoded, image)
    short = frame_pb2.Frame(width=48, height=32, encoding=frame_pb2.IMAGE_ENCODING_RAW_BGR, data=b"123")
    assert decode_frame(short) == "cannot decode image: raw BGR of 3 bytes, expected 4608"
    garbage = frame_pb2.Frame(encoding=frame_pb2.IMAGE_ENCODING_JPEG, data=b"\xff\xd8 broken")
    assert str(decode_frame(garbage)).startswith("cannot decode image")


NOT_A_LIST = "cli_misbehaves must return a list with one list of detections per input"
EMPTY = "cli_misbehaves: an empty batch must give []: "


@pytest.mark.parametrize(
    ("mistake", "problem"),
    [
        ("none", f"{EMPTY}{NOT_A_LIST}, got None"),
        ("flat", "cli_misbehaves returned Detection for input 1, not a list of detections: return one list"),
        ("generator", f"{EMPTY}{NOT_A_LIST}, got generator"),
        ("short", f"{EMPTY}cli_misbehaves returned 1 results for 0 inputs"),
        ("tuples", "cli_misbehaves: results must be Detection objects, got tuple"),
        ("int_attribute", "cli_misbehaves: 'thing': attributes must map strings to strings, got 'n': 3"),
    ],
)
def test_the_kit_refuses_what_the_host_refuses_in_the_host_s_words(mistake: str, problem: str) -> None:
    with pytest.raises(ConformanceError) as refused:
        check_conformance(Misbehaves, {"mistake": mistake})
    assert str(refused.value).startswith(problem)


def test_the_kit_wants_a_version_of_the_analyzer_s_own() -> None:
    class Unversioned(FrameAnalyzer):
        name = "unversioned"
        kind = KIND_OBJECTS

        def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
            return [[] for _ in images]

    with pytest.raises(ConformanceError, match="Unversioned must declare its own 'version'"):
        check_conformance(Unversioned)
    check_conformance(type("Versioned", (Unversioned,), {"version": "1.2"}))


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"attributes": {"n": 3}}, "'x': attributes must map strings to strings, got 'n': 3"),
        ({"attributes": [("a", "b")]}, "'x': attributes must be a dict, not list"),
        ({"embedding": "0.1,0.2"}, "'x': embedding must be a list of floats, not str"),
        ({"embedding": [0.1, "0.2"]}, "'x': embedding must be a list of floats, got str '0.2'"),
        ({"crop_jpeg": "jpeg"}, "'x': crop_jpeg must be bytes (a JPEG), not str"),
        ({"keypoints": [(0.1, 0.2)]}, "'x': keypoints must be a list of Keypoint"),
    ],
)
def test_a_detection_the_wire_format_cannot_take_is_named_by_problem(
    fields: dict[str, Any], problem: str
) -> None:
    """Each passed every check, then failed in the host's conversion ("TypeError: bad argument
    type for built-in operation"), far from the plugin's code."""
    assert Detection("x", 0.5, **fields).problem() == problem
    embedding = list(np.linspace(0, 1, 128, dtype=np.float32))  # numpy's floats are floats
    assert Detection("x", 0.5, embedding=embedding, keypoints=[Keypoint("eye", 0.2, 0.3)]).problem() is None
