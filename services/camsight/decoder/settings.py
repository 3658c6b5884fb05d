"""The decoder's own configuration section (``services.decoder``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from camsight.bus import subjects


class JpegEncode(StrEnum):
    """Where the decoder JPEG-encodes its pictures (decision 0078)."""

    AUTO = "auto"
    """nvJPEG for pictures NVDEC left on the GPU, OpenCV for the rest."""
    CPU = "cpu"
    """OpenCV always (NVDEC's pictures are copied to host memory first)."""
    NVJPEG = "nvjpeg"
    """nvJPEG always (pictures decoded on the CPU are copied to the GPU); where it cannot run,
    OpenCV with one warning per camera."""


class DecoderSettings(BaseModel):
    """Tuning of the decoder; defaults suit a cluster, tests shorten the times.

    Takeover of a dead replica's cameras happens within
    ``lease_ttl_s + renew_interval_s`` (see docs/sources.md).
    """

    model_config = ConfigDict(extra="forbid")

    lease_bucket: str = Field(subjects.DECODER_LEASES_BUCKET, pattern=r"^[A-Za-z0-9_-]+$")
    lease_ttl_s: float = Field(10.0, gt=0.2, le=600)
    renew_interval_s: float = Field(3.0, gt=0.05, le=200)
    backoff_min_s: float = Field(1.0, gt=0, le=600)
    backoff_max_s: float = Field(60.0, gt=0, le=3600)
    watchdog_s: float = Field(10.0, gt=0, le=3600, description="reconnect when no frame arrives this long")
    open_timeout_s: float = Field(10.0, gt=0, le=600)
    pacing_window: int = Field(16, ge=1, le=64, description="frames in flight per lossless camera")
    publish_batch: int = Field(
        8, ge=1, le=64, description="lossless cameras: frames sent together, once the window has room for all"
    )
    decode_threads: int = Field(
        0,
        ge=0,
        le=64,
        description="FFmpeg decoding threads per camera (0: one for a stream, one per core for a file)",
    )
    encode_thread: bool = Field(
        True, description="lossless cameras: resize and JPEG-encode on a second thread, overlapping decoding"
    )
    encode: JpegEncode = Field(
        JpegEncode.AUTO, description="where pictures are JPEG-encoded: auto, cpu (OpenCV) or nvjpeg (the GPU)"
    )
    pacing_resync_s: float = Field(1.0, gt=0, le=60)
    status_interval_s: float = Field(2.0, gt=0, le=600)
    publish_timeout_s: float = Field(5.0, gt=0, le=60)
    queue_frames: int = Field(
        2, ge=1, le=64, description="frames (real time) or batches (lossless) queued for the publisher"
    )
    seed_cameras: bool = Field(True, description="write the config file's cameras into the registry at start")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.renew_interval_s >= self.lease_ttl_s / 2:
            raise ValueError("renew_interval_s must be less than half of lease_ttl_s")
        if self.publish_batch > self.pacing_window:
            raise ValueError("publish_batch must be at most pacing_window")
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError("backoff_max_s must be at least backoff_min_s")
        return self
