"""The embedded nats-server and ``camsight nats``."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pytest
from camsight.natsauth import ROLES, SECRETS_FILE, credentials_folder
from camsight.natsserver import EmbeddedNats, NatsPortInUse, NatsServerError, find_nats_server


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


@pytest.mark.parametrize("which", ["port", "monitor_port"])
def test_a_busy_port_is_named(tmp_path: Path, which: str) -> None:
    first = EmbeddedNats(store_dir=tmp_path / "a").start()
    try:
        url = first.url if which == "port" else first.monitor_url
        port = int(url.rsplit(":", 1)[1])
        clash = EmbeddedNats(store_dir=tmp_path / "b", **{which: port})
        with pytest.raises(NatsPortInUse, match=f"port {port} is already in use") as err:
            clash.start(timeout=10)
        assert err.value.port == port
    finally:
        first.stop()


def test_camsight_nats_on_a_busy_port_says_which_option_moves_it(tmp_path: Path) -> None:
    first = EmbeddedNats(store_dir=tmp_path / "a").start()
    try:
        port = first.url.rsplit(":", 1)[1]
        done = subprocess.run(
            [sys.executable, "-m", "camsight", "nats", "--data-dir", str(tmp_path / "b"), "--port", port,
             "--monitor-port", "-1"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        first.stop()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"camsight: nats-server cannot listen on 127.0.0.1:{port}: port {port} is already in use; "
        "choose another with --port"
    ]


def test_other_start_failures_quote_the_fatal_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    server = EmbeddedNats(
        store_dir=tmp_path / "a", extra={"tls": {"cert_file": str(missing), "key_file": str(missing)}}
    )
    with pytest.raises(NatsServerError, match=r"exited with code 1 during start-up: .*missing\.pem") as err:
        server.start(timeout=10)
    assert "\n" not in str(err.value)


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


def test_credentials_folder_is_generated_once_and_reused(tmp_path: Path) -> None:
    first = credentials_folder(tmp_path / "creds")
    assert set(first) == set(ROLES)
    assert credentials_folder(tmp_path / "creds") == first  # a restart keeps the passwords
    decoder = json.loads((tmp_path / "creds" / "decoder" / SECRETS_FILE).read_text())
    assert decoder["inbox_prefix"] == "_INBOX.camsight-decoder" and decoder["declare_topology"] is False
    assert (tmp_path / "creds" / "decoder" / SECRETS_FILE).stat().st_mode & 0o077 == 0


def test_unusable_credentials_are_one_line_naming_the_option(tmp_path: Path) -> None:
    (tmp_path / "creds" / "query").mkdir(parents=True)
    (tmp_path / "creds" / "query" / SECRETS_FILE).write_text("not json")
    (tmp_path / "file").write_text("")
    for folder, message in [
        (
            tmp_path / "creds",
            f"credentials file {tmp_path / 'creds' / 'query' / SECRETS_FILE} cannot be read",
        ),
        (tmp_path / "file", f"credentials folder {tmp_path / 'file'} is not a folder"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "camsight", "nats", "--port", "-1", "--monitor-port", "-1",
             "--data-dir", str(tmp_path / "js"), "--credentials", str(folder)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"camsight: --credentials: {message}"), lines
