"""Pure parts of the decoder: sizing, fps sampling, source kinds, back-off, settings, registry parsing."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from camsight.cameras import CameraConfig
from camsight.config import ConfigError, Settings, service_section
from camsight.decoder.frames import FpsSampler, fit_size
from camsight.decoder.service import DecoderService, InvalidCamera, parse_entry
from camsight.decoder.settings import DecoderSettings
from camsight.decoder.sources import (
    EndOfSource,
    Measured,
    SourceError,
    SourceKind,
    VideoSource,
    classify,
    open_source,
)
from camsight.runtime import ServiceContext
from camsight.v1 import camera_pb2
from decoder_support import TRUNCATED, faststart, read_to_the_end, truncated_video
from helpers import sample_video
from hypothesis import given
from hypothesis import strategies as st


@given(st.integers(1, 8000), st.integers(1, 8000), st.integers(16, 4000), st.integers(16, 4000))
def test_fit_size_keeps_aspect_within_bounds(w: int, h: int, mw: int, mh: int) -> None:
    fw, fh = fit_size(w, h, mw, mh)
    assert fw <= max(mw, 1) and fh <= max(mh, 1)
    assert fw <= w and fh <= h
    if fw > 4 and fh > 4:
        assert abs(fw / fh - w / h) <= (w / h) * (1 / min(fw, fh)) * 2


def test_fit_size_examples() -> None:
    assert fit_size(640, 272, 320, 320) == (320, 136)
    assert fit_size(176, 144, 640, 640) == (176, 144)  # never upscales
    assert fit_size(1280, 720, 640, 640) == (640, 360)


def test_sampler_follows_media_time() -> None:
    sampler = FpsSampler(10)
    times = [i / 29.97 for i in range(120)]  # carphone: 120 frames at 29.97 fps
    kept = [t for t in times if sampler.take(t)]
    assert len(kept) == 40
    assert all(b - a >= 0.099 for a, b in itertools.pairwise(kept))
    assert all(FpsSampler(0).take(t) for t in times)


def test_sampler_does_not_burst_after_a_gap() -> None:
    sampler = FpsSampler(5)
    assert sampler.take(0.0)
    assert sampler.take(10.0)  # a reconnect skipped ten seconds
    assert not sampler.take(10.1)
    assert sampler.take(10.2)


def test_classify(tmp_path: Path) -> None:
    assert classify("rtsp://u:p@cam/stream")[0] is SourceKind.NETWORK
    assert classify("https://cam/mjpeg")[0] is SourceKind.NETWORK
    assert classify("0") == (SourceKind.WEBCAM, "0")
    assert classify("/dev/video2")[0] is SourceKind.WEBCAM
    assert classify(str(tmp_path)) == (SourceKind.FOLDER, str(tmp_path))
    assert classify(f"file://{tmp_path}/a%20b.mp4") == (SourceKind.FILE, f"{tmp_path}/a b.mp4")


@pytest.mark.parametrize(
    ("source", "pacing", "lossless"),
    [
        ("file:///v/a.mp4", "lossless", True),
        ("/v/frames", "lossless", True),  # a folder of images
        ("s3proto://bucket/a.mp4", "lossless", True),  # a source plugin's scheme: a recording
        ("/v/a.mp4", "realtime", False),
        ("rtsp://cam/stream", "lossless", False),  # live: never held back
        ("https://cam/mjpeg", "lossless", False),
        ("0", "lossless", False),
        ("file:///dev/video1", "lossless", False),
    ],
)
def test_only_recordings_paced_lossless_are_lossless(source: str, pacing: str, lossless: bool) -> None:
    # The decoder holds exactly these back, and behavior follows exactly these (decision 0079).
    assert CameraConfig(id="c", source=source, pacing=pacing).lossless is lossless


def test_open_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="file not found") as missing:
        open_source(str(tmp_path / "x.mkv"), image_fps=5, open_timeout_s=1, read_timeout_s=1)
    assert missing.value.permanent
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path), image_fps=5, open_timeout_s=1, read_timeout_s=1)
    source = open_source(str(sample_video("bikes.mp4")), image_fps=5, open_timeout_s=1, read_timeout_s=1)
    grabbed = source.grab(lambda t: True)
    assert grabbed is not None and grabbed.image is not None and grabbed.image.shape == (272, 640, 3)
    source.close()


def test_settings_validation() -> None:
    settings = Settings(services={"decoder": {"lease_ttl_s": 2, "renew_interval_s": 1.5}})
    with pytest.raises(ConfigError, match="renew_interval_s"):
        service_section(settings, "decoder", DecoderSettings)
    with pytest.raises(ConfigError, match=r"services\.decoder\.bogus"):
        service_section(Settings(services={"decoder": {"bogus": 1}}), "decoder", DecoderSettings)
    with pytest.raises(ConfigError, match="pacing_window"):
        DecoderService(ServiceContext(Settings(services={"decoder": {"pacing_window": 32}})))
    batch_over_window = Settings(services={"decoder": {"pacing_window": 4, "publish_batch": 8}})
    with pytest.raises(ConfigError, match="publish_batch must be at most pacing_window"):
        service_section(batch_over_window, "decoder", DecoderSettings)


def test_registry_entries_are_validated() -> None:
    camera = CameraConfig(id="lobby", source="rtsp://cam/stream")
    assert parse_entry("lobby", camera.to_proto().SerializeToString()) == camera
    assert isinstance(parse_entry("other", camera.to_proto().SerializeToString()), InvalidCamera)
    assert "not a camsight.v1.Camera" in parse_entry("x", b"\xff\xff").error  # type: ignore[union-attr]
    bad = camera_pb2.Camera(id="bad", source_uri="go.pher://x", enabled=True)
    entry = parse_entry("bad", bad.SerializeToString())
    assert isinstance(entry, InvalidCamera) and "unsupported source scheme" in entry.error
    # Proto3 enums are open: a number no enum value has (a newer writer) names its field.
    newer = camera_pb2.Camera(id="new", source_uri="/v.mp4", pacing=3)  # type: ignore[arg-type]
    newer.rules.add(id="r", type=99, zone_id="z", anchor=7)  # type: ignore[arg-type]
    entry = parse_entry("new", newer.SerializeToString())
    assert isinstance(entry, InvalidCamera) and entry.error.startswith("invalid camera: pacing: Input")
    newer.pacing = camera_pb2.PACING_REALTIME
    entry = parse_entry("new", newer.SerializeToString())
    assert isinstance(entry, InvalidCamera) and entry.error.startswith("invalid camera: rules.0.type:")


@pytest.mark.parametrize("index", [0, 1, 100, 173, 249])
def test_a_file_seeks_to_the_exact_picture_of_a_media_time(index: int) -> None:
    # What resuming a file taken over mid-way relies on: after seek(t), the next grab is
    # the picture at t itself (FFmpeg decodes on from the keyframe before), not a keyframe.
    path = str(sample_video("bikes.mp4"))
    source = open_source(path, image_fps=0, open_timeout_s=5, read_timeout_s=5)
    pictures = []
    while True:
        try:
            grabbed = source.grab(lambda t: True)
        except EndOfSource:
            break
        assert grabbed is not None and grabbed.image is not None
        pictures.append(grabbed)
    source.close()
    target = pictures[index]
    source = open_source(path, image_fps=0, open_timeout_s=5, read_timeout_s=5)
    source.seek(target.media_time)
    after = source.grab(lambda t: True)
    source.close()
    assert after is not None and after.image is not None
    assert after.media_time == target.media_time
    assert (after.image == target.image).all()


def test_a_truncated_file_says_how_much_of_its_declared_length_was_read(tmp_path: Path) -> None:
    # The index is in front, so the cut file opens and plays 140 pictures, then just ends.
    source = open_source(
        str(truncated_video(tmp_path / "cut.mp4")), image_fps=0, open_timeout_s=5, read_timeout_s=5
    )
    assert isinstance(source, Measured)
    assert read_to_the_end(source) == 140
    assert source.shortfall() == TRUNCATED
    source.close()


def opencv_written(path: Path, source: Path) -> Path:
    """``source`` re-encoded by OpenCV's own writer (mp4v), as tools built on it write files."""
    capture = cv2.VideoCapture(str(source))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), capture.get(cv2.CAP_PROP_FPS), size)
    while (grabbed := capture.read())[0]:
        writer.write(grabbed[1])
    writer.release()
    capture.release()
    return path


@pytest.mark.parametrize(
    ("sample", "variant"),
    [
        ("bikes.mp4", ""),
        ("carphone_pristine.mp4", ""),
        ("bigbuckbunny.mp4", ""),
        ("bikes.mp4", "faststart"),  # what the truncated file is cut from
        ("carphone_pristine.mp4", "mp4v"),
        ("bikes.mp4", "resumed"),  # a takeover near the end: seeks to the last picture
    ],
)
def test_a_whole_file_is_not_short(sample: str, variant: str, tmp_path: Path) -> None:
    path = sample_video(sample)
    if variant == "faststart":
        path = faststart(tmp_path / "fast.mp4", path)
    elif variant == "mp4v":
        path = opencv_written(tmp_path / "written.mp4", path)
    source = open_source(str(path), image_fps=0, open_timeout_s=5, read_timeout_s=5)
    assert isinstance(source, Measured)
    if variant == "resumed":
        source.seek(9.96)
    assert read_to_the_end(source) > 0 and source.shortfall() is None
    source.close()


def test_a_folder_seeks_by_media_time(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(b"")  # what a seek finds depends on the names' order only
    source = open_source(str(tmp_path), image_fps=10, open_timeout_s=5, read_timeout_s=5)
    source.seek(0.1)  # the second picture
    grabbed = source.grab(lambda t: True)
    assert grabbed is not None and grabbed.media_time == pytest.approx(0.1)
    source.seek(5.0)  # past the end
    with pytest.raises(EndOfSource):
        source.grab(lambda t: True)


@pytest.mark.parametrize("threads", [1, 3])
def test_decode_threads_set_ffmpegs_threads_and_change_no_picture(threads: int) -> None:
    path = str(sample_video("bikes.mp4"))
    default = open_source(path, image_fps=0, open_timeout_s=5, read_timeout_s=5)
    chosen = open_source(path, image_fps=0, open_timeout_s=5, read_timeout_s=5, decode_threads=threads)
    assert isinstance(chosen, VideoSource) and chosen._cap is not None
    assert chosen._cap.get(cv2.CAP_PROP_N_THREADS) == threads
    for _ in range(40):  # H.264 decoding is bit-exact whatever the threads
        a, b = default.grab(lambda t: True), chosen.grab(lambda t: True)
        assert a is not None and b is not None and a.image is not None and b.image is not None
        assert a.media_time == b.media_time and np.array_equal(a.image, b.image)
    default.close()
    chosen.close()
