"""The analyzer protocol: what a camsight plugin implements.

An analyzer is a class with a ``name``, a ``kind``, a typed ``Config``
(a pydantic model) and three methods: :meth:`Analyzer.load`,
:meth:`Analyzer.analyze` and :meth:`Analyzer.close`. The host owns
everything else: fetching and decoding frames, batching, device defaults,
timing, metrics, error isolation and publishing. Plugins never see NATS.

Two shapes exist:

* :class:`FrameAnalyzer` gets a batch of decoded images (BGR ``uint8``
  arrays, as OpenCV uses; or, for an analyzer declaring ``inputs = "tensor"``,
  RGB ``uint8`` torch tensors on its device) with their :class:`FrameInfo` and
  returns one list of :class:`Detection` per image.
* :class:`ClipAnalyzer` gets sliding windows of the last ``config.window``
  frames of one camera (:class:`Clip`, pictures of the same kind) and returns
  one list of detections (labels for the window) per clip. The host keeps the
  windows (for a tensor analyzer, on its device).

Boxes are normalised: (0, 0) is the top-left corner, (1, 1) the bottom-right
one, so results do not depend on the analysis resolution.
"""

from __future__ import annotations

import abc
import enum
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias, TypeGuard

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

Image = npt.NDArray[np.uint8]
"""A decoded picture: height x width x 3, BGR, ``uint8``."""

if TYPE_CHECKING:
    import torch

    Picture: TypeAlias = Image | torch.Tensor
else:  # torch is imported only by the analyzers that use it
    Picture: TypeAlias = Any
"""What an analyzer gets: an :data:`Image`, or for ``inputs = "tensor"`` a ``3 x H x W``
RGB ``uint8`` torch tensor on the analyzer's device (:mod:`camsight.analyzers.pictures`)."""

Inputs = Literal["numpy", "tensor"]
"""How an analyzer takes its pictures (``Analyzer.inputs``)."""

Precision = Literal["fp32", "fp16", "bf16", "int8"]
"""Numeric precision for torch analyzers; int8 is dynamic quantization of Linear layers (CPU),
refused at load for models it would leave unchanged (decision 0029)."""

KIND_OBJECTS = "objects"
KIND_FACES = "faces"
KIND_MOTION = "motion"
KIND_ACTIONS = "actions"

FACE_LABEL = "face"
"""The label of a face detection: the face service identifies (and may blur) these."""

EMBEDDING_MODEL_ATTRIBUTE = "embedding_model"
"""Attribute naming the model of ``Detection.embedding``: only embeddings of the
gallery's model are matched against it (distances across models mean nothing)."""


class Privacy(enum.IntEnum):
    """Whether a detection's pixels may be shown; the numbers are the wire enum's (``camsight.v1.Privacy``).

    ``BLUR``: every writer of pictures (snapshots, crops, annotated videos,
    reports) blurs the box first. ``UNSPECIFIED`` (the default) means no
    decision was made and the box is shown, as for objects; the face service
    decides ``VISIBLE`` or ``BLUR`` for every face it publishes and never
    turns a plugin's ``BLUR`` into ``VISIBLE``. Readers treat a number they
    do not know as ``BLUR``.
    """

    UNSPECIFIED = 0
    VISIBLE = 1
    BLUR = 2


_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


class AnalyzerError(RuntimeError):
    """An analyzer cannot be configured, loaded or run; the message says why."""


class AnalyzerConfig(BaseModel):
    """Settings every analyzer accepts; subclass it to add your own fields.

    ``device`` and ``precision`` default to ``None`` = "use the host's
    default" (``services.<service>.device`` / ``.precision``); analyzers
    that do not use torch simply ignore them.
    """

    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(
        default=None,
        description="where torch analyzers run: auto, cpu, cuda or cuda:N; unset = the service's `device`",
    )
    precision: Precision | None = Field(
        default=None,
        description=(
            "numeric precision of torch analyzers: fp32, fp16, bf16 or int8 (dynamic, Linear layers: "
            "refused where it changes nothing, see models.md); unset = the service's `precision`"
        ),
    )

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str | None) -> str | None:
        if value is not None and not _DEVICE.match(value):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {value!r}")
        return value


class ClipConfig(AnalyzerConfig):
    """Settings of a clip analyzer: window length and how often to evaluate it."""

    window: int = Field(
        default=16, ge=2, le=512, description="frames per window (the clip the analyzer sees)"
    )
    stride: int = Field(
        default=1, ge=1, description="evaluate a window every `stride` frames (1 = every frame)"
    )


@dataclass(frozen=True)
class FrameInfo:
    """Metadata of one frame, as the decoder published it."""

    camera_id: str
    seq: int
    width: int
    height: int
    capture_time: float = 0.0
    """Seconds since the epoch (wall clock at capture)."""
    media_time: float = 0.0
    """Seconds since the start of the media (files)."""


@dataclass(frozen=True)
class Keypoint:
    """A named point in normalised coordinates, with its own confidence."""

    name: str
    x: float
    y: float
    score: float = 1.0


@dataclass
class Detection:
    """One thing found in one image (or one clip).

    ``box`` is ``(x1, y1, x2, y2)`` normalised to 0..1 with x1 <= x2 and
    y1 <= y2; use :meth:`from_pixels` to convert pixel boxes. ``score`` is a
    confidence in 0..1. ``privacy``: set :attr:`Privacy.BLUR` for a box whose
    pixels must never be shown (the host then also blurs ``crop_jpeg``).
    """

    label: str
    score: float
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    attributes: dict[str, str] = field(default_factory=dict)
    keypoints: list[Keypoint] = field(default_factory=list)
    embedding: list[float] = field(default_factory=list)
    crop_jpeg: bytes = b""
    privacy: Privacy = Privacy.UNSPECIFIED

    @classmethod
    def from_pixels(
        cls, label: str, score: float, box: Sequence[float], width: int, height: int, **extra: Any
    ) -> Detection:
        """Build a detection from a pixel box, normalising and clipping it to the image."""
        x1, y1, x2, y2 = (float(v) for v in box)
        nx1, nx2 = sorted((_clip01(x1 / width), _clip01(x2 / width)))
        ny1, ny2 = sorted((_clip01(y1 / height), _clip01(y2 / height)))
        return cls(label=label, score=_clip01(float(score)), box=(nx1, ny1, nx2, ny2), **extra)

    def problem(self) -> str | None:
        """Why this detection breaks the contract above (None: it does not).

        The one check: the conformance kit fails a plugin on it, and the host
        refuses such a result at run time (counted as failed, never stored).
        Besides the box and score it checks the types the wire format needs
        (string attributes, a numeric embedding, JPEG bytes), so a mistake
        there is named here instead of failing deep in the host's conversion.
        """
        if not isinstance(self.label, str) or not self.label:
            return "a detection has an empty label"
        try:
            x1, y1, x2, y2 = (float(v) for v in self.box)
            score = float(self.score)
        except (TypeError, ValueError):
            return f"{self.label!r}: box {self.box!r} or score {self.score!r} is not numbers"
        if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)) or x1 > x2 or y1 > y2:
            return f"{self.label!r}: box {self.box} is not normalised x1<=x2, y1<=y2 in 0..1"
        if not 0.0 <= score <= 1.0:
            return f"{self.label!r}: score {self.score} is not in 0..1"
        return self._typing_problem()

    def _typing_problem(self) -> str | None:
        """The fields besides box and score whose Python types the wire message cannot take."""
        if not isinstance(self.attributes, dict):
            return f"{self.label!r}: attributes must be a dict, not {type(self.attributes).__name__}"
        for key, value in self.attributes.items():
            if not (isinstance(key, str) and isinstance(value, str)):
                return f"{self.label!r}: attributes must map strings to strings, got {key!r}: {value!r}"
        if isinstance(self.embedding, str | bytes) or not isinstance(self.embedding, Sequence | np.ndarray):
            return f"{self.label!r}: embedding must be a list of floats, not {type(self.embedding).__name__}"
        odd = next((v for v in self.embedding if not isinstance(v, numbers.Real)), None)
        if odd is not None:
            return f"{self.label!r}: embedding must be a list of floats, got {type(odd).__name__} {odd!r}"
        if not isinstance(self.crop_jpeg, bytes):
            return f"{self.label!r}: crop_jpeg must be bytes (a JPEG), not {type(self.crop_jpeg).__name__}"
        keypoints = self.keypoints
        if not isinstance(keypoints, Sequence) or not all(isinstance(k, Keypoint) for k in keypoints):
            return f"{self.label!r}: keypoints must be a list of Keypoint"
        if not isinstance(self.privacy, int):
            return f"{self.label!r}: privacy must be a Privacy, not {type(self.privacy).__name__}"
        return None


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


@dataclass(frozen=True)
class Clip:
    """The last ``window`` frames of one camera, oldest first."""

    camera_id: str
    images: Sequence[Image]
    """Pictures of the kind ``inputs`` declares (:data:`Picture`); tensors lie on the analyzer's device."""
    frames: Sequence[FrameInfo]


class Analyzer(abc.ABC):
    """Common part of every analyzer. Do not subclass it directly: use
    :class:`FrameAnalyzer` or :class:`ClipAnalyzer`.

    Class attributes a plugin declares:

    * ``name``: unique analyzer name, one subject token (letters, digits,
      ``-``, ``_``); results go to ``detections.<name>.<camera>``.
    * ``kind``: what it finds: ``objects``, ``faces``, ``motion``,
      ``actions``, ...
    * ``version``: plugin and model version, reported with every result;
      declared by the plugin's class (the conformance kit refuses the base's ``"0"``).
    * ``Config``: a pydantic model (subclass of :class:`AnalyzerConfig`);
      the host validates the operator's settings with it (an analyzer without
      settings of its own may keep the base's).
    * ``inputs``: ``"numpy"`` (the default: BGR ``uint8`` arrays) or
      ``"tensor"``: ``3 x H x W`` RGB ``uint8`` torch tensors on the device
      the analyzer runs on (``config.device``), decoded there (nvJPEG on a
      GPU) and never copied through host memory. Shared by every analyzer of
      the batch on that device: read them, never change them in place. An
      analyzer whose kind depends on its settings (``yolo_onnx``: tensors
      for its torch runtime, arrays for onnxruntime) overrides the
      :attr:`inputs` property instead, reading ``self.config``.

    The host constructs the analyzer with a validated config whose
    ``device`` and ``precision`` are filled in, calls :meth:`load` once (in
    a worker thread: it may block for seconds), ``analyze`` for every batch
    (in a worker thread, never concurrently for one instance) and
    :meth:`close` at shutdown. ``close`` must be safe to call twice.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    version: ClassVar[str] = "0"
    Config: ClassVar[type[AnalyzerConfig]] = AnalyzerConfig
    clip: ClassVar[bool] = False

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @property
    def inputs(self) -> Inputs:
        """The kind of pictures :meth:`FrameAnalyzer.analyze` / clips get: ``"numpy"`` unless overridden.

        Override with a class attribute (``inputs = "tensor"``), or with a property
        when the kind follows the (validated) config. The host and the author kit
        read it from the constructed analyzer, once, after :meth:`load`; it must
        not change after that.
        """
        return "numpy"

    @property
    def model_version(self) -> str:
        """Version string published with each result; override to add the model's own."""
        return self.version

    def load(self) -> None:
        """Load weights and warm up. Raise :class:`AnalyzerError` with a clear reason on failure."""

    def close(self) -> None:
        """Release models and memory. Must be idempotent."""


class FrameAnalyzer(Analyzer):
    """An analyzer that looks at single frames, in batches."""

    @abc.abstractmethod
    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        """Return one list of detections per image (same order, same length).

        ``images[i]`` is the decoded picture of ``frames[i]`` (a :data:`Picture`
        of the kind ``inputs`` declares). The batch may mix cameras and may be
        empty (then return ``[]``). A list or a tuple, not a generator: the host
        needs its length (:func:`check_results`).
        """


class ClipAnalyzer(Analyzer):
    """An analyzer that looks at sliding windows of frames of one camera.

    The host keeps the last ``config.window`` frames per camera and, every
    ``config.stride`` frames once the window is full, hands the window to
    :meth:`analyze_clips`. Frames for which no window is evaluated are
    answered as skipped.
    """

    Config: ClassVar[type[AnalyzerConfig]] = ClipConfig
    clip: ClassVar[bool] = True

    @property
    def window(self) -> int:
        return self.config.window if isinstance(self.config, ClipConfig) else ClipConfig().window

    @property
    def stride(self) -> int:
        return self.config.stride if isinstance(self.config, ClipConfig) else 1

    @abc.abstractmethod
    def analyze_clips(self, clips: Sequence[Clip]) -> list[list[Detection]]:
        """Return one list of detections (labels for the window) per clip, as
        :meth:`FrameAnalyzer.analyze` returns one per image."""


class ResultError(AnalyzerError):
    """What an analyzer returned is not one list of detections per input: its whole batch fails."""


def check_results(name: str, found: object, inputs: int) -> list[Sequence[object]]:
    """What analyzer ``name`` returned for ``inputs`` pictures (or clips), one sequence per input.

    The shape :meth:`FrameAnalyzer.analyze` and :meth:`ClipAnalyzer.analyze_clips` promise,
    checked by the host, the author kit and ``camsight analyze`` alike, so that each says
    the same thing: a sequence (a list or a tuple; not a generator, whose length the host
    cannot know) holding one sequence of detections per input, in order. Raises
    :class:`ResultError` naming ``name`` and the problem. What each input's sequence holds
    is :func:`detections_problem`'s to check: a bad detection fails its own frame only.
    """
    if not is_sequence(found):
        raise ResultError(
            f"{name} must return a list with one list of detections per input, got {described(found)}"
        )
    if len(found) != inputs:
        raise ResultError(f"{name} returned {len(found)} results for {inputs} inputs")
    per_input: list[Sequence[object]] = []
    for i, detections in enumerate(found, start=1):
        if not is_sequence(detections):
            raise ResultError(
                f"{name} returned {described(detections)} for input {i}, not a list of detections: "
                "return one list per input ([] when nothing was found)"
            )
        per_input.append(detections)
    return per_input


def detections_problem(detections: Sequence[object]) -> str | None:
    """Why one input's detections break the contract (the first that does), or None when none does."""
    for detection in detections:
        if not isinstance(detection, Detection):
            return f"results must be Detection objects, got {described(detection)}"
        if (problem := detection.problem()) is not None:
            return problem
    return None


def described(value: object) -> str:
    """What ``value`` is, for an error message about a plugin's return value: ``None``,
    ``class Foo`` (a class where an instance or a list belongs), or its type's name."""
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"class {value.__name__}"
    return type(value).__name__


def is_sequence(value: object) -> TypeGuard[Sequence[object]]:
    """A list, a tuple or another sequence, but not a string: what a plugin may return where
    a list belongs."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)
