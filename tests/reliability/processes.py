"""Real processes for fault injection: ``camsight serve <service>`` and nats-server clusters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from camsight.natsserver import EmbeddedNats

T = TypeVar("T")
CAMSIGHT = Path(sys.executable).parent / "camsight"
HERE = Path(__file__).resolve().parent  # test plugins (hold_plugin) import from here


def free_port() -> int:
    """A port free right now (for routes and restarts that must name their port up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass
class ServiceProcess:
    """One ``camsight serve <name>`` process with its own YAML config and log file."""

    name: str
    workdir: Path
    settings: dict[str, Any]
    http_port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> ServiceProcess:
        config = self.workdir / f"{self.name}.yaml"
        settings = {"http": {"host": "127.0.0.1", "port": self.http_port}, **self.settings}
        config.write_text(yaml.safe_dump(settings))
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(CAMSIGHT), "serve", self.name, "--config", str(config)],
                stdout=out,
                stderr=out,
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                }
                | self.env,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        return self.not_ready_reason() is None

    def not_ready_reason(self) -> str | None:
        """Why ``/readyz`` says not ready (None when ready; "" when it does not answer)."""
        if not self.alive():
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=1) as resp:
                return None if resp.status == 200 else ""
        except urllib.error.HTTPError as exc:
            return str(json.loads(exc.read() or b"{}").get("reason", ""))
        except (urllib.error.URLError, OSError, ValueError):
            return ""

    async def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait, 10)

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the drain; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, timeout)


def restarted(server: EmbeddedNats) -> EmbeddedNats:
    """A new server on the same port and store (after ``kill()`` or ``stop()``)."""
    again = EmbeddedNats(
        store_dir=server.store_dir,
        port=server.port if server.port > 0 else port_of(server.url),
        server_name=server.server_name,
        extra=server.extra,
        log_file=server.log_file,
        authorization=server.authorization,
    )
    return again


def cluster(root: Path, size: int = 3) -> list[EmbeddedNats]:
    """``size`` JetStream servers routed to each other (not started)."""
    routes = [free_port() for _ in range(size)]
    ports = [free_port() for _ in range(size)]
    return [
        EmbeddedNats(
            store_dir=root / f"n{i}" / "jetstream",
            port=ports[i],
            server_name=f"n{i}",
            log_file=root / f"n{i}.log",
            extra={
                "cluster": {
                    "name": "camsight",
                    "host": "127.0.0.1",
                    "port": routes[i],
                    "routes": [f"nats-route://127.0.0.1:{p}" for j, p in enumerate(routes) if j != i],
                }
            },
        )
        for i in range(size)
    ]


async def retry(
    what: Callable[[], Awaitable[T]], errors: tuple[type[BaseException], ...], tries: int = 200
) -> T:
    """Call ``what`` until it stops raising ``errors`` (a client riding out a server failure)."""
    for _ in range(tries - 1):
        try:
            return await what()
        except errors:
            await asyncio.sleep(0.05)  # back-off between retries of a refused publish, not a sync
    return await what()
