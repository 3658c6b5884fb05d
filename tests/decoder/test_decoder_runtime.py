"""The decoder hosted by the real runtime, as `camsight serve decoder` runs it."""

from __future__ import annotations

import asyncio

from camsight.bus import Bus
from camsight.cameras import CameraConfig
from camsight.cli.serve import ServiceName, service_class
from camsight.config import HttpSettings, NatsSettings, Settings
from camsight.runtime.serve import Runtime
from camsight.v1 import camera_pb2
from decoder_support import FAST, camera_status
from helpers import sample_video, wait_for


async def test_runtime_serves_the_decoder(bus: Bus, nats_settings: NatsSettings) -> None:
    settings = Settings(
        nats=nats_settings,
        http=HttpSettings(host="127.0.0.1", port=0),
        services={"decoder": FAST},
        cameras=[
            CameraConfig(
                id="rt", source=str(sample_video("carphone_pristine.mp4")), pacing="realtime", loop=True
            )
        ],
    )
    cls = service_class(ServiceName.decoder)
    assert cls.name == "decoder"
    runtime = Runtime(settings, [cls], name="decoder")
    task = asyncio.create_task(runtime.run())

    async def online() -> bool:
        status = await camera_status(bus, "rt")
        return status is not None and status.state == camera_pb2.CAMERA_STATE_ONLINE

    await wait_for(online, 20, "camera online")
    await wait_for(lambda: runtime.readiness()[0], 5, "ready")
    runtime.stop()
    assert await asyncio.wait_for(task, 20) == 0
    status = await camera_status(bus, "rt")
    assert status is not None and status.state == camera_pb2.CAMERA_STATE_STOPPED
