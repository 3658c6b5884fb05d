"""Fixtures for the query service tests (helpers live in query_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from camsight.config import NatsSettings
from console_support import running_console
from query_helpers import RunningQuery, query_settings, running_query


@pytest.fixture
async def query(nats_settings: NatsSettings, tmp_path: Path) -> AsyncIterator[RunningQuery]:
    """The query service with default settings (no auth, no TLS)."""
    async with running_query(query_settings(nats_settings, tmp_path)) as running:
        yield running


@pytest.fixture
async def console_query(nats_settings: NatsSettings, tmp_path: Path) -> AsyncIterator[RunningQuery]:
    """The query service serving its console too, with an admin and a read token (console_support)."""
    async with running_console(nats_settings, tmp_path) as running:
        yield running
