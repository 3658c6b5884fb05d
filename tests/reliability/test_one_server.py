"""The one-server recipe of docs/deploy.md, end to end: every piece its own process on one host.

``camsight nats --credentials`` generates a NATS user per role; ``camsight topology``
declares the streams as the topology user; decoder, detector, behavior and query run as
``camsight serve`` processes, each with only its own credentials folder
(``CAMSIGHT_SECRETS_DIR``); a camera is added with the CLI and its events are read back
with the CLI. Health ports are given here only because other test runs may share the
machine; the recipe relies on the per-service defaults.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import yaml
from helpers import camsight_command, sample_video, wait_for
from processes import ServiceProcess, free_port

pytestmark = pytest.mark.slow

SERVICES = ("decoder", "detector", "behavior", "query")


@asynccontextmanager
async def nats_with_users(root: Path) -> AsyncIterator[str]:
    """``camsight nats --credentials root/creds`` until the block ends; yields its URL."""
    proc = await asyncio.create_subprocess_exec(
        *camsight_command("nats", "--data-dir", str(root / "nats"), "--port", str(free_port()),
                          "--monitor-port", str(free_port()), "--credentials", str(root / "creds")),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        ready = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert ready.startswith("nats-server ready: nats://"), ready
        users = (await asyncio.wait_for(proc.stdout.readline(), 5)).decode()
        assert "camsight-events-reader" in users and "camsight-decoder" in users, users
        yield ready.split()[2]
    finally:
        proc.send_signal(2)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


def cli(*args: str, secrets: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"CAMSIGHT_SECRETS_DIR": str(secrets)} if secrets else {})}
    return subprocess.run(
        [sys.executable, "-m", "camsight", *args], capture_output=True, text=True, timeout=120, env=env
    )


async def test_one_server_recipe(tmp_path: Path) -> None:
    grpc = f"127.0.0.1:{free_port()}"
    async with nats_with_users(tmp_path) as url:
        config = {
            "nats": {"servers": [url]},
            "data_dir": str(tmp_path / "data"),
            "log": {"format": "text"},
            "services": {
                "detector": {"analyzers": {"motion": {}}},
                "query": {"host": "127.0.0.1", "port": int(grpc.rsplit(":", 1)[1])},
            },
        }
        (tmp_path / "camsight.yaml").write_text(yaml.safe_dump(config))
        declared = await asyncio.to_thread(
            cli,
            "topology",
            "--config",
            str(tmp_path / "camsight.yaml"),
            secrets=tmp_path / "creds" / "topology",
        )
        assert declared.returncode == 0, declared.stderr[-2000:]
        processes = []
        for name in SERVICES:
            (tmp_path / name).mkdir()
            env = {"CAMSIGHT_SECRETS_DIR": str(tmp_path / "creds" / name)}
            processes.append(ServiceProcess(name, tmp_path / name, config, env=env).start())
        try:
            await wait_for(lambda: all(p.ready() for p in processes), 120, "every service ready")
            camera = {
                "id": "bikes",
                "source": str(sample_video("bikes.mp4")),
                "fps": 5,
                "rules": [{"id": "moving", "type": "object_detected", "labels": ["motion"]}],
            }
            (tmp_path / "bikes.yaml").write_text(yaml.safe_dump(camera))
            added = await asyncio.to_thread(cli, "cameras", "add", "--file", str(tmp_path / "bikes.yaml"),
                                            "--server", grpc)  # fmt: skip
            assert added.returncode == 0, added.stderr

            def events() -> list[dict[str, object]]:
                listed = cli("events", "list", "--server", grpc, "--json")
                assert listed.returncode == 0, listed.stderr
                return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]

            async def detected() -> bool:
                return any("OBJECT_DETECTED" in str(e.get("type")) for e in await asyncio.to_thread(events))

            await wait_for(detected, 120, "an event read back")
        finally:
            codes = {p.name: await p.stop() for p in processes}
        assert set(codes.values()) == {0}, codes
        for process in processes:
            assert "Violation" not in process.log.read_text()
