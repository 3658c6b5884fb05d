"""Embedded mode on a data folder an earlier run left: it starts from a clean registry."""

from __future__ import annotations

from pathlib import Path

import nats.js.errors
import pytest
from camsight.bus import subjects
from camsight.config import Settings
from camsight.run import EmbeddedPipeline
from camsight.v1 import camera_pb2

DECODER_ONLY = ("camsight.decoder.service:DecoderService",)


async def test_a_reused_data_folder_starts_with_no_camera_and_no_status(tmp_path: Path) -> None:
    """An earlier run's "ended" status must not pass for this run's (``wait_finished``
    would return before the camera even started), nor its cameras play again."""
    settings = Settings(instance="reuse")
    async with EmbeddedPipeline(settings, tmp_path, services=DECODER_ONLY) as first:
        ended = camera_pb2.CameraStatus(camera_id="car", state=camera_pb2.CAMERA_STATE_ENDED)
        await (await first.bus.kv(subjects.CAMERA_STATUS_BUCKET)).put("car", ended.SerializeToString())
        camera = camera_pb2.Camera(id="car", source_uri="/nowhere.mp4", enabled=False)
        await (await first.bus.kv(subjects.CAMERAS_BUCKET)).put("car", camera.SerializeToString())
        assert await first.statuses(["car"])
    async with EmbeddedPipeline(settings, tmp_path, services=DECODER_ONLY) as second:
        assert await second.statuses(["car"]) == {}
        with pytest.raises((nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError)):
            await (await second.bus.kv(subjects.CAMERAS_BUCKET)).get("car")
