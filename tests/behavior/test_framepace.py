"""Behavior's frame follower on a real nats-server (decision 0079): a headers-only pacing
consumer per camera, acked as behavior gets past each frame, or when it is idle."""

from __future__ import annotations

import asyncio

import nats.js.errors
import pytest
from camsight.behavior.framepace import FrameFollower, Held, durable
from camsight.bus import Bus, subjects
from camsight.bus.pacing import FOLLOWER
from helpers import wait_for


async def ack_floor(bus: Bus, camera: str) -> int:
    """Every frame up to here is acknowledged."""
    info = await bus.js.consumer_info(subjects.FRAMES_STREAM, durable(camera))
    return info.ack_floor.stream_seq if info.ack_floor else 0


async def exists(bus: Bus, camera: str) -> bool:
    try:
        await bus.js.consumer_info(subjects.FRAMES_STREAM, durable(camera))
    except nats.js.errors.NotFoundError:
        return False
    return True


async def test_frames_are_acked_once_behavior_got_past_them_or_is_idle(bus: Bus) -> None:
    follower = FrameFollower(bus, inactive_s=60)
    follower.follow("cam")
    follower.follow("cam")  # again (a registry update): still one consumer, one fetcher
    await wait_for(lambda: exists(bus, "cam"), 10, "the camera's consumer")
    info = await bus.js.consumer_info(subjects.FRAMES_STREAM, durable("cam"))
    assert info.config.headers_only and info.config.sample_freq == "100%"
    assert FOLLOWER.items() <= (info.config.metadata or {}).items()
    assert info.config.filter_subject == subjects.frames("cam")
    seqs = [(await bus.publish(subjects.frames("cam"), b"jpeg" * 1000)).seq for _ in range(5)]
    await wait_for(lambda: "cam" in follower._held and len(follower._held["cam"].msgs) == 5, 10, "five held")
    assert all(msg.data == b"" for msg in follower._held["cam"].msgs.values())  # headers only
    try:
        await follower.done("cam", seqs[2])  # a result of the third frame processed
        assert sorted(follower._held["cam"].msgs) == seqs[3:]
        await wait_for(lambda: floor_is(bus, seqs[2]), 10, "the first three frames acked")
        await follower.done("cam", seqs[1])  # an earlier frame's result (another analyzer): nothing
        await follower.release_all()  # idle: no result is on its way for the last two
        await wait_for(lambda: floor_is(bus, seqs[4]), 10, "every frame acked")
        # A frame behavior is already past when it arrives is acked at once.
        await follower.done("cam", seqs[4] + 1)
        await bus.publish(subjects.frames("cam"), b"x")
        await wait_for(lambda: floor_is(bus, seqs[4] + 1), 10, "the late frame acked on arrival")
        await follower.unfollow("cam")  # the camera left the registry
        assert not await exists(bus, "cam")
    finally:
        await follower.close()


async def test_a_follower_stops_even_when_its_cancellation_is_lost(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's ``wait_for`` inside nats-py's ``next_msg`` returns a frame that lands
    as the cancellation does, and the cancellation is gone. Modelled here by never
    cancelling: the follower still stops, within a fetch, since it is not the camera's
    task any more. Before, it fetched for good and ``unfollow`` never returned (a stopping
    replica hung holding its lock)."""
    monkeypatch.setattr(FrameFollower, "_interrupt", staticmethod(lambda task: None))
    follower = FrameFollower(bus, inactive_s=60)
    follower.follow("cam")
    await wait_for(lambda: exists(bus, "cam"), 10, "the camera's consumer")
    async with asyncio.timeout(10):
        await follower.unfollow("cam")
    assert not await exists(bus, "cam")
    follower.follow("other")
    await wait_for(lambda: exists(bus, "other"), 10, "the other camera's consumer")
    async with asyncio.timeout(10):
        await follower.close()


async def floor_is(bus: Bus, seq: int) -> bool:
    return await ack_floor(bus, "cam") == seq


def test_held_frames_leave_oldest_first_whatever_order_they_came_in() -> None:
    # After a restart the previous process's frames come again (redelivered) behind new ones.
    held = Held()
    msgs = {seq: object() for seq in (7, 8, 9, 3, 4)}
    for seq, msg in msgs.items():
        held.add(seq, msg)  # stand-ins: only identity matters here
    again = object()
    held.add(8, again)  # a redelivery replaces the first, once
    assert held.upto(2) == []
    assert held.upto(7) == [msgs[3], msgs[4], msgs[7]]
    assert held.upto(100) == [again, msgs[9]]
    assert held.msgs == {}
