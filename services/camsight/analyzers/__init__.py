"""The public plugin API of camsight: ``from camsight.analyzers import ...``.

Plugin authors need only this package: the analyzer protocol
(:mod:`camsight.analyzers.api`), the rule-type protocol
(:mod:`camsight.analyzers.rules`), the source protocol
(:mod:`camsight.analyzers.sources`), the hook marker (:data:`hookimpl`, specs in
:mod:`camsight.analyzers.hookspecs`), device/precision helpers for torch
(:mod:`camsight.analyzers.devices`) and the author kit
(:mod:`camsight.analyzers.testing`). The plugin manager and the host are
the runtime's side (:mod:`~camsight.analyzers.manager`,
:mod:`~camsight.analyzers.host`).
"""

from camsight.analyzers.api import (
    EMBEDDING_MODEL_ATTRIBUTE,
    FACE_LABEL,
    KIND_ACTIONS,
    KIND_FACES,
    KIND_MOTION,
    KIND_OBJECTS,
    Analyzer,
    AnalyzerConfig,
    AnalyzerError,
    Clip,
    ClipAnalyzer,
    ClipConfig,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
    Inputs,
    Keypoint,
    Picture,
    Precision,
    Privacy,
    ResultError,
    check_results,
    detections_problem,
)
from camsight.analyzers.devices import resolve_device
from camsight.analyzers.hookspecs import hookimpl
from camsight.analyzers.rules import EventRule, Finding, RuleConfig, TrackView
from camsight.analyzers.sources import SourceReader, SourceUnavailable

__all__ = [
    "EMBEDDING_MODEL_ATTRIBUTE",
    "FACE_LABEL",
    "KIND_ACTIONS",
    "KIND_FACES",
    "KIND_MOTION",
    "KIND_OBJECTS",
    "Analyzer",
    "AnalyzerConfig",
    "AnalyzerError",
    "Clip",
    "ClipAnalyzer",
    "ClipConfig",
    "Detection",
    "EventRule",
    "Finding",
    "FrameAnalyzer",
    "FrameInfo",
    "Image",
    "Inputs",
    "Keypoint",
    "Picture",
    "Precision",
    "Privacy",
    "ResultError",
    "RuleConfig",
    "SourceReader",
    "SourceUnavailable",
    "TrackView",
    "check_results",
    "detections_problem",
    "hookimpl",
    "resolve_device",
]
