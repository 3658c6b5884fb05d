"""The query service's own settings section (``services.query`` in the YAML file)."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from camsight.config import Settings

INDEX_FILE = Path("index") / "events.sqlite"


class Scope(StrEnum):
    """What a bearer token may do: ``admin`` includes ``read``."""

    READ = "read"
    ADMIN = "admin"


class TokenSettings(BaseModel):
    """One accepted bearer token. ``name`` appears in logs, the token never does."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=64)
    token: SecretStr = Field(min_length=16)
    scope: Scope = Scope.READ


class ConsoleSettings(BaseModel):
    """The operator console (docs/console.md): its own HTTP port, off unless enabled."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    host: str = "0.0.0.0"
    # 0 picks a free port (tests, embedded mode).
    port: int = Field(8090, ge=0, le=65535)
    # Every session reads only, whatever its token (``camsight console --data-dir``).
    read_only: bool = False


class QuerySettings(BaseModel):
    """gRPC endpoint, index location, security and retention of the query service."""

    model_config = ConfigDict(extra="forbid")

    host: str = "0.0.0.0"
    port: int = Field(50051, ge=0, le=65535)
    # Default: <data_dir>/index/events.sqlite (see index_path()).
    index_path: Path | None = None
    # Empty: no authentication (for a loopback or otherwise trusted network)...
    tokens: list[TokenSettings] = Field(default_factory=list)
    # ...unless this is false: then no tokens is a configuration error. The Helm chart
    # sets it from apiTokens.allowAnonymous, so a token Secret that turns out empty stops
    # the service instead of opening the API (issue 25).
    allow_anonymous: bool = True
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Default: the EVENTS stream's max age (streams.events_max_age_days).
    retention_days: float | None = Field(None, gt=0)
    retention_interval_s: float = Field(600.0, gt=0)
    ingest_batch: int = Field(1024, ge=1, le=4096)
    # How long a delivered, unacknowledged event waits before redelivery
    # (after a crash of this replica).
    ack_wait_s: float = Field(30.0, gt=0)
    # A replica's consumer that stays unused this long is removed by NATS;
    # the replica then rebuilds from the stream (idempotently) when it returns.
    consumer_inactive_s: float = Field(86400.0, gt=0)
    max_concurrent_streams: int = Field(256, ge=1)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @model_validator(mode="after")
    def _tokens_unless_anonymous(self) -> Self:
        if not self.tokens and not self.allow_anonymous:
            raise ValueError(
                "no tokens while allow_anonymous is false: give tokens (in the Helm chart "
                "apiTokens.tokens or apiTokens.existingSecret) or allow anonymous callers on purpose"
            )
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        if self.console.enabled and self.tls_cert_file is not None:
            # The console calls this server on loopback as a plaintext client (decision 0054).
            raise ValueError(
                "console.enabled: the console cannot yet call a TLS gRPC server; use one or the other"
            )
        return self

    def index_file(self, settings: Settings) -> Path:
        return self.index_path or default_index_path(settings.data_dir)

    def retention_s(self, settings: Settings) -> float:
        days = self.retention_days or settings.streams.events_max_age_days
        return days * 86400.0


def default_index_path(data_dir: Path) -> Path:
    """Where the index lives under a data folder (also what ``--data-dir`` reads)."""
    return data_dir / INDEX_FILE


def replica_name(instance: str) -> str:
    """A consumer-name-safe form of the instance name (hostnames may hold dots)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", instance)[:40] or "replica"
