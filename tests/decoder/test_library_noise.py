"""A network camera that is down prints nothing raw: no FFmpeg or OpenCV lines on stderr.

In a fresh process, because FFmpeg's log level is fixed when OpenCV's FFmpeg backend
first opens a capture.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

OPEN_TWICE = """
import json, sys
from camsight.decoder.sources import SourceError, open_source
errors = []
for _ in range(2):  # two reconnection attempts
    try:
        open_source(sys.argv[1], image_fps=1, open_timeout_s=2, read_timeout_s=2).open()
    except SourceError as exc:
        errors.append(str(exc))
print(json.dumps(errors))
"""


def test_a_refused_stream_prints_nothing_raw() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/video.mjpg"
    done = subprocess.run([sys.executable, "-c", OPEN_TWICE, url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    errors = json.loads(done.stdout)
    assert len(errors) == 2 and errors[0].startswith(f"cannot open stream {url}")
    assert done.stderr == ""
