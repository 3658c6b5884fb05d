"""The CLI against a real query service (gRPC) and against a data folder (no server).

The commands run in a worker thread (they use blocking gRPC) while the
service keeps serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from camsight.bus import Bus, subjects
from camsight.cli import app
from camsight.v1 import analysis_pb2
from helpers import camsight_command, wait_for
from query_helpers import RunningQuery, make_event
from typer.testing import CliRunner


async def cli(*args: str) -> tuple[int, list[str], str]:
    """(exit code, stdout lines, stderr) of ``camsight ARGS``."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.stdout.splitlines(), result.stderr


def as_json(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines]


async def test_event_commands_over_grpc_and_on_a_data_folder(
    bus: Bus, query: RunningQuery, tmp_path: Path
) -> None:
    for n in range(3):
        event = make_event(n, camera_id="lobby" if n < 2 else "yard")
        if n == 2:
            event.direction = analysis_pb2.CROSSING_DIRECTION_OUT
            event.start_media_time.FromNanoseconds(12_500_000_000)
        await bus.publish_event(event)
    await wait_for(lambda: query.indexed() == 3, 10, "3 events indexed")
    server = ("--server", f"127.0.0.1:{query.service.port}")

    code, out, _ = await cli("events", "list", *server, "--json")
    assert code == 0 and [e["id"] for e in as_json(out)] == ["ev-00002", "ev-00001", "ev-00000"]
    code, out, _ = await cli(
        "events", "list", *server, "--json", "--limit", "1", "--order", "asc", "-f", "camera = lobby"
    )
    assert code == 0 and [e["id"] for e in as_json(out)] == ["ev-00000"]
    code, out, _ = await cli("events", "get", "ev-00001", *server, "--json")
    assert code == 0 and as_json(out)[0]["camera_id"] == "lobby" and len(out) == 1
    code, out, _ = await cli("events", "count", *server, "--json", "--group-by", "camera")
    assert code == 0 and {c["key"]: c["count"] for c in as_json(out)} == {"lobby": "2", "yard": "1"}
    code, out, _ = await cli("events", "list", *server)
    assert code == 0 and len(out) == 3 and "zone_enter" in out[0] and "ev-00002" in out[0]
    # The direction and media position columns: filled for ev-00002, blank for the others.
    assert " out " in out[0] and " 12.5s " in out[0]
    assert " out " not in out[1] and "s  zone_enter" not in out[1]
    code, out, _ = await cli(
        "events", "list", *server, "--json", "-f", "direction = out AND start_media_time > 12"
    )
    assert code == 0 and [e["id"] for e in as_json(out)] == ["ev-00002"]

    code, out, err = await cli("events", "list", *server, "-f", "camera =")
    assert code == 1 and not out and err.strip().startswith("camsight: INVALID_ARGUMENT: filter:")
    assert len(err.strip().splitlines()) == 1
    code, _, err = await cli("events", "get", "nope", *server)
    assert code == 1 and "NOT_FOUND" in err

    # The same answers straight from the data folder, no server involved.
    data_dir = ("--data-dir", str(tmp_path))
    code, out, _ = await cli("events", "list", *data_dir, "--json", "-f", "camera = yard")
    assert code == 0 and [e["id"] for e in as_json(out)] == ["ev-00002"]
    code, out, _ = await cli("events", "get", "ev-00000", *data_dir, "--json")
    assert code == 0 and as_json(out)[0]["id"] == "ev-00000"
    code, out, _ = await cli("events", "count", *data_dir, "--json")
    assert code == 0 and as_json(out)[0]["count"] == "3"
    code, _, err = await cli("events", "list", "--data-dir", str(tmp_path / "missing"))
    assert code == 1 and "no event index" in err


async def test_camera_and_face_commands(bus: Bus, query: RunningQuery) -> None:
    server = ("--server", f"127.0.0.1:{query.service.port}")
    code, out, _ = await cli("cameras", "add", "door", "rtsp://u:pw@cam/1", "--fps", "5", *server, "--json")
    assert code == 0 and as_json(out)[0]["source_uri"] == "rtsp://u:***@cam/1"
    registry = await bus.kv(subjects.CAMERAS_BUCKET)
    added = await registry.get("door")
    code, out, _ = await cli("cameras", "restart", "door", *server)
    assert code == 0 and out == ["restarted camera door"]
    restarted = await registry.get("door")  # a new revision of the same entry, password kept
    assert restarted.revision > added.revision and restarted.value == added.value
    code, _, err = await cli("cameras", "restart", "nope", *server)
    assert code == 1 and "NOT_FOUND" in err
    code, out, _ = await cli("cameras", "ls", *server, "--json")
    assert code == 0 and [c["id"] for c in as_json(out)] == ["door"]
    code, _, err = await cli("cameras", "add", "door", "/v.mp4", *server)
    assert code == 1 and "ALREADY_EXISTS" in err
    code, _, err = await cli("cameras", "add", "bad.id", "/v.mp4", *server)
    assert code == 1 and "camera.id" in err
    code, out, _ = await cli("cameras", "rm", "door", *server, "--json")
    assert code == 0 and as_json(out) == [{"id": "door", "deleted": True}]
    code, out, _ = await cli("cameras", "status", *server, "--json")
    assert code == 0 and out == []
    code, out, _ = await cli("faces", "ls", *server, "--json")
    assert code == 0 and out == []
    code, _, err = await cli("faces", "enroll", "bob", "--event", "nope", *server)
    assert code == 1 and "NOT_FOUND" in err
    code, _, err = await cli("events", "list", "--server", "127.0.0.1:1")
    assert code == 1 and "cannot reach the query service" in err


async def test_tail_prints_live_events_as_json_lines(bus: Bus, query: RunningQuery) -> None:
    """``camsight events tail`` as a real process: replayed and live events, one JSON per line."""
    await bus.publish_event(make_event(1))
    await wait_for(lambda: query.indexed() == 1, 10, "the first event indexed")
    tail = ["events", "tail", "--server", f"127.0.0.1:{query.service.port}", "--json"]
    proc = await asyncio.create_subprocess_exec(
        *camsight_command(*tail, "-f", "camera = lobby", "--since", "2026-01-01T00:00:00Z"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert json.loads(first)["id"] == "ev-00001"
        await bus.publish_event(make_event(2, camera_id="yard"))
        await bus.publish_event(make_event(3))
        second = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert json.loads(second)["id"] == "ev-00003"
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0
