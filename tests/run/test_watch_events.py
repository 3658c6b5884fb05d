"""``EmbeddedPipeline.watch_events``: what a run prints (``camsight run --json``) and what
tests collect. Events the server already delivered but the callback had not reached yet
were dropped when the block ended; under load, the last events of a run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from camsight.bus import subjects
from camsight.config import Settings
from camsight.run import EmbeddedPipeline
from camsight.v1 import event_pb2
from helpers import wait_for

DECODER_ONLY = ("camsight.decoder.service:DecoderService",)


async def test_every_event_stored_before_the_block_ends_reaches_the_callback(tmp_path: Path) -> None:
    async with EmbeddedPipeline(Settings(instance="watch"), tmp_path, services=DECODER_ONLY) as pipeline:
        bus = pipeline.bus
        earlier = event_pb2.Event(id="before", type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="c")
        await bus.publish_event(earlier)  # stored before the watch: not replayed
        handled: list[str] = []
        reached = asyncio.Event()

        async def slow(event: event_pb2.Event) -> None:
            await reached.wait()  # a callback still busy when the block ends
            handled.append(event.id)

        async def delivered() -> bool:
            last = (await bus.js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
            consumers = await bus.js.consumers_info(subjects.EVENTS_STREAM)
            return bool(consumers) and all(c.delivered.stream_seq == last for c in consumers)

        async def release_once_delivered() -> None:
            await wait_for(delivered, 30, "every event delivered to the watch")
            reached.set()

        ids = [f"e{i}" for i in range(20)]
        async with pipeline.watch_events(slow):
            for event_id in ids:
                event = event_pb2.Event(id=event_id, type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="c")
                await bus.publish_event(event)
            releasing = asyncio.create_task(release_once_delivered())
        await releasing
        assert handled == ids


async def test_a_failing_callback_does_not_hold_the_end_of_the_block(tmp_path: Path) -> None:
    """``camsight run --json | head -1``: the printer fails on every later event; the run
    still ends at once instead of waiting for events that will never be handled."""
    async with EmbeddedPipeline(Settings(instance="watch"), tmp_path, services=DECODER_ONLY) as pipeline:
        failed: list[str] = []

        def broken_pipe(event: event_pb2.Event) -> None:
            failed.append(event.id)
            raise BrokenPipeError

        async with asyncio.timeout(30):  # the block's own wait would be an hour
            async with pipeline.watch_events(broken_pipe, settle_s=3600):
                event = event_pb2.Event(id="e", type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="c")
                await pipeline.bus.publish_event(event)
        assert failed == ["e"]
