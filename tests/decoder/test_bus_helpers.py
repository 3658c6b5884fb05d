"""The generic bus helpers the decoder relies on, against a real nats-server:
ack-advisory pacing (camsight.bus.pacing) and TTL leases (camsight.bus.leases)."""

from __future__ import annotations

import asyncio

import pytest
from camsight.bus import Bus, subjects
from camsight.bus.leases import LeaseTable, rendezvous_owner
from camsight.bus.pacing import FOLLOWER, AckPacer, subject_matches
from helpers import wait_for
from nats.js.api import AckPolicy, ConsumerConfig


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("frames.>", "frames.cam1", True),
        ("frames.*", "frames.cam1", True),
        ("frames.cam1", "frames.cam1", True),
        ("frames.cam2", "frames.cam1", False),
        ("frames.>", "frames", False),
        ("frames.*", "frames.a.b", False),
        ("detections.*.cam1", "detections.x.cam1", True),
    ],
)
def test_subject_matches(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


async def _pull(
    bus: Bus,
    durable: str,
    filter_subject: str = "frames.>",
    sample: str | None = "100%",
    metadata: dict[str, str] | None = None,
):
    return await bus.js.pull_subscribe(
        filter_subject,
        durable=durable,
        stream=subjects.FRAMES_STREAM,
        config=ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            sample_freq=sample,
            filter_subject=filter_subject,
            metadata=metadata,
        ),
    )


async def test_channel_waits_for_consumers_then_keeps_window(bus: Bus) -> None:
    pacer = AckPacer(bus, subjects.FRAMES_STREAM, resync_s=0.3)
    await pacer.start()
    channel = pacer.channel(subjects.frames("cam1"), window=2)
    first = asyncio.create_task(channel.wait_turn())
    await wait_for(lambda: channel.waiting_for_consumers, 5, "waiting for analyzers")
    assert not first.done()
    # A consumer without full sampling does not pace; one with it does.
    await _pull(bus, "unsampled", sample=None)
    sub = await _pull(bus, "slow")
    await asyncio.wait_for(first, 5)
    assert pacer.consumers_for(subjects.frames("cam1")) == {"slow"}
    for i in range(2):
        await channel.wait_turn()
        ack = await bus.publish(subjects.frames("cam1"), str(i).encode())
        channel.published(ack.seq)
    third = asyncio.create_task(channel.wait_turn())
    await asyncio.sleep(0)
    assert not third.done() and channel.in_flight == 2
    msgs = await sub.fetch(1, timeout=2)
    await msgs[0].ack()
    await asyncio.wait_for(third, 5)
    assert channel.in_flight == 1
    msgs = await sub.fetch(1, timeout=2)
    await msgs[0].ack()
    await asyncio.wait_for(channel.drain(), 5)
    await pacer.close()


async def test_window_spans_from_the_oldest_unacked_message(bus: Bus) -> None:
    # Acks out of order (a replica holds the first message, its neighbours are acked):
    # the window bounds how far publishing may run ahead of the held message, because
    # FRAMES evicts the oldest messages of a subject whatever their acks.
    sub = await _pull(bus, "replicas")
    pacer = AckPacer(bus, subjects.FRAMES_STREAM, resync_s=5)
    await pacer.start()
    channel = pacer.channel(subjects.frames("cam1"), window=3)
    for i in range(3):
        await asyncio.wait_for(channel.wait_turn(), 5)
        channel.published((await bus.publish(subjects.frames("cam1"), str(i).encode())).seq)
    held, *others = await sub.fetch(3, timeout=2)
    for msg in others:
        await msg.ack()
    await wait_for(lambda: len(channel._inflight) == 1, 5, "the two later messages acked")
    assert channel.in_flight == 3 and not channel.ready()
    fourth = asyncio.create_task(channel.wait_turn())
    await asyncio.sleep(0)  # let it start waiting
    assert not fourth.done()
    await held.ack()
    await asyncio.wait_for(fourth, 5)
    assert channel.in_flight == 0
    await pacer.close()


async def test_lost_advisories_are_recovered_from_the_ack_floor(bus: Bus) -> None:
    sub = await _pull(bus, "det")
    pacer = AckPacer(bus, subjects.FRAMES_STREAM, resync_s=0.2)
    await pacer.start()
    channel = pacer.channel(subjects.frames("cam1"), window=1)
    # Stop listening to ack advisories: only the resync can see progress.
    await pacer._subs[0].unsubscribe()
    ack = await bus.publish(subjects.frames("cam1"), b"x")
    channel.published(ack.seq)
    (msg,) = await sub.fetch(1, timeout=2)
    await msg.ack_sync()
    await asyncio.wait_for(channel.wait_turn(), 5)
    assert channel.in_flight == 0
    await pacer.close()


async def test_deleted_consumer_no_longer_paces(bus: Bus) -> None:
    await _pull(bus, "a")
    await _pull(bus, "b")
    pacer = AckPacer(bus, subjects.FRAMES_STREAM, resync_s=5)
    await pacer.start()
    channel = pacer.channel(subjects.frames("cam1"), window=1)
    ack = await bus.publish(subjects.frames("cam1"), b"x")
    channel.published(ack.seq)
    await bus.js.delete_consumer(subjects.FRAMES_STREAM, "a")
    await bus.js.delete_consumer(subjects.FRAMES_STREAM, "b")
    await wait_for(lambda: channel.in_flight == 0, 5, "deleted consumers forgotten")
    await pacer.close()


async def test_a_follower_paces_but_alone_starts_nothing(bus: Bus) -> None:
    # Behavior's consumer (decision 0079): it holds the window like an analyzer, but a
    # subject only it reads waits for an analyzer.
    follower = await _pull(bus, "behavior-frames-0", "frames.cam1", metadata=dict(FOLLOWER))
    pacer = AckPacer(bus, subjects.FRAMES_STREAM, resync_s=0.3)
    await pacer.start()
    channel = pacer.channel(subjects.frames("cam1"), window=2)
    first = asyncio.create_task(channel.wait_turn())
    await wait_for(lambda: channel.waiting_for_consumers, 5, "waiting for analyzers")
    assert not first.done() and not channel.ready()
    analyzer = await _pull(bus, "det")
    await asyncio.wait_for(first, 5)
    for i in range(2):
        await channel.wait_turn()
        channel.published((await bus.publish(subjects.frames("cam1"), str(i).encode())).seq)
    for msg in await analyzer.fetch(2, timeout=2):
        await msg.ack()
    await wait_for(lambda: len(channel._inflight[next(iter(channel._inflight))][1]) == 1, 5, "analyzer acks")
    assert channel.in_flight == 2 and not channel.ready()  # the follower has acked nothing
    held = await follower.fetch(2, timeout=2)
    await held[0].ack()
    await wait_for(lambda: channel.in_flight == 1, 5, "the follower's ack")
    await held[1].ack()
    await asyncio.wait_for(channel.drain(), 5)
    await pacer.close()


def test_rendezvous_spreads_and_moves_only_the_leavers_items() -> None:
    members = ["a", "b", "c"]
    items = [f"cam{i}" for i in range(300)]
    owners = {item: rendezvous_owner(item, members) for item in items}
    counts = {m: sum(1 for o in owners.values() if o == m) for m in members}
    assert min(counts.values()) > 60
    after = {item: rendezvous_owner(item, ["a", "b"]) for item in items}
    assert all(after[i] == owners[i] for i in items if owners[i] != "c")
    assert rendezvous_owner("x", []) is None


async def test_lease_is_exclusive_and_expires_with_its_holder(bus: Bus) -> None:
    one = await LeaseTable.open(bus, "test_leases", "one", ttl=1.0)
    two = await LeaseTable.open(bus, "test_leases", "two", ttl=1.0)
    await one.heartbeat()
    await two.heartbeat()
    assert await one.members() == ["one", "two"]
    assert await one.claim("cam1")
    assert not await two.claim("cam1")
    assert await one.renew("cam1")
    assert await two.holder_of("cam1") == "one"
    await one.release("cam1")
    assert await two.claim("cam1")
    assert not await one.renew("cam1")
    # "two" dies: no more renewals or heartbeats; the TTL hands the lease over.
    await wait_for(lambda: one.claim("cam1"), 5, "lease expiry")
    await wait_for(lambda: _members_are(one, ["one"]), 5, "heartbeat expiry")
    # "two" noticed nothing, but its own clock says its lease is no longer valid.
    assert not two.valid("cam1")


async def test_a_member_that_leaves_is_not_counted_even_before_its_ttl(bus: Bus) -> None:
    # A long TTL: only the withdrawn heartbeat (a delete marker, still listed by the
    # stream's per-subject counts) can make "two" disappear within this test.
    one = await LeaseTable.open(bus, "test_leave", "one", ttl=60.0)
    two = await LeaseTable.open(bus, "test_leave", "two", ttl=60.0)
    three = await LeaseTable.open(bus, "test_leave", "three", ttl=60.0)
    for table in (one, two, three):
        await table.heartbeat()
    assert await one.claim("cam1")  # leases share the bucket and are not members
    assert await one.members() == ["one", "three", "two"]
    await two.leave()
    assert await one.members() == ["one", "three"]
    await two.heartbeat()  # back again
    assert await three.members() == ["one", "three", "two"]


async def test_a_lost_lease_bucket_is_created_again_and_no_lease_changes_hands(bus: Bus) -> None:
    # A memory bucket: a nats-server restarted without a cluster comes back without it.
    one = await LeaseTable.open(bus, "test_lost", "one", ttl=60.0)
    two = await LeaseTable.open(bus, "test_lost", "two", ttl=60.0)
    for table in (one, two):
        await table.heartbeat()
    assert await one.claim("cam1") and await two.members() == ["one", "two"]
    await bus.js.delete_stream("KV_test_lost")
    await two.heartbeat()  # the first to beat creates the bucket again
    assert await two.members() == ["two"]  # "one" has not beaten into it yet...
    assert not await two.claim("cam1")  # ...so "two" claims nothing it did not hold, for a TTL
    assert await one.renew("cam1")  # while "one" takes its lease back
    assert await two.holder_of("cam1") == "one"
    await one.heartbeat()
    assert await two.members() == ["one", "two"]


async def _members_are(table: LeaseTable, expected: list[str]) -> bool:
    await table.heartbeat()
    return await table.members() == expected
