"""``camsight topology``: declare the streams, buckets and object stores, then exit.

The one privileged step of a deployment (a Kubernetes Job in the Helm chart):
it runs as a NATS user allowed to create and update camsight's streams, so
the services' own users need not be (``nats.declare_topology: false``,
decision 0081). Idempotent: running it again changes nothing, or applies
changed stream limits from the configuration.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from camsight.bus import connect_with_retry
from camsight.bus.topology import topology_streams
from camsight.cli import app
from camsight.cli.common import ConfigOption, fail, settings_or_exit
from camsight.config import Settings
from camsight.runtime import setup_logging


async def declare(settings: Settings, timeout: float) -> None:
    """Connect (retrying while NATS is unreachable, up to ``timeout``) and declare the topology."""
    servers = ", ".join(settings.nats.servers)
    try:
        bus = await asyncio.wait_for(
            connect_with_retry(settings.nats, settings.streams, name="camsight-topology"), timeout
        )
    except TimeoutError:
        fail(f"NATS at {servers} was unreachable for {timeout:.0f}s")
    try:
        await bus.ensure_topology()
    except TimeoutError:
        fail(
            "NATS did not answer a JetStream request: is this user allowed to create and update "
            "camsight's streams? (the server log names a permissions violation)"
        )
    finally:
        await bus.close()


@app.command("topology")
def topology_command(
    config: ConfigOption = None,
    timeout: Annotated[
        float, typer.Option(help="Give up when NATS stays unreachable this many seconds.")
    ] = 300.0,
) -> None:
    """Declare camsight's streams, KV buckets and object stores on NATS (idempotent)."""
    settings = settings_or_exit(config)
    setup_logging(settings.log, "topology")
    asyncio.run(declare(settings, timeout))
    typer.echo(f"topology declared: {', '.join(topology_streams())}")
