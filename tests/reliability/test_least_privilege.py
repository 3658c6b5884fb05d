"""Least privilege on the bus: every service runs as its own NATS user, and no user can do more.

The whole pipeline runs with the users :mod:`camsight.natsauth` generates
(each service a ``camsight serve`` process connected as its own user, as in
a cluster) and must work without a single permissions violation;
then the decoder's credentials are used directly and refused what the
decoder has no business doing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest
from camsight.bus import Bus, connect, subjects
from camsight.config import NatsSettings, StreamSettings
from camsight.natsauth import ServiceUser, authorization, credentials, service_users
from camsight.natsserver import EmbeddedNats
from camsight.v1 import event_pb2, identity_pb2
from helpers import sample_video, wait_for
from processes import ServiceProcess
from reliability_support import system_settings

pytestmark = pytest.mark.slow

SERVICE_NAMES = ("decoder", "detector", "face", "behavior", "query")
REFUSED = (nats.errors.Error, nats.js.errors.Error, TimeoutError)


@pytest.fixture
def users() -> dict[str, ServiceUser]:
    return service_users(["decoder", "detector", "face", "behavior", "query"])


@pytest.fixture
def admin() -> ServiceUser:
    return service_users(["controller"], prefix="admin-")["controller"]


@pytest.fixture
def secured(tmp_path: Path, users: dict[str, ServiceUser], admin: ServiceUser) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(
        store_dir=tmp_path / "js", log_file=tmp_path / "nats.log", authorization=authorization(users, admin)
    )
    server.start()
    yield server
    server.stop()


async def connect_as(server: EmbeddedNats, user: ServiceUser) -> Bus:
    settings = NatsSettings(servers=[server.url], connect_timeout_s=2, **credentials(user))
    return await connect(settings, StreamSettings(), name=f"test-as-{user.service}")


@asynccontextmanager
async def running(
    server: EmbeddedNats, users: dict[str, ServiceUser], root: Path
) -> AsyncIterator[list[ServiceProcess]]:
    """Each service as its own ``camsight serve`` process, connected as its own user."""
    camera = {
        "id": "carphone",
        "source": str(sample_video("carphone_pristine.mp4")),
        "fps": 5,
        "rules": [{"id": "stranger", "type": "unknown_face"}],
    }
    sections = system_settings(server.url, root / "data").services
    processes = []
    for name in SERVICE_NAMES:
        (root / name).mkdir()
        settings = {
            "instance": "lp",
            "nats": {"servers": [server.url], "reconnect_wait_s": 0.2, **credentials(users[name])},
            "data_dir": str(root / "data"),
            "log": {"level": "INFO"},
            "cameras": [camera] if name == "decoder" else [],
            "services": {name: sections.get(name, {})},
        }
        processes.append(ServiceProcess(name, root / name, settings).start())
    try:
        yield processes
    finally:
        codes = {p.name: await p.stop() for p in processes}
        assert set(codes.values()) == {0}, codes


def violations(server: EmbeddedNats) -> list[str]:
    assert server.log_file is not None
    return [line for line in server.log_file.read_text().splitlines() if "Violation" in line]


async def test_the_pipeline_runs_with_one_user_per_service_and_no_violation(
    secured: EmbeddedNats, users: dict[str, ServiceUser], admin: ServiceUser, tmp_path: Path
) -> None:
    bus = await connect_as(secured, admin)
    try:
        async with running(secured, users, tmp_path) as processes:
            await wait_for(lambda: all(p.ready() for p in processes), 60, "every service ready")
            # Frames -> faces -> behavior (with a snapshot) -> query, each hop as its own user.
            await wait_for(lambda: indexed(tmp_path / "data"), 60, "an unknown-face event indexed")
            snapshots = await bus.object_store(subjects.SNAPSHOTS_STORE)
            assert await snapshots.list()
            reply = await bus.nc.request(
                subjects.FACE_ENROLL_SUBJECT,
                identity_pb2.EnrollRequest(identity_id="x").SerializeToString(),
                20,
            )
            assert identity_pb2.EnrollReply.FromString(reply.data).error_code == "INVALID_ARGUMENT"
    finally:
        await bus.close()
    assert violations(secured) == []


def indexed(data: Path) -> bool:
    import sqlite3

    from camsight.query.settings import default_index_path

    path = default_index_path(data)
    if not path.exists():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            query = "SELECT COUNT(*) FROM events WHERE type = ?"
            return int(conn.execute(query, (event_pb2.EVENT_TYPE_UNKNOWN_FACE,)).fetchone()[0]) > 0
    except sqlite3.OperationalError:
        return False


async def test_decoder_credentials_cannot_publish_events_or_read_the_gallery(
    secured: EmbeddedNats, users: dict[str, ServiceUser], admin: ServiceUser
) -> None:
    owner = await connect_as(secured, admin)
    await owner.ensure_topology()
    gallery = await owner.kv(subjects.GALLERY_BUCKET)
    await gallery.put("alice", identity_pb2.IdentityRecord().SerializeToString())
    decoder = await connect_as(secured, users["decoder"])
    try:
        # What the decoder does is allowed ...
        await decoder.publish(subjects.frames("cam"), b"frame", timeout=2)
        status = event_pb2.Event(id="s", type=event_pb2.EVENT_TYPE_CAMERA_STATUS, camera_id="cam")
        await decoder.publish_event(status, timeout=2)
        # ... anything else is refused.
        fake = event_pb2.Event(id="forged", type=event_pb2.EVENT_TYPE_FACE_RECOGNIZED, camera_id="cam")
        js = decoder.nc.jetstream(timeout=1)  # a refused API call shows as a timeout: keep it short
        with pytest.raises(REFUSED):
            await decoder.publish_event(fake, timeout=1)
        with pytest.raises(REFUSED):
            await (await js.key_value(subjects.GALLERY_BUCKET)).get("alice")
        with pytest.raises(REFUSED):
            await js.add_consumer("KV_gallery", durable_name="steal")
        with pytest.raises(REFUSED):
            await js.delete_stream(subjects.EVENTS_STREAM)
        with pytest.raises(REFUSED):
            await decoder.nc.request(subjects.FACE_ENROLL_SUBJECT, b"", timeout=1)
        stored = [
            event_pb2.Event.FromString(d).id for d in await owner.read_stream(subjects.EVENTS_STREAM, ">")
        ]
        assert "s" in stored and "forged" not in stored
    finally:
        await decoder.close()
        await owner.close()
    assert any("Violation" in line and "camsight-decoder" in line for line in violations(secured))
