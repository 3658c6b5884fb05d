"""Least privilege on the bus: every service runs as its own NATS user, and no user can do more.

Two layouts, both with the users :mod:`camsight.natsauth` generates:

* a cluster: each service a ``camsight serve`` process connected as its own
  user with ``nats.declare_topology: false`` (they wait, not ready), then
  ``camsight topology`` as the topology user declares the streams;
* embedded mode (:class:`camsight.run.pipeline.EmbeddedPipeline`, what
  ``camsight run`` uses): one process, one connection per service.

Both must work without a single permissions violation in the server log;
then generated credentials are used directly and refused what their role has
no business doing, reading other users' reply inboxes included (each user has
its own inbox prefix, ``_INBOX.<user>``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
import pytest
import yaml
from camsight.bus import Bus, connect, subjects
from camsight.cameras import CameraConfig, Rule, RuleType
from camsight.config import NatsSettings, Settings, StreamSettings
from camsight.natsauth import TOPOLOGY_ROLE, ServiceUser, authorization, credentials, service_users
from camsight.natsserver import EmbeddedNats
from camsight.run.pipeline import EmbeddedPipeline
from camsight.v1 import event_pb2, identity_pb2
from helpers import sample_video, wait_for
from nats.aio.msg import Msg
from nats.js.api import StreamConfig
from processes import ServiceProcess
from reliability_support import system_settings

pytestmark = pytest.mark.slow

TOPOLOGY_TIMEOUT_S = 20
"""``camsight topology --timeout`` in these tests: a refused user must fail well before it."""
SERVICE_NAMES = ("decoder", "detector", "face", "behavior", "query")
REFUSED = (nats.errors.Error, nats.js.errors.Error, TimeoutError)


@pytest.fixture
def users() -> dict[str, ServiceUser]:
    return service_users([*SERVICE_NAMES, "controller", TOPOLOGY_ROLE])


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


def violations(log_file: Path | None) -> list[str]:
    assert log_file is not None
    return [line for line in log_file.read_text().splitlines() if "Violation" in line]


def topology_cli(server: EmbeddedNats, user: ServiceUser, workdir: Path) -> subprocess.CompletedProcess[str]:
    """``camsight topology`` in its own process, as ``user``."""
    config = workdir / f"topology-{user.service}.yaml"
    config.write_text(
        yaml.safe_dump({"nats": {"servers": [server.url], **credentials(user)}, "log": {"format": "text"}})
    )
    command = ["topology", "--config", str(config), "--timeout", str(TOPOLOGY_TIMEOUT_S)]
    return subprocess.run(
        [sys.executable, "-m", "camsight", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )


def monitor(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return dict(json.load(resp))


def readyz(process: ServiceProcess) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.http_port}/readyz", timeout=1) as resp:
            return str(json.load(resp)["reason"])
    except urllib.error.HTTPError as exc:
        return str(json.load(exc)["reason"])
    except (urllib.error.URLError, OSError):
        return ""


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
        nats_section = {"servers": [server.url], "reconnect_wait_s": 0.2, "declare_topology": False}
        settings = {
            "instance": "lp",
            "nats": nats_section | credentials(users[name]),
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


async def test_services_wait_for_the_topology_job_then_run_with_no_violation(
    secured: EmbeddedNats, users: dict[str, ServiceUser], admin: ServiceUser, tmp_path: Path
) -> None:
    bus = await connect_as(secured, admin)
    try:
        async with running(secured, users, tmp_path) as processes:
            # No service may declare streams: each waits, not ready, naming what is missing.
            for process in processes:
                await wait_for(lambda p=process: "waiting for the topology" in readyz(p), 60, process.name)
            declared = await asyncio.to_thread(topology_cli, secured, users[TOPOLOGY_ROLE], tmp_path)
            assert declared.returncode == 0, declared.stderr[-2000:]
            assert "topology declared: FRAMES" in declared.stdout
            await wait_for(lambda: all(p.ready() for p in processes), 60, "every service ready")
            # Frames -> faces -> behavior (with a snapshot) -> query, each hop as its own user.
            await wait_for(lambda: indexed(tmp_path / "data"), 60, "an unknown-face event indexed")
            snapshots = await bus.object_store(subjects.SNAPSHOTS_STORE)
            assert await snapshots.list()
            # Enrollment as the query service sends it: the face service's reply reaches the
            # query user's own inbox through allow_responses (it has no right on inboxes).
            query = await connect_as(secured, users["query"])
            try:
                reply = await query.nc.request(
                    subjects.FACE_ENROLL_SUBJECT,
                    identity_pb2.EnrollRequest(identity_id="x").SerializeToString(),
                    20,
                )
                assert reply.subject.startswith(f"{users['query'].inbox_prefix}.")
                assert identity_pb2.EnrollReply.FromString(reply.data).error_code == "INVALID_ARGUMENT"
            finally:
                await query.close()
    finally:
        await bus.close()
    assert violations(secured.log_file) == []


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


async def assert_inboxes_are_private(
    server: EmbeddedNats, users: dict[str, ServiceUser], decoder: Bus, owner: Bus
) -> None:
    """The gallery, as the face service's watch receives it on its own inbox, cannot be
    read by the decoder's credentials: subscribing to every inbox, or to the face
    service's, is refused by the server (the decoder's client is told, the server logs a
    subscription violation) and delivers nothing while an unrestricted witness sees the
    face service's inbox traffic."""
    face_bus = await connect_as(server, users["face"])
    snooped: list[Msg] = []
    witnessed: list[Msg] = []

    async def snoop(msg: Msg) -> None:
        snooped.append(msg)

    async def witness(msg: Msg) -> None:
        witnessed.append(msg)

    face_inboxes = f"{users['face'].inbox_prefix}.>"
    try:
        for subject in ("_INBOX.>", face_inboxes):
            await decoder.nc.subscribe(subject, cb=snoop)
        watching = await owner.nc.subscribe(face_inboxes, cb=witness)
        await decoder.nc.flush()
        await owner.nc.flush()
        watcher = await (await face_bus.kv(subjects.GALLERY_BUCKET)).watch("alice")
        await (await owner.kv(subjects.GALLERY_BUCKET)).put(
            "alice", identity_pb2.IdentityRecord().SerializeToString()
        )
        delivered = f"$KV.{subjects.GALLERY_BUCKET}.alice"
        await wait_for(
            lambda: any(m.subject == delivered for m in witnessed), 10, "the face watch's delivery"
        )
        entry = None
        while entry is None:  # the watch's first update is None: "no more history"
            entry = await watcher.updates(timeout=10)
        assert entry.key == "alice"
        await decoder.nc.flush()  # anything delivered to the decoder before this has arrived
        assert snooped == []
        await watching.unsubscribe()
        await watcher.stop()
    finally:
        await face_bus.close()

    def refused(subject: str) -> bool:
        return any(
            f"user:{users['decoder'].user}" in line
            and f'Subscription Violation - Subject "{subject}"' in line
            for line in violations(server.log_file)
        )

    await wait_for(
        lambda: refused("_INBOX.>") and refused(face_inboxes), 10, "the refusals in the server log"
    )


async def assert_decoder_is_fenced(server: EmbeddedNats, users: dict[str, ServiceUser], owner: Bus) -> None:
    """The decoder's credentials do what the decoder does, and nothing else."""
    decoder = await connect_as(server, users["decoder"])
    try:
        await assert_inboxes_are_private(server, users, decoder, owner)  # (also puts "alice")
        # What the decoder does is allowed ...
        await decoder.publish(subjects.frames("cam"), b"frame")  # (the default timeout: allowed, acked)
        # (it reads a file camera's last frame back when it takes the camera over)
        assert await decoder.direct_get(subjects.FRAMES_STREAM, last_on=subjects.frames("cam")) == b"frame"
        status = event_pb2.Event(id="s", type=event_pb2.EVENT_TYPE_CAMERA_STATUS, camera_id="cam")
        await decoder.publish_event(status)
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
            # (the status event "s" is there: a refusal, not "no message")
            await js.get_last_msg(subjects.EVENTS_STREAM, subjects.events(status.type, "cam"), direct=True)
        with pytest.raises(REFUSED):
            await decoder.nc.request(subjects.FACE_ENROLL_SUBJECT, b"", timeout=1)
        stored = [
            event_pb2.Event.FromString(d).id for d in await owner.read_stream(subjects.EVENTS_STREAM, ">")
        ]
        assert "s" in stored and "forged" not in stored
    finally:
        await decoder.close()


async def test_decoder_credentials_cannot_publish_events_or_read_the_gallery(
    secured: EmbeddedNats, users: dict[str, ServiceUser], admin: ServiceUser
) -> None:
    topology = await connect_as(secured, users[TOPOLOGY_ROLE])
    await topology.ensure_topology()
    await topology.close()
    owner = await connect_as(secured, admin)
    try:
        await assert_decoder_is_fenced(secured, users, owner)
    finally:
        await owner.close()
    assert any("Violation" in line and "camsight-decoder" in line for line in violations(secured.log_file))


async def test_no_service_user_can_create_update_delete_or_purge_a_stream(
    secured: EmbeddedNats, users: dict[str, ServiceUser]
) -> None:
    """Only the topology role changes streams (and it cannot delete or purge them)."""
    topology = await connect_as(secured, users[TOPOLOGY_ROLE])
    await topology.ensure_topology()
    services = [u for u in users.values() if u.service != TOPOLOGY_ROLE]
    buses = [await connect_as(secured, u) for u in services]
    try:
        for bus in buses:
            await bus.check_topology()  # each may look

        async def refused(bus: Bus) -> list[bool]:
            js = bus.nc.jetstream(timeout=1)
            events = (await js.stream_info(subjects.EVENTS_STREAM)).config
            attempts = [
                js.add_stream(StreamConfig(name="ROGUE", subjects=["rogue.>"])),
                js.update_stream(replace(events, description="changed")),
                js.delete_stream(subjects.EVENTS_STREAM),
                js.purge_stream(subjects.EVENTS_STREAM),
            ]
            outcomes = await asyncio.gather(*attempts, return_exceptions=True)
            return [isinstance(o, REFUSED) for o in outcomes]

        # Concurrently: each refusal costs a request timeout.
        results = await asyncio.gather(*(refused(bus) for bus in [*buses, topology]))
        for user, outcome in zip([*services, users[TOPOLOGY_ROLE]], results, strict=True):
            updates = user.service == TOPOLOGY_ROLE
            assert outcome == [True, not updates, True, True], user.service
        info = await topology.js.stream_info(subjects.EVENTS_STREAM)
        assert info.config.description == "changed"  # the topology role's update went through
    finally:
        for bus in [*buses, topology]:
            await bus.close()


async def test_topology_command_is_idempotent_and_needs_the_topology_role(
    secured: EmbeddedNats, users: dict[str, ServiceUser], admin: ServiceUser, tmp_path: Path
) -> None:
    first = await asyncio.to_thread(topology_cli, secured, users[TOPOLOGY_ROLE], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    owner = await connect_as(secured, admin)
    try:
        await owner.publish_event(
            event_pb2.Event(id="kept", type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="c")
        )
        before = {s: (await owner.js.stream_info(s)).config for s in ("EVENTS", "KV_cameras", "OBJ_faces")}
        again = await asyncio.to_thread(topology_cli, secured, users[TOPOLOGY_ROLE], tmp_path)
        assert again.returncode == 0, again.stderr[-2000:]
        after = {s: (await owner.js.stream_info(s)).config for s in before}
        assert after == before
        assert (await owner.js.stream_info(subjects.EVENTS_STREAM)).state.messages == 1
        await owner.check_topology()
    finally:
        await owner.close()
    # A service's user may not change the topology: the command says so and fails, at once
    # (the server's permissions violation), not after its --timeout of unanswered requests.
    began = time.monotonic()
    refused = await asyncio.to_thread(topology_cli, secured, users["query"], tmp_path)
    assert refused.returncode == 1
    error = refused.stderr.strip().splitlines()[-1]
    assert "this NATS user is not allowed to create and update camsight's streams" in error
    assert "permissions violation" in error
    assert time.monotonic() - began < TOPOLOGY_TIMEOUT_S


# -- embedded mode ------------------------------------------------------------------


async def test_embedded_mode_connects_each_service_as_its_own_user(tmp_path: Path) -> None:
    settings = system_settings("nats://unused:4222", tmp_path / "data")
    stranger = Rule(id="stranger", type=RuleType.UNKNOWN_FACE)
    camera = CameraConfig(
        id="carphone", source=str(sample_video("carphone_pristine.mp4")), fps=5, rules=[stranger]
    )
    pipeline = EmbeddedPipeline(
        Settings(streams=settings.streams, services=settings.services),
        tmp_path / "data",
        nats_log=tmp_path / "nats.log",
    )
    async with pipeline:
        # One authenticated connection per service, plus the pipeline's own (admin).
        connz = await asyncio.to_thread(monitor, f"{pipeline.nats.monitor_url}/connz?auth=true&subs=1")
        connected = {c["authorized_user"] for c in connz["connections"]}
        assert connected == {f"camsight-{name}" for name in SERVICE_NAMES} | {"camsight-admin"}
        # Each connection's reply inboxes lie below its own user's prefix.
        for conn in connz["connections"]:
            inboxes = [s for s in conn.get("subscriptions_list", []) if s.startswith("_INBOX")]
            own = f"_INBOX.{conn['authorized_user']}."
            assert inboxes and all(s.startswith(own) for s in inboxes), (conn["authorized_user"], inboxes)
        for service in pipeline.runtime.services if pipeline.runtime else []:
            assert service.ctx.settings.nats.user == f"camsight-{service.name}"

        events: list[event_pb2.Event] = []
        async with pipeline.watch_events(events.append):
            await pipeline.add_cameras([camera])
            await pipeline.wait_finished(["carphone"])
        assert any(e.type == event_pb2.EVENT_TYPE_UNKNOWN_FACE for e in events)
        assert violations(pipeline.nats.log_file) == []
        await assert_decoder_is_fenced(pipeline.nats, pipeline.users, pipeline.bus)
        fenced = violations(pipeline.nats.log_file)
        assert fenced and all("user:camsight-decoder" in line for line in fenced)
    # Passwords live in memory (and the server's private config), never in its log.
    log = (tmp_path / "nats.log").read_text()
    for user in [*pipeline.users.values(), pipeline.admin]:
        assert user.password not in log
