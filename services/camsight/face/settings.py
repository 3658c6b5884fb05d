"""``services.face``: which face analyzer, thresholds, crops and privacy.

Example::

    services:
      face:
        detector: centerface      # centerface | haar_faces
        device: auto              # centerface: torch batched on a GPU when there is one
        min_score: 0.5            # detection score
        min_face_px: 12           # smaller faces are ignored
        embed: true               # without embeddings nothing is recognised
        match_threshold: 0.6      # Euclidean distance between dlib embeddings
        crop_size: 96             # JPEG face crop per detection; 0 = none
        blur_unknown: false       # blur crops of unknown faces, flag them for snapshots
        publish_embeddings: false # keep the 128 floats on published detections

``analyzers`` (from the host settings) may name face analyzers and their
configs explicitly instead (third-party face analyzers); then ``detector``,
``min_score``, ``min_face_px`` and ``embed`` are not used.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from camsight.analyzers.host import HostSettings


class FaceSettings(HostSettings):
    """Host settings plus what the face service adds."""

    detector: Literal["centerface", "haar_faces"] = "centerface"
    min_score: float | None = Field(
        default=None, ge=0.0, le=1.0, description="detection score; None = the analyzer's default"
    )
    min_face_px: int = Field(default=12, ge=1, description="ignore faces smaller than this (pixels)")
    embed: bool = Field(default=True, description="embed faces (needed for recognition and enrollment)")
    match_threshold: float = Field(default=0.6, gt=0.0, le=2.0, description="max embedding distance")
    crop_size: int = Field(default=96, ge=0, le=512, description="face crop side in pixels; 0 = no crops")
    crop_quality: int = Field(default=80, ge=10, le=100, description="JPEG quality of face crops")
    crop_margin: float = Field(default=0.25, ge=0.0, le=1.0, description="margin around the box, per side")
    blur_unknown: bool = Field(default=False, description="privacy: blur crops of unknown faces")
    publish_embeddings: bool = Field(default=False, description="keep embeddings on published detections")
    embedding_model: str = Field(
        default="dlib_resnet_v1", min_length=1, description="embedding model the gallery holds and matches"
    )
    enroll_queue: str = Field(default="face", min_length=1, description="queue group of the enroll endpoint")

    def analyzer_configs(self) -> dict[str, dict[str, Any]]:
        """Analyzer name -> config: ``analyzers`` when given, else built from ``detector`` and friends."""
        if self.analyzers:
            return self.analyzers
        config: dict[str, Any] = {"min_face_px": self.min_face_px, "embed": self.embed}
        if self.min_score is not None:
            config["min_score"] = self.min_score
        return {self.detector: config}
