"""The embedded nats-server and ``camsight nats``."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import nats
import pytest
from camsight.natsserver import EmbeddedNats, NatsServerError, find_nats_server


def test_binary_comes_from_the_wheel() -> None:
    assert find_nats_server().name == "nats-server"


async def test_jetstream_data_survives_a_restart(tmp_path: Path) -> None:
    server = EmbeddedNats(store_dir=tmp_path / "js")
    server.start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await js.add_stream(name="KEEP", subjects=["keep.>"])
    await js.publish("keep.a", b"1")
    await nc.close()
    server.stop()
    assert not server.running()

    server.start()
    try:
        nc = await nats.connect(server.url)
        msg = await nc.jetstream().get_last_msg("KEEP", "keep.a")
        assert msg.data == b"1"
        await nc.close()
    finally:
        server.stop()


def test_start_failure_is_reported(tmp_path: Path) -> None:
    first = EmbeddedNats(store_dir=tmp_path / "a").start()
    try:
        port = int(first.url.rsplit(":", 1)[1])
        clash = EmbeddedNats(store_dir=tmp_path / "b", port=port)
        with pytest.raises(NatsServerError, match="exited"):
            clash.start(timeout=10)
    finally:
        first.stop()


async def test_camsight_nats_command_serves_jetstream(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "camsight",
        "nats",
        "--data-dir",
        str(tmp_path),
        "--port",
        "-1",
        "--monitor-port",
        "-1",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.search(r"(nats://[\d.]+:\d+)", line)
        assert match, f"no URL in {line!r}"
        nc = await nats.connect(match.group(1))
        js = nc.jetstream()
        await js.add_stream(name="PLAIN", subjects=["plain"])
        ack = await js.publish("plain", b"hello")
        assert ack.stream == "PLAIN"
        assert ack.seq == 1
        await nc.close()
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 15)
    assert code == 0
