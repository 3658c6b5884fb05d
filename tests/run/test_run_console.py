"""``camsight run --console``: after the files end the console keeps serving the run, until Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from pathlib import Path

import pytest
from helpers import leftovers, sample_video, start_camsight

pytestmark = pytest.mark.slow


def test_run_with_console_serves_the_finished_run_until_ctrl_c(tmp_path: Path) -> None:
    runs = tmp_path / "tmp"
    runs.mkdir()
    video = sample_video("carphone_pristine.mp4")
    command = ["run", str(video), "--json", "--console", "--data-dir", str(tmp_path / "data")]
    proc = start_camsight(*command, cwd=tmp_path, tmpdir=runs)
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:  # progress bars, then the console's address once the file ended
            if found := re.search(r"console: (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)", line):
                url = found.group(1)
                break
        assert url, "no console address was printed"
        with urllib.request.urlopen(url + "events") as response:  # anonymous: no tokens configured
            page = response.read().decode()
        assert "runs without tokens" in page
        rows = re.findall(r'<tr id="event-([^"]+)">', page)
        assert rows, "the finished run's events are not listed"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    printed = {json.loads(line)["id"] for line in out.splitlines() if line.startswith("{")}
    assert set(rows) <= printed  # the console shows what the run printed
    assert not leftovers(runs), "the embedded nats-server or its folder outlived the run"
