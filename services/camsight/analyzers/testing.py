"""The plugin author kit: run an analyzer without NATS, and check that it follows the protocol.

From a plugin's own tests::

    from camsight.analyzers.testing import check_conformance, run_on_source
    from camsight.samples import sample_video

    def test_conformance():
        check_conformance(MyAnalyzer, {"threshold": 0.3})

    def test_finds_things():  # camsight's sample videos: pip install 'camsight[samples]'
        results = list(run_on_source(MyAnalyzer(), sample_video("bikes.mp4"), limit=20))
        assert any(dets for _, _, dets in results)

    def test_rule():
        findings = check_rule(MyRule, {"allowed": "right"})  # rule types: see check_rule

Both work in-process: no server, no camsight services.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
from pydantic import ValidationError

from camsight.analyzers.api import (
    Analyzer,
    AnalyzerConfig,
    Clip,
    ClipAnalyzer,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    ResultError,
    check_results,
    detections_problem,
)
from camsight.analyzers.manager import instantiate, problems
from camsight.analyzers.pictures import image_to_tensor, tensor_device
from camsight.analyzers.rules import EventRule, Finding, RuleConfig, TrackView
from camsight.analyzers.windows import SlidingWindows
from camsight.naming import validate_id

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
_BASES = (Analyzer, FrameAnalyzer, ClipAnalyzer)
"""camsight's analyzer base classes: what a plugin declares is on its own classes."""

Result = tuple[FrameInfo, Image, list[Detection]]


class ConformanceError(AssertionError):
    """An analyzer breaks the protocol; the message says how."""


def read_source(
    source: str | Path, limit: int | None = None, camera_id: str = "local"
) -> Iterator[tuple[Image, FrameInfo]]:
    """Decoded frames of a video file or of a folder of images (sorted by name).

    The source is opened at once: a missing path raises :class:`FileNotFoundError` and a
    file OpenCV cannot read :class:`ValueError` here, before any frame is asked for (an
    image of a folder that cannot be read raises when its turn comes).
    """
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
    return _numbered(itertools.islice(images, limit), camera_id, fps)


def _numbered(images: Iterable[Image], camera_id: str, fps: float) -> Iterator[tuple[Image, FrameInfo]]:
    """Each image with its info: numbered from 1, its media time from ``fps`` (0 when unknown)."""
    for seq, image in enumerate(images, start=1):
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
    An analyzer whose ``inputs`` is ``"tensor"`` gets tensors on its device, as from the host.
    What it returns is checked as the host checks it (:func:`~camsight.analyzers.check_results`):
    a wrong shape raises :class:`~camsight.analyzers.ResultError` with the host's message;
    each frame's detections are yielded as returned, for the caller to check
    (:func:`~camsight.analyzers.detections_problem`), as ``camsight analyze`` does.
    """
    windows = SlidingWindows(analyzer.window, analyzer.stride) if isinstance(analyzer, ClipAnalyzer) else None
    iterator = iter(frames)
    while chunk := list(itertools.islice(iterator, batch)):
        pictures = as_inputs(analyzer, [img for img, _ in chunk])
        if windows is not None:
            assert isinstance(analyzer, ClipAnalyzer)
            due = [
                (i, windows.push(pic, info))
                for i, (pic, (_, info)) in enumerate(zip(pictures, chunk, strict=True))
            ]
            clips = [(i, clip) for i, clip in due if clip is not None]
            found = analyzer.analyze_clips([clip for _, clip in clips]) if clips else []
            per_frame: list[Sequence[object]] = [[] for _ in chunk]
            for (i, _), dets in zip(clips, check_results(analyzer.name, found, len(clips)), strict=True):
                per_frame[i] = dets
        else:
            assert isinstance(analyzer, FrameAnalyzer)
            found = analyzer.analyze(pictures, [info for _, info in chunk])
            per_frame = check_results(analyzer.name, found, len(chunk))
        for (image, info), dets in zip(chunk, per_frame, strict=True):
            yield info, image, cast(list[Detection], list(dets))


def as_inputs(analyzer: Analyzer, images: Sequence[Image]) -> list[Any]:
    """``images`` as ``analyzer`` takes them: the arrays, or RGB tensors on its device (``inputs``)."""
    device = tensor_device(analyzer)
    return list(images) if device is None else [image_to_tensor(image, device) for image in images]


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

    Declared ``name`` (a valid id), ``kind`` and ``version`` (the class's own: the
    base's ``"0"`` is no version) and a ``Config`` deriving from ``AnalyzerConfig``
    (inherited by an analyzer without settings of its own); the config validates;
    load; batches of 1 and ``batch`` (clip analyzers: 1 and ``batch`` windows); an
    empty batch gives ``[]``; one result list per input (a list or tuple; checked
    as the host checks it); each detection keeps :meth:`Detection.problem`'s
    contract (boxes in 0..1 with x1 <= x2, y1 <= y2, scores in 0..1, string
    attributes...); close twice. An analyzer whose ``inputs`` is ``"tensor"`` (read
    once loaded, so a kind that follows the config is checked in that config) is
    run on RGB ``3 x H x W`` uint8 tensors on its device, as the host hands them
    (clip analyzers: windows of them), and must take them without raising and
    without changing them in place (the host shares them between analyzers);
    every other one on BGR arrays. Call it once per config for an analyzer whose
    kind depends on it.
    Pass ``frames`` (e.g. from :func:`read_source`) to check on pictures
    your analyzer finds things in, and ``device="cuda"`` to check it on the
    GPU as well.
    """
    _declared(cls)
    analyzer = instantiate(cls, config, device=device)
    analyzer.load()
    try:
        if analyzer.inputs not in ("numpy", "tensor"):  # read from the instance: it may follow the config
            raise ConformanceError(f"{cls.name}: inputs must be 'numpy' or 'tensor', not {analyzer.inputs!r}")
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
    if not any("version" in vars(base) for base in cls.__mro__ if base not in _BASES):
        raise ConformanceError(
            f"{cls.__name__} must declare its own 'version' (published with every result as "
            'model_version): it inherits the base class\'s "0"'
        )
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
    _check_empty(analyzer, analyzer.analyze([], []))
    for chunk in (frames[:1], frames[1 : batch + 1]):
        pictures = as_inputs(analyzer, [img for img, _ in chunk])
        infos = [info for _, info in chunk]
        found = _on_inputs(analyzer, pictures, partial(analyzer.analyze, pictures, infos))
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
    pictures = as_inputs(analyzer, [img for img, _ in frames])
    clips = [
        Clip(frames[0][1].camera_id, pictures[i : i + analyzer.window], [info for _, info in part])
        for i, part in ((i, frames[i : i + analyzer.window]) for i in range(batch))
    ]
    _check_empty(analyzer, analyzer.analyze_clips([]))
    for chunk in (clips[:1], clips):
        found = _on_inputs(analyzer, pictures, partial(analyzer.analyze_clips, chunk))
        _check_results(analyzer, found, len(chunk))


def _on_inputs(analyzer: Analyzer, pictures: Sequence[Any], call: Callable[[], object]) -> object:
    """``call()``; for a tensor analyzer, one that raises or changes its shared inputs fails the check."""
    if analyzer.inputs != "tensor":
        return call()
    kept = [p.clone() for p in pictures]
    try:
        found = call()
    except Exception as exc:
        raise ConformanceError(
            f"{analyzer.name}: declares inputs = 'tensor' but failed on RGB 3xHxW uint8 tensors on "
            f"{pictures[0].device}: {type(exc).__name__}: {exc}"
        ) from exc
    if any(not p.equal(k) for p, k in zip(pictures, kept, strict=True)):
        raise ConformanceError(
            f"{analyzer.name}: changed its input tensors in place; the host shares them between analyzers"
        )
    return found


def _check_empty(analyzer: Analyzer, found: object) -> None:
    try:
        check_results(analyzer.name, found, 0)
    except ResultError as exc:
        raise ConformanceError(f"{analyzer.name}: an empty batch must give []: {exc}") from None


def _check_results(analyzer: Analyzer, found: object, expected: int) -> None:
    """The host's checks of what ``analyze``/``analyze_clips`` returned, as a ConformanceError."""
    try:
        per_input = check_results(analyzer.name, found, expected)
    except ResultError as exc:
        raise ConformanceError(str(exc)) from None
    for dets in per_input:
        if (problem := detections_problem(dets)) is not None:
            raise ConformanceError(f"{analyzer.name}: {problem}")


def synthetic_tracks(frames: int = 30, fps: float = 10.0) -> list[tuple[float, list[TrackView]]]:
    """Deterministic tracks for rule checks: four people crossing the picture, one each way
    (right, left, down, up), ``frames`` frames at ``fps``; ``(media time, tracks seen)`` per frame."""
    ways = {
        1: (0.1, 0.5, 0.8, 0.0),
        2: (0.9, 0.5, -0.8, 0.0),
        3: (0.5, 0.2, 0.0, 0.7),
        4: (0.4, 0.9, 0.0, -0.7),
    }
    paths: dict[int, list[tuple[float, float]]] = {n: [] for n in ways}
    out = []
    for i in range(frames):
        seen = []
        for number, (x, y, dx, dy) in ways.items():
            ax, ay = x + dx * i / frames, y + dy * i / frames
            paths[number].append((ax, ay))
            box = (max(0.0, ax - 0.03), max(0.0, ay - 0.1), min(1.0, ax + 0.03), ay)
            seen.append(TrackView("conformance", "person", number, box, 0.9, tuple(paths[number][-32:])))
        out.append((i / fps, seen))
    return out


def check_rule(
    cls: type[EventRule],
    config: Mapping[str, Any] | None = None,
    tracks: Sequence[tuple[float, Sequence[TrackView]]] | None = None,
) -> list[Finding]:
    """Check that a rule type follows the protocol; return its findings on ``tracks``
    (default :func:`synthetic_tracks`) so a test can assert on them.

    Declared ``name`` (a valid id) and ``Config`` (a ``RuleConfig``); the config
    validates; ``step`` with no track and with each frame's tracks returns a
    list of :class:`Finding` about tracks seen in that frame, each with a
    one-line summary and string attributes, and a string ``key`` that names one condition of
    its track at most once per frame; ``lost`` takes every track.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str):
        raise ConformanceError(f"{cls.__name__} does not declare 'name'")
    validate_id(name, "rule type name")
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, RuleConfig)):
        raise ConformanceError(f"{name}: Config must subclass camsight.analyzers.RuleConfig")
    try:
        rule = cls(cls.Config.model_validate(dict(config or {})))
    except ValidationError as exc:
        raise ConformanceError(f"{name}: invalid config: {problems(exc)}") from None
    if rule.step(0.0, []) != []:
        raise ConformanceError(f"{name}: step() with no track must return []")
    frames = list(tracks) if tracks is not None else synthetic_tracks()
    findings: list[Finding] = []
    for t, seen in frames:
        found = rule.step(t, seen)
        for finding in found if isinstance(found, list) else [None]:
            if not isinstance(finding, Finding) or finding.track not in seen:
                raise ConformanceError(f"{name}: step() must return Findings about tracks it was given")
            if not finding.summary or "\n" in finding.summary:
                raise ConformanceError(f"{name}: a finding needs a one-line summary")
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in finding.attributes.items()):
                raise ConformanceError(f"{name}: finding attributes must map strings to strings")
        keyed = [(f.track.analyzer, f.track.number, f.key) for f in found if f.key]
        if not all(isinstance(f.key, str) for f in found) or len(set(keyed)) != len(keyed):
            raise ConformanceError(
                f"{name}: a finding's key must be a string, reported once per track and frame"
            )
        findings.extend(found)
    for track in {(v.analyzer, v.number): v for _, seen in frames for v in seen}.values():
        rule.lost(track)
    return findings
