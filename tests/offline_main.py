"""``python tests/offline_main.py ARGS...``: ``camsight ARGS...`` with the network blocked but loopback.

For end-to-end tests that must prove a child ``camsight`` process fetches
nothing: every name lookup of another host than the loopback fails (the
embedded nats-server and the gRPC API are on 127.0.0.1) and is appended to
the file named by ``CAMSIGHT_TEST_NETWORK_LOG``.
"""

from __future__ import annotations

import os
import runpy
import socket
import sys
from typing import Any

LOOPBACK = {"127.0.0.1", "localhost", "::1", None}
_getaddrinfo = socket.getaddrinfo


def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if name not in LOOPBACK:
        with open(os.environ["CAMSIGHT_TEST_NETWORK_LOG"], "a", encoding="utf-8") as log:
            log.write(f"{name}\n")
        raise socket.gaierror(socket.EAI_NONAME, f"network blocked by the test: {name}")
    return _getaddrinfo(host, *args, **kwargs)


if __name__ == "__main__":
    socket.getaddrinfo = guarded
    sys.argv = ["camsight", *sys.argv[1:]]
    runpy.run_module("camsight", run_name="__main__", alter_sys=True)
