"""The service runtime: health endpoints, not-ready while NATS is away, graceful drain."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from camsight.bus import Bus, PullWorker, WorkerConfig, connect, each
from camsight.bus.topology import TopologyMissingError
from camsight.cli.serve import ServiceName
from camsight.config import HttpSettings, NatsSettings, Settings, StreamSettings
from camsight.natsserver import EmbeddedNats
from camsight.runtime import Service, ServiceContext
from camsight.runtime.logs import JsonFormatter, TextFormatter
from camsight.runtime.ports import HTTP_PORTS, SHARED_HTTP_PORT, http_port
from camsight.runtime.serve import Runtime
from camsight.v1 import event_pb2
from helpers import wait_for
from nats.aio.msg import Msg


class Recorder(Service):
    """A minimal real service: consumes EVENTS and records the ids it saw."""

    name = "recorder"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.seen: list[str] = []
        self.drained = False

    async def start(self) -> None:
        config = WorkerConfig(
            stream="EVENTS", durable="recorder", filter_subjects=["events.>"], fetch_timeout=0.2
        )
        self.worker = PullWorker(self.ctx.bus, config, each(self._handle))
        await self.worker.subscribe()
        self.set_ready(True)

    async def _handle(self, msg: Msg) -> None:
        self.seen.append(event_pb2.Event.FromString(msg.data).id)

    async def run(self) -> None:
        task = asyncio.create_task(self.worker.run())
        await self.ctx.stopping.wait()
        await self.worker.stop()
        await task
        self.drained = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def test_not_ready_until_nats_comes_then_serves_and_drains(tmp_path: Path) -> None:
    nats_port = free_port()
    settings = Settings(
        nats=NatsSettings(
            servers=[f"nats://127.0.0.1:{nats_port}"], reconnect_wait_s=0.1, reconnect_jitter_s=0
        ),
        http=HttpSettings(host="127.0.0.1", port=0),
    )
    runtime = Runtime(settings, [Recorder], name="recorder")
    task = asyncio.create_task(runtime.run())
    base = ""

    def started() -> bool:
        return runtime.health.port != 0

    await wait_for(started, what="health endpoint")
    base = f"http://127.0.0.1:{runtime.health.port}"
    assert await get(f"{base}/healthz") == (200, '{"status": "ok"}')
    status, body = await get(f"{base}/readyz")
    assert status == 503 and "connecting to NATS" in body

    server = EmbeddedNats(store_dir=tmp_path / "js", port=nats_port)
    await asyncio.to_thread(server.start)
    try:

        async def ready() -> bool:
            return (await get(f"{base}/readyz"))[0] == 200

        await wait_for(ready, timeout=20, what="ready once NATS is up")
        await runtime.ctx.bus.publish_event(
            event_pb2.Event(id="e1", type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="c")
        )
        recorder = runtime.services[0]
        assert isinstance(recorder, Recorder)
        await wait_for(lambda: recorder.seen == ["e1"], what="event consumed")
        status, metrics = await get(f"{base}/metrics")
        assert status == 200 and 'camsight_bus_messages_handled_total{consumer="recorder"}' in metrics

        runtime.stop()
        assert await asyncio.wait_for(task, 10) == 0
        assert recorder.drained
    finally:
        await asyncio.to_thread(server.stop)


async def test_failing_service_exits_non_zero(nats_settings: NatsSettings) -> None:
    class Broken(Service):
        name = "broken"

        async def run(self) -> None:
            raise RuntimeError("boom")

    settings = Settings(nats=nats_settings, http=HttpSettings(host="127.0.0.1", port=0))
    assert await asyncio.wait_for(Runtime(settings, [Broken], name="broken").run(), 10) == 1


def test_bus_is_not_available_before_start() -> None:
    ctx = ServiceContext(settings=Settings())
    with pytest.raises(RuntimeError, match="not connected yet"):
        _ = ctx.bus


async def test_without_declare_topology_waits_not_ready_until_the_topology_exists(
    nats_settings: NatsSettings,
) -> None:
    """A service whose user may not create streams (declare_topology false) waits for
    `camsight topology` instead of failing, and says why it is not ready."""
    checking = nats_settings.model_copy(update={"declare_topology": False})
    settings = Settings(nats=checking, http=HttpSettings(host="127.0.0.1", port=0))
    runtime = Runtime(settings, [Recorder], name="recorder")
    task = asyncio.create_task(runtime.run())
    try:
        await wait_for(lambda: "waiting for the topology" in runtime.readiness()[1], 10, "waiting reason")
        assert "stream FRAMES does not exist" in runtime.readiness()[1]
        admin = await connect(nats_settings, StreamSettings(), name="topology")
        await admin.ensure_topology()
        await admin.close()
        await wait_for(lambda: runtime.readiness()[0], 10, "ready once the topology exists")
    finally:
        runtime.stop()
        assert await asyncio.wait_for(task, 10) == 0


async def test_a_restarted_nats_server_gets_the_topology_again_before_the_process_is_ready(
    tmp_path: Path,
) -> None:
    # Without a cluster it comes back without its memory streams (FRAMES): a process that
    # declares the topology declares it again after the lost connection, and is not ready
    # until then (decision 0083; the processes that only check it wait: test_one_server.py).
    port = free_port()
    server = EmbeddedNats(store_dir=tmp_path / "js", port=port).start()
    settings = Settings(
        nats=NatsSettings(servers=[server.url], reconnect_wait_s=0.1, reconnect_jitter_s=0),
        http=HttpSettings(host="127.0.0.1", port=0),
    )
    runtime = Runtime(settings, [Recorder], name="recorder")
    task = asyncio.create_task(runtime.run())
    try:
        await wait_for(lambda: runtime.readiness()[0], 20, "ready")
        server.stop()
        await wait_for(lambda: not runtime.readiness()[0], 10, "not ready without NATS")
        server = EmbeddedNats(store_dir=tmp_path / "js", port=port).start()
        await wait_for(lambda: runtime.readiness()[0], 20, "ready again")
        assert (await runtime.ctx.bus.js.stream_info("FRAMES")).config.storage == "memory"
    finally:
        runtime.stop()
        assert await asyncio.wait_for(task, 30) == 0
        server.stop()


async def test_check_topology_names_what_is_missing(bus: Bus) -> None:
    await bus.check_topology()  # the fixture declared everything
    await bus.js.delete_object_store("faces")
    with pytest.raises(TopologyMissingError, match="stream OBJ_faces does not exist"):
        await bus.check_topology()


def test_connections_must_name_hosted_services() -> None:
    with pytest.raises(ValueError, match=r"not hosted here.*: recordr"):
        Runtime(Settings(), [Recorder], name="r", connections={"recordr": NatsSettings()})


def test_each_service_has_its_own_default_health_port() -> None:
    defaults = {name: http_port(HttpSettings(), name) for name in ServiceName}
    assert len(set(defaults.values())) == len(defaults), defaults
    assert http_port(HttpSettings(), "run") == SHARED_HTTP_PORT
    assert http_port(HttpSettings(port=9000), "query") == 9000


def test_the_port_table_in_the_docs_is_the_code_s() -> None:
    deploy = (Path(__file__).parents[1] / "docs" / "deploy.md").read_text()
    for name, port in HTTP_PORTS.items():
        assert re.search(rf"^\| `{name}` \| {port} \|", deploy, re.M), (
            f"docs/deploy.md: no row for {name} {port}"
        )


@pytest.mark.parametrize(
    ("setting", "template"),
    [
        ("http.port", "http: {{host: 127.0.0.1, port: {port}}}\n"),
        (
            "services.query.port",
            "http: {{port: 0}}\nnats: {{servers: ['{nats}']}}\n"
            "services: {{query: {{host: 127.0.0.1, port: {port}}}}}\n",
        ),
    ],
)
def test_a_busy_port_is_one_line_naming_the_setting(
    tmp_path: Path, setting: str, template: str, nats_server: EmbeddedNats
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "c.yaml"
        config.write_text(template.format(port=port, nats=nats_server.url))
        done = subprocess.run(
            [sys.executable, "-m", "camsight", "serve", "query", "--config", str(config)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"camsight: {setting}: port {port} is already in use"), done.stderr
    assert last.endswith(f"set {setting}" + (" or CAMSIGHT_HTTP__PORT" if setting == "http.port" else ""))
    assert "Traceback" not in done.stderr


def test_text_logs_carry_the_same_fields_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    record = logging.makeLogRecord(
        {"name": "camsight.query.auth", "levelname": "WARNING", "msg": "refused an unknown token",
         "method": "/camsight.v1.EventService/ListEvents", "token": "ops team"}
    )  # fmt: skip
    text = TextFormatter().format(record)
    as_json = json.loads(JsonFormatter("query").format(record))
    assert text.endswith(
        'refused an unknown token method=/camsight.v1.EventService/ListEvents token="ops team"'
    )
    assert as_json["method"] == "/camsight.v1.EventService/ListEvents" and as_json["token"] == "ops team"
