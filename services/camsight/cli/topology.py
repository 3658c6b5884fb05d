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

from camsight.bus import connect_with_retry, subjects
from camsight.bus.topology import ClusterFormingError, topology_streams
from camsight.cli import app
from camsight.cli.common import ConfigOption, fail, settings_or_exit
from camsight.config import Settings
from camsight.runtime import setup_logging


async def declare(settings: Settings, timeout: float) -> None:
    """Connect and declare the topology, retrying for up to ``timeout`` seconds in all while
    NATS is unreachable or its JetStream cluster cannot answer or place streams yet (a Job
    started with the NATS pods)."""
    servers = ", ".join(settings.nats.servers)
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        bus = await asyncio.wait_for(
            connect_with_retry(settings.nats, settings.streams, name="camsight-topology"), timeout
        )
    except TimeoutError:
        fail(f"NATS at {servers} was unreachable for {timeout:.0f}s")
    left = max(1.0, deadline - asyncio.get_running_loop().time())
    waits = (ClusterFormingError, TimeoutError)
    declaring = asyncio.ensure_future(
        asyncio.wait_for(bus.ensure_topology(attempts=None, retry_on=waits), left)
    )
    # A user not allowed to is answered nothing: its requests would time out until the
    # deadline (5 minutes by default). The server's permissions violation says so at once.
    refused = asyncio.ensure_future(bus.link.wait_refused(subjects.JS_API_PREFIX))
    try:
        await asyncio.wait({declaring, refused}, return_when=asyncio.FIRST_COMPLETED)
        if not declaring.done():
            fail(
                "this NATS user is not allowed to create and update camsight's streams (NATS "
                "answered a JetStream request with a permissions violation; its log names the "
                "subject): run camsight topology as the topology user (docs/deploy.md)"
            )
        await declaring
    except ClusterFormingError as exc:
        fail(f"the JetStream cluster at {servers} did not form in {timeout:.0f}s: {exc}")
    except TimeoutError:
        fail(
            f"NATS did not answer JetStream requests for {timeout:.0f}s: is JetStream enabled with a "
            "meta leader, and is this user allowed to create and update camsight's streams? (the "
            "server log names a permissions violation)"
        )
    finally:
        for task in (declaring, refused):
            task.cancel()
        await asyncio.gather(declaring, refused, return_exceptions=True)
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
