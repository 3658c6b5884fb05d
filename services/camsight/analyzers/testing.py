"""The plugin author kit: run an analyzer without NATS, and check that it follows the protocol.

From a plugin's own tests::

    from camsight.analyzers.testing import check_conformance, run_on_source

    def test_conformance():
        check_conformance(MyAnalyzer, {"threshold": 0.3})

    def test_finds_things(tmp_path):
        results = list(run_on_source(MyAnalyzer(), "sample.mp4", limit=20))
        assert any(dets for _, _, dets in results)

Both work in-process: no server, no camsight services.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camsight.analyzers.api import (
    Analyzer,
    AnalyzerConfig,
    Clip,
    ClipAnalyzer,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
)
from camsight.analyzers.manager import instantiate
from camsight.analyzers.windows import SlidingWindows
from camsight.naming import validate_id

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

Result = tuple[FrameInfo, Image, list[Detection]]


class ConformanceError(AssertionError):
    """An analyzer breaks the protocol; the message says how."""


def read_source(
    source: str | Path, limit: int | None = None, camera_id: str = "local"
) -> Iterator[tuple[Image, FrameInfo]]:
    """Decoded frames of a video file or of a folder of images (sorted by name)."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        images: Iterable[Image] = (_read_image(p) for p in files)
        fps = 0.0
    elif path.is_file():
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ValueError(f"{path} is not a video OpenCV can read")
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or 0.0
        images = _frames(capture)
    else:
        raise FileNotFoundError(f"{path} is neither a video file nor a folder of images")
    for seq, image in enumerate(itertools.islice(images, limit), start=1):
        height, width = image.shape[:2]
        yield image, FrameInfo(camera_id, seq, width, height, media_time=(seq - 1) / fps if fps else 0.0)


def _read_image(path: Path) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} is not an image OpenCV can read")
    return np.asarray(image, dtype=np.uint8)


def _frames(capture: cv2.VideoCapture) -> Iterator[Image]:
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield np.asarray(image, dtype=np.uint8)
    finally:
        capture.release()


def run_on_frames(
    analyzer: Analyzer, frames: Iterable[tuple[Image, FrameInfo]], batch: int = 8
) -> Iterator[Result]:
    """Run a loaded analyzer over frames in batches, as the host would, yielding per-frame results.

    Clip analyzers get sliding windows; frames without a due window yield no detections.
    """
    windows = SlidingWindows(analyzer.window, analyzer.stride) if isinstance(analyzer, ClipAnalyzer) else None
    iterator = iter(frames)
    while chunk := list(itertools.islice(iterator, batch)):
        if windows is not None:
            assert isinstance(analyzer, ClipAnalyzer)
            due = [(i, windows.push(img, info)) for i, (img, info) in enumerate(chunk)]
            clips = [(i, clip) for i, clip in due if clip is not None]
            found = analyzer.analyze_clips([clip for _, clip in clips]) if clips else []
            per_frame: list[list[Detection]] = [[] for _ in chunk]
            for (i, _), dets in zip(clips, found, strict=True):
                per_frame[i] = list(dets)
        else:
            assert isinstance(analyzer, FrameAnalyzer)
            per_frame = analyzer.analyze([img for img, _ in chunk], [info for _, info in chunk])
        for (image, info), dets in zip(chunk, per_frame, strict=True):
            yield info, image, list(dets)


def run_on_source(
    analyzer: Analyzer, source: str | Path, batch: int = 8, limit: int | None = None
) -> Iterator[Result]:
    """Load ``analyzer``, run it over a video or image folder, close it at the end."""
    analyzer.load()
    try:
        yield from run_on_frames(analyzer, read_source(source, limit), batch)
    finally:
        analyzer.close()


def synthetic_frames(
    count: int, width: int = 320, height: int = 240, camera_id: str = "conformance"
) -> list[tuple[Image, FrameInfo]]:
    """Deterministic test pictures: a bright rectangle moving over noise."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(count):
        image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        x = (20 + 15 * i) % (width - 80)
        cv2.rectangle(image, (x, height // 3), (x + 60, height // 3 + 100), (230, 230, 230), -1)
        frames.append((image, FrameInfo(camera_id, i + 1, width, height, media_time=i / 25)))
    return frames


def check_conformance(
    cls: type[Analyzer],
    config: Mapping[str, Any] | None = None,
    frames: Sequence[tuple[Image, FrameInfo]] | None = None,
    batch: int = 4,
    device: str = "cpu",
) -> None:
    """Check that an analyzer class follows the protocol; raise :class:`ConformanceError` if not.

    Declared ``name`` (a valid id), ``kind``, ``version`` and ``Config``; the
    config validates; load; batches of 1 and ``batch`` (clip analyzers:
    1 and ``batch`` windows); an empty batch gives ``[]``; one result per
    input; boxes in 0..1 with x1 <= x2, y1 <= y2; scores in 0..1; close
    twice. Pass ``frames`` (e.g. from :func:`read_source`) to check on
    pictures your analyzer finds things in, and ``device="cuda"`` to check
    it on the GPU as well.
    """
    _declared(cls)
    analyzer = instantiate(cls, config, device=device)
    analyzer.load()
    try:
        if isinstance(analyzer, ClipAnalyzer):
            _check_clips(analyzer, frames, batch)
        else:
            assert isinstance(analyzer, FrameAnalyzer)
            _check_frames(analyzer, frames, batch)
    finally:
        analyzer.close()
    try:
        analyzer.close()
    except Exception as exc:
        raise ConformanceError(
            f"{cls.name}: close() must be idempotent; the second call raised {exc!r}"
        ) from exc


def _declared(cls: type[Analyzer]) -> None:
    if not (isinstance(cls, type) and issubclass(cls, FrameAnalyzer | ClipAnalyzer)):
        raise ConformanceError(f"{cls!r} must subclass FrameAnalyzer or ClipAnalyzer")
    for attr in ("name", "kind", "version"):
        value = getattr(cls, attr, None)
        if not isinstance(value, str) or not value:
            raise ConformanceError(f"{cls.__name__} must declare a non-empty string {attr!r}")
    try:
        validate_id(cls.name, "analyzer name")
    except ValueError as exc:
        raise ConformanceError(str(exc)) from None
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, AnalyzerConfig)):
        raise ConformanceError(f"{cls.name}: Config must subclass camsight.analyzers.AnalyzerConfig")


def _check_frames(
    analyzer: FrameAnalyzer, frames: Sequence[tuple[Image, FrameInfo]] | None, batch: int
) -> None:
    frames = list(frames or synthetic_frames(batch + 1))
    if len(frames) < batch + 1:
        raise ValueError(f"check_conformance needs at least {batch + 1} frames")
    empty = analyzer.analyze([], [])
    if list(empty) != []:
        raise ConformanceError(f"{analyzer.name}: an empty batch must give [], got {empty!r}")
    for chunk in (frames[:1], frames[1 : batch + 1]):
        found = analyzer.analyze([img for img, _ in chunk], [info for _, info in chunk])
        _check_results(analyzer, found, len(chunk))


def _check_clips(
    analyzer: ClipAnalyzer, frames: Sequence[tuple[Image, FrameInfo]] | None, batch: int
) -> None:
    needed = analyzer.window + batch
    frames = list(frames or synthetic_frames(needed))
    if len(frames) < needed:
        raise ValueError(
            f"check_conformance needs at least {needed} frames for a window of {analyzer.window}"
        )
    clips = [
        Clip(frames[0][1].camera_id, [img for img, _ in part], [info for _, info in part])
        for part in (frames[i : i + analyzer.window] for i in range(batch))
    ]
    empty = analyzer.analyze_clips([])
    if list(empty) != []:
        raise ConformanceError(f"{analyzer.name}: an empty batch must give [], got {empty!r}")
    for chunk in (clips[:1], clips):
        _check_results(analyzer, analyzer.analyze_clips(chunk), len(chunk))


def _check_results(analyzer: Analyzer, found: Sequence[Sequence[Detection]], expected: int) -> None:
    if not isinstance(found, Sequence) or len(found) != expected:
        raise ConformanceError(f"{analyzer.name}: expected {expected} result lists, got {found!r}")
    for dets in found:
        for det in dets:
            if not isinstance(det, Detection):
                raise ConformanceError(f"{analyzer.name}: results must be Detection objects, got {det!r}")
            if (problem := det.problem()) is not None:
                raise ConformanceError(f"{analyzer.name}: {problem}")
