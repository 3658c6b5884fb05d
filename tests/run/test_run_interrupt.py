"""Ctrl-C, SIGTERM or SIGHUP during ``camsight run``: a clean stop, no process or
temp folder left behind, and a data folder the read commands can use."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import leftovers, sample_video, start_camsight

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_cleanly_and_leaves_a_consistent_data_folder(
    tmp_path: Path, sig: signal.Signals
) -> None:
    data = tmp_path / "data"
    runs = tmp_path / "tmp"
    runs.mkdir()
    # Real time: bikes lasts 10 s, so the run is still going when it is interrupted.
    command = ["run", str(sample_video("bikes.mp4")), "--realtime", "--json", "--data-dir", str(data)]
    proc = start_camsight(*command, cwd=tmp_path, tmpdir=runs)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until the first event: the pipeline runs
        assert first, "the run printed no event"
        assert leftovers(runs), "no embedded nats-server found"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("interrupted; the data folder is consistent")
    assert not leftovers(runs), "the embedded nats-server or its folder outlived the run"
    printed = [json.loads(line) for line in [first, *out.splitlines()]]  # stdout stays JSON only

    listed = subprocess.run(
        [sys.executable, "-m", "camsight", "events", "list", "--data-dir", str(data), "--json", "-n", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    indexed = {json.loads(line)["id"] for line in listed.stdout.splitlines()}
    assert indexed, "nothing was indexed before the interrupt"
    assert {printed[0]["id"]} <= indexed  # what the user saw is in the index
