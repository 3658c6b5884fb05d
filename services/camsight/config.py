"""The one typed configuration model, read from a YAML file and CAMSIGHT_* variables.

Precedence, highest first: environment variables (``CAMSIGHT_NATS__URL``,
nested fields joined by ``__``), then the YAML file, then defaults. Secrets
(passwords, tokens) can also come from files in ``CAMSIGHT_SECRETS_DIR``
(Kubernetes Secret volumes), named like the variable without the prefix.

A bad value raises :class:`ConfigError` whose message names the field and the
value; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from camsight.cameras import CameraConfig

# Read once, when the model is defined (pydantic-settings' secrets_dir is class configuration).
SECRETS_DIR = os.environ.get("CAMSIGHT_SECRETS_DIR") or None


class ConfigError(Exception):
    """The configuration cannot be used; the message names field and value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsSettings(_Section):
    """TLS towards the NATS server (CA to trust, client certificate for mTLS)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class NatsSettings(_Section):
    """How to reach NATS. Reconnects are unlimited with jitter: a service
    outlives a NATS restart and stays not-ready meanwhile."""

    # NoDecode: CAMSIGHT_NATS__SERVERS is a comma-separated list, not JSON.
    servers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1
    )
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    creds_file: Path | None = None
    nkey_seed_file: Path | None = None
    tls: TlsSettings | None = None
    connect_timeout_s: float = Field(2.0, gt=0)
    reconnect_wait_s: float = Field(1.0, gt=0)
    reconnect_jitter_s: float = Field(0.5, ge=0)
    # True: the process declares (creates or updates) the streams and buckets at
    # start, which its NATS user must be allowed to do. False: it only checks
    # they exist and waits, not ready, until `camsight topology` declared them,
    # so service users need no right to change streams (decision 0081).
    declare_topology: bool = True
    # The subject prefix of this connection's reply inboxes (requests, JetStream API
    # answers, pull fetches, KV watches, ordered consumers). With per-service NATS
    # users each service gets its own (`_INBOX.camsight-<service>`) and may subscribe
    # only below it, so no service can read another's replies (decision 0081).
    inbox_prefix: str = "_INBOX"

    @field_validator("servers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # "nats://a:4222,nats://b:4222" from an environment variable.
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("servers")
    @classmethod
    def _schemes(cls, value: list[str]) -> list[str]:
        for server in value:
            if not server.startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError(f"{server!r} is not a NATS URL (nats://host:port)")
        return value

    @field_validator("inbox_prefix")
    @classmethod
    def _subject_prefix(cls, value: str) -> str:
        # Dot-separated tokens; no wildcard, no whitespace, no empty token: the
        # client appends `.<unique id>` and subscribes below it.
        tokens = value.split(".")
        if not all(tokens) or any(c in "*> \t\r\n" for c in value):
            raise ValueError(f"{value!r} is not a subject prefix (tokens like _INBOX.name, no wildcards)")
        return value


class StreamSettings(_Section):
    """Limits of the JetStream streams; see docs/architecture.md for why."""

    # 32 frames of 640 px JPEG are ~1.5 MB per camera: room for the behavior
    # service to fetch a snapshot frame while it lags the analyzers.
    frames_per_camera: int = Field(32, ge=1, le=1000)
    frames_max_age_s: float = Field(30.0, gt=0)
    frames_max_bytes: int = Field(512 * 1024 * 1024, gt=0)
    detections_max_age_s: float = Field(3600.0, gt=0)
    events_replicas: int = Field(1, ge=1, le=5)
    events_max_age_days: float = Field(30.0, gt=0)
    events_duplicate_window_s: float = Field(120.0, gt=0)
    deadletter_max_age_days: float = Field(7.0, gt=0)
    snapshots_max_age_days: float = Field(30.0, gt=0)
    snapshots_max_bytes: int = Field(10 * 1024**3, gt=0)


class HttpSettings(_Section):
    """The health and metrics endpoint every service serves."""

    host: str = "0.0.0.0"
    # None: the service's own default (camsight.runtime.ports, the table in docs/deploy.md),
    # so several services run on one host as they are; 0 picks a free port.
    port: int | None = Field(None, ge=0, le=65535)


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """Everything a camsight process can be told. Unknown keys are errors, so a
    typo in a YAML file is caught at start-up instead of being ignored."""

    model_config = SettingsConfigDict(
        env_prefix="CAMSIGHT_",
        env_nested_delimiter="__",
        extra="forbid",
        secrets_dir=SECRETS_DIR,
    )

    instance: str = Field(default_factory=lambda: os.environ.get("HOSTNAME") or os.uname().nodename)
    nats: NatsSettings = Field(default_factory=NatsSettings)
    streams: StreamSettings = Field(default_factory=StreamSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    data_dir: Path = Path("camsight-data")
    cameras: list[CameraConfig] = Field(default_factory=list)
    # Plugins (entry-point names) that no service loads: the one switch that settles an
    # analyzer name two plugins declare, or turns a plugin off without uninstalling it.
    disabled_plugins: list[str] = Field(default_factory=list)
    # Free-form sections owned by each service (decoder, analyzers, behavior,
    # query): validated by that service's own model, see service_section().
    services: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment overrides it.
        return env_settings, file_secret_settings, init_settings

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, value: list[CameraConfig]) -> list[CameraConfig]:
        seen: set[str] = set()
        for camera in value:
            if camera.id in seen:
                raise ValueError(f"camera id {camera.id!r} is used twice")
            seen.add(camera.id)
        return value


M = TypeVar("M", bound=BaseModel)


def service_section(settings: Settings, name: str, model: type[M]) -> M:
    """Validate ``settings.services[name]`` with the service's own model."""
    try:
        return model.model_validate(settings.services.get(name, {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, prefix=f"services.{name}")) from None


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (if any), apply CAMSIGHT_* variables, validate."""
    _check_secrets_dir()
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path} must hold a mapping at the top, not {type(loaded).__name__}"
            )
        odd = [key for key in loaded if not isinstance(key, str)]
        if odd:  # e.g. "?" or "1: x": YAML allows any key, settings are named
            raise ConfigError(f"config file {path}: top-level keys must be names, not {odd[0]!r}")
        data = loaded
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _check_secrets_dir() -> None:
    """A ``CAMSIGHT_SECRETS_DIR`` that is missing or unreadable is an error, not a warning:
    the process would run without its credentials and be refused by NATS, far from the cause."""
    if SECRETS_DIR is None:
        return
    if not Path(SECRETS_DIR).is_dir():
        raise ConfigError(f"CAMSIGHT_SECRETS_DIR: {SECRETS_DIR} is not a folder")
    if not os.access(SECRETS_DIR, os.R_OK | os.X_OK):
        raise ConfigError(f"CAMSIGHT_SECRETS_DIR: {SECRETS_DIR} cannot be read (permission denied)")


def _describe(exc: ValidationError, prefix: str = "") -> str:
    """One line per bad field: ``nats.servers.0: 'x' is not a NATS URL (got 'x')``."""
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "<root>")
        value = error.get("input")
        shown = "<hidden>" if _is_secret(field) else repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        lines.append(f"{field}: {error['msg']} (got {shown})")
    if len(lines) == 1:  # the usual case: one line that names the field
        return f"invalid configuration: {lines[0]}"
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _is_secret(field: str) -> bool:
    return any(word in field for word in ("password", "token", "secret", "seed"))
