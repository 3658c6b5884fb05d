"""Fixtures for the decoder tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from camsight.bus import connect
from camsight.cameras import CameraConfig
from camsight.config import NatsSettings, Settings
from camsight.decoder.service import DecoderService
from camsight.runtime import ServiceContext
from decoder_support import FAST, RunningDecoder, StartDecoder


@pytest.fixture
async def start_decoder(nats_settings: NatsSettings) -> AsyncIterator[StartDecoder]:
    running: list[RunningDecoder] = []

    async def start(cameras: list[CameraConfig] | None = None, **overrides: Any) -> RunningDecoder:
        settings = Settings(
            nats=nats_settings,
            cameras=cameras or [],
            services={"decoder": {**FAST, **overrides}},
            instance=f"test-{len(running)}",
        )
        bus = await connect(settings.nats, settings.streams, name=f"decoder-{len(running)}")
        await bus.ensure_topology()
        ctx = ServiceContext(settings=settings)
        ctx.attach(bus)
        service = DecoderService(ctx)
        await service.start()
        decoder = RunningDecoder(service, bus, asyncio.create_task(service.run()))
        running.append(decoder)
        return decoder

    yield start
    for decoder in running:
        if not decoder.task.done():
            await decoder.stop()
        elif not decoder.bus.nc.is_closed:
            await decoder.service.close()
            await decoder.bus.close()
