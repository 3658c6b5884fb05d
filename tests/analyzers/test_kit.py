"""The author kit without NATS: sources (video, image folder), batching, clip windows, frame decoding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from camsight.analyzers.manager import default_manager
from camsight.analyzers.pictures import decode_frame
from camsight.analyzers.testing import read_source, run_on_frames, run_on_source
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
