"""``camsight run --console`` keeps serving the run after its files end, until Ctrl-C; then
``camsight console --data-dir`` serves the finished run's folder, read-only."""

from __future__ import annotations

import http.cookiejar
import json
import re
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest
from camsight.query.console.session import COOKIE, Session
from camsight.query.settings import Scope
from camsight.v1.event_service_pb2 import ListEventsRequest
from camsight.v1.event_service_pb2_grpc import EventServiceStub
from helpers import camsight_command, leftovers, sample_video, start_camsight

pytestmark = pytest.mark.slow


def stderr_line(proc: subprocess.Popen[str], pattern: str, what: str, before: str | None = None) -> str:
    """The first group of the next line of stderr that ``pattern`` finds; fails at the end of
    stderr, or at a line that ``before`` finds first."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if found := re.search(pattern, line):
            return found.group(1)
        if before is not None and re.search(before, line):
            raise AssertionError(f"no {what} was printed before {line.strip()!r}")
    raise AssertionError(f"no {what} was printed (exit {proc.wait(30)})")


def console_address(proc: subprocess.Popen[str], note: str = "") -> str:
    """The address ``console: URL (...Ctrl-C to stop)`` printed on stderr (after the progress bars)."""
    pattern = rf"console: (http://127\.0\.0\.1:\d+/) \({note}Ctrl-C to stop\)"
    return stderr_line(proc, pattern, "console address")


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    return out, err


def test_run_with_console_then_console_of_the_folder(tmp_path: Path) -> None:
    runs = tmp_path / "tmp"
    runs.mkdir()
    data = tmp_path / "data"
    video = sample_video("carphone_pristine.mp4")
    proc = start_camsight(
        "run", str(video), "--json", "--console", "--data-dir", str(data), cwd=tmp_path, tmpdir=runs
    )
    try:
        # Printed at the start, before the progress bars: where clients reach this run.
        api = stderr_line(proc, r"gRPC API: (127\.0\.0\.1:\d+)$", "gRPC address", before="console: ")
        url = console_address(proc)
        with urllib.request.urlopen(url + "events") as response:  # anonymous: no tokens configured
            page = response.read().decode()
        assert "runs without tokens" in page
        rows = re.findall(r'<tr id="event-([^"]+)">', page)
        assert rows, "the finished run's events are not listed"
        with grpc.insecure_channel(api) as channel:
            listed = EventServiceStub(channel).ListEvents(ListEventsRequest(page_size=1000), timeout=10)
        assert set(rows) <= {event.id for event in listed.events}
        out, _ = stop(proc)
    finally:
        proc.kill()
    printed = {json.loads(line)["id"] for line in out.splitlines() if line.startswith("{")}
    assert set(rows) <= printed  # the console shows what the run printed
    assert not leftovers(runs), "the embedded nats-server or its folder outlived the run"

    proc = start_camsight("console", "--data-dir", str(data), "--port", "0", cwd=tmp_path, tmpdir=runs)
    try:
        url = console_address(proc, "read-only; ")
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with browser.open(url + "events") as response:
            page = response.read().decode()
        assert "Read-only" in page and set(re.findall(r'<tr id="event-([^"]+)">', page)) == set(rows)
        with browser.open(url + "cameras") as response:
            page = response.read().decode()
        assert 'id="add-camera"' not in page and "Remove" not in page
        camera = re.search(r'<tr id="camera-([^"]+)">', page)
        assert camera, "the run's camera is not listed"
        # A forged write with a valid CSRF token (computed from the cookie, which a page cannot
        # read): refused because the console is read-only, not for want of a token.
        cookie = next(c.value for c in jar if c.name == COOKIE and c.value)
        csrf = Session(cookie, Scope.READ, "anonymous", anonymous=True).csrf
        forged = urllib.parse.urlencode({"csrf": csrf}).encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            browser.open(url + f"cameras/{camera.group(1)}/delete", data=forged)
        assert refused.value.code == 403 and "read-only" in refused.value.read().decode()
        stop(proc)
    finally:
        proc.kill()
    assert not leftovers(runs)


def test_console_of_a_folder_without_a_run_says_so(tmp_path: Path) -> None:
    done = subprocess.run(
        camsight_command("console", "--data-dir", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().endswith(f"--data-dir {tmp_path}: no finished run there (expected "
                                        f"{tmp_path}/index/events.sqlite)")  # fmt: skip
