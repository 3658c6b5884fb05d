"""The read-only role for applications outside camsight (``camsight-events-reader``).

It follows EVENTS with an ordered consumer and fetches snapshots, as docs/api.md shows;
everything else is refused: publishing (events, dead letters), frames, KV buckets, and
the services' own consumers (pulling from, replacing or deleting them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest
from camsight.bus import Bus, connect, subjects
from camsight.config import NatsSettings, StreamSettings
from camsight.natsauth import READER_ROLE, ServiceUser, admin_user, authorization, credentials, service_users
from camsight.natsserver import EmbeddedNats
from camsight.v1 import event_pb2
from helpers import wait_for
from nats.js.api import ConsumerConfig

REFUSED = (nats.errors.Error, nats.js.errors.Error, TimeoutError)


async def connect_as(server: EmbeddedNats, user: ServiceUser) -> Bus:
    settings = NatsSettings(servers=[server.url], connect_timeout_s=2, **credentials(user))
    return await connect(settings, StreamSettings(), name=f"test-as-{user.service}")


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedNats, Bus, Bus]]:
    """A server with the reader and an admin; the topology, one event, one snapshot, the
    query service's durable consumer. Yields (server, admin bus, reader bus)."""
    reader, admin = service_users([READER_ROLE])[READER_ROLE], admin_user()
    server = EmbeddedNats(
        store_dir=tmp_path / "js",
        log_file=tmp_path / "nats.log",
        authorization=authorization({"r": reader}, admin),
    ).start()
    owner = await connect_as(server, admin)
    await owner.ensure_topology()
    event = event_pb2.Event(
        id="e1", type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="cam", snapshot_id="e1.jpg"
    )
    await owner.publish_event(event)
    await (await owner.object_store(subjects.SNAPSHOTS_STORE)).put("e1.jpg", b"jpeg bytes")
    await owner.js.add_consumer(subjects.EVENTS_STREAM, ConsumerConfig(durable_name="query-x"))
    bus = await connect_as(server, reader)
    yield server, owner, bus
    await bus.close()
    await owner.close()
    server.stop()


async def test_reader_follows_events_and_fetches_snapshots(system: tuple[EmbeddedNats, Bus, Bus]) -> None:
    _, _, reader = system
    sub = await reader.js.subscribe(subjects.EVENTS_ALL, ordered_consumer=True)
    msg = await sub.next_msg(timeout=5)
    event = event_pb2.Event.FromString(msg.data)
    assert event.id == "e1" and msg.subject == "events.zone_enter.cam"
    assert msg.reply == "" or msg.reply.startswith("$JS.ACK.EVENTS.")  # ordered: nothing to ack
    await sub.unsubscribe()
    snapshot = await (await reader.object_store(subjects.SNAPSHOTS_STORE)).get(event.snapshot_id)
    assert snapshot.data == b"jpeg bytes"


async def test_reader_is_refused_everything_else(system: tuple[EmbeddedNats, Bus, Bus]) -> None:
    server, owner, reader = system
    js = reader.nc.jetstream(timeout=1)  # a refused API call shows as a timeout: keep it short
    forged = event_pb2.Event(id="forged", type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="cam")
    with pytest.raises(REFUSED):
        await js.publish(subjects.events(forged.type, "cam"), forged.SerializeToString(), timeout=1)
    with pytest.raises(REFUSED):
        await (await js.key_value(subjects.CAMERAS_BUCKET)).get("cam")
    with pytest.raises(REFUSED):
        await js.get_last_msg(subjects.FRAMES_STREAM, subjects.frames("cam"), direct=True)
    with pytest.raises(REFUSED):  # the query service's consumer: no pulling its messages away
        await (await js.pull_subscribe_bind("query-x", stream=subjects.EVENTS_STREAM)).fetch(1, timeout=1)
    with pytest.raises(REFUSED):  # ... nor replacing it
        await js.add_consumer(
            subjects.EVENTS_STREAM, ConsumerConfig(durable_name="query-x", deliver_subject="x")
        )
    with pytest.raises(REFUSED):  # ... nor deleting it
        await js.delete_consumer(subjects.EVENTS_STREAM, "query-x")
    await reader.nc.publish("deadletter.query", b"x")
    await reader.nc.subscribe(subjects.FRAMES_ALL)
    await reader.nc.flush()

    def violation(kind: str, subject: str) -> bool:
        assert server.log_file is not None
        text = server.log_file.read_text()
        return any(
            "user:camsight-events-reader" in line and f'{kind} Violation - Subject "{subject}"' in line
            for line in text.splitlines()
        )

    await wait_for(
        lambda: violation("Publish", "deadletter.query") and violation("Subscription", subjects.FRAMES_ALL),
        10,
        "the refusals in the server log",
    )
    stored = [event_pb2.Event.FromString(d).id for d in await owner.read_stream(subjects.EVENTS_STREAM, ">")]
    assert stored == ["e1"]
    assert (await owner.js.consumer_info(subjects.EVENTS_STREAM, "query-x")).num_pending == 1
