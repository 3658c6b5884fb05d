"""The ``services.behavior`` section of the camsight configuration."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BehaviorSettings(BaseModel):
    """How one behavior replica tracks, times and partitions its cameras."""

    model_config = ConfigDict(extra="forbid")

    replica_index: int = Field(0, ge=0, description="this replica's index, 0 <= index < replicas")
    replicas: int = Field(1, ge=1, le=1024, description="number of behavior replicas cameras are spread over")
    reorder_window: int = Field(4, ge=0, le=256, description="results held back waiting for a missing frame")
    reorder_timeout_s: float = Field(
        1.0, gt=0, description="wall time a held result waits before gaps are skipped"
    )
    max_lost_s: float = Field(
        1.5, gt=0, le=3600, description="media seconds a moving track survives unseen (detector dropouts)"
    )
    stationary_lost_s: float = Field(
        120.0,
        gt=0,
        le=86400,
        description="media seconds a stationary track is kept at its last box while unseen",
    )
    stationary_speed: float = Field(
        0.2, ge=0, le=100, description="box diagonals per second below which a track counts as stationary"
    )
    stationary_window_s: float = Field(
        1.0, gt=0, le=60, description="media seconds of recent sightings the stationary test looks at"
    )
    park_iou: float = Field(
        0.3, gt=0, le=1, description="overlap a new detection needs with a parked track's box to continue it"
    )
    min_track_hits: int = Field(3, ge=1, le=1000, description="sightings before a track is confirmed")
    min_track_age_s: float = Field(
        0.3, ge=0, le=3600, description="media seconds from first sighting before a track is confirmed"
    )
    min_median_score: float = Field(
        0.5, ge=0.0, le=1.0, description="median score of a track's sightings needed to confirm it"
    )
    track_activation_threshold: float = Field(0.5, ge=0.0, le=1.0)
    high_score_threshold: float = Field(0.5, ge=0.0, le=1.0)
    min_iou: float = Field(0.1, gt=0.0, le=1.0)
    path_points: int = Field(32, ge=2, le=1024, description="anchor points kept per track for explanations")
    update_interval_s: float = Field(
        5.0, gt=0, description="media time between UPDATED messages of one event"
    )
    batch: int = Field(64, ge=1, le=1024)
    ack_wait_s: float = Field(
        30.0, gt=0, le=3600, description="results a crashed replica held are redelivered after this long"
    )
    checkpoint_interval_s: float = Field(
        5.0, gt=0, le=3600, description="wall time between checkpoints of a camera's state while results come"
    )
    follow_frames: bool = Field(
        True, description="pace lossless cameras on this replica's progress, so snapshot frames stay"
    )
    frames_inactive_s: float = Field(
        60.0,
        ge=5,
        le=86400,
        description="a stopped replica stops pacing lossless cameras after this long (decision 0079)",
    )
    snapshot_cache: int = Field(4096, ge=16, description="snapshot names remembered as already stored")

    @model_validator(mode="after")
    def _index(self) -> Self:
        if self.replica_index >= self.replicas:
            raise ValueError(f"replica_index {self.replica_index} must be below replicas {self.replicas}")
        return self
