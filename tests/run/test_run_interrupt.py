"""Ctrl-C, SIGTERM or SIGHUP during ``camsight run``: a clean stop, no process or
temp folder left behind, and a data folder the read commands can use; also with an
analyzer that never returns (its grace period, then the run stops without it), after a
second signal (at once), and when camsight itself is killed (its nats-server goes too)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import leftovers, sample_video, start_camsight, wait_for_sync

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


def hung_run(tmp_path: Path, **detector: object) -> tuple[subprocess.Popen[str], Path]:
    """``camsight run`` whose one analyzer (slow_plugin's ``hang``) is stuck in ``analyze()``,
    once it is, and the TMPDIR of its nats-server (for :func:`leftovers`); ``detector``: more
    settings of the detector service."""
    marker = tmp_path / "in-analyze"
    detector |= {"plugin_modules": ["run.slow_plugin"], "analyzers": {"hang": {"marker": str(marker)}}}
    (tmp_path / "hang.yaml").write_text(yaml.safe_dump({"services": {"detector": detector}}))
    runs = tmp_path / "tmp"
    runs.mkdir()
    command = ["run", str(sample_video("bikes.mp4")), "--config", "hang.yaml", "--data-dir", "data"]
    proc = start_camsight(*command, cwd=tmp_path, tmpdir=runs)
    wait_for_sync(lambda: marker.exists() or proc.poll() is not None, 180, "the analyzer stuck in analyze()")
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert leftovers(runs), "no embedded nats-server found"
    return proc, runs


def test_an_analyzer_that_never_returns_gets_its_grace_then_the_run_stops_without_it(tmp_path: Path) -> None:
    """It made the run impossible to stop: the drain waited for the call, then asyncio and
    the interpreter waited for its thread."""
    proc, runs = hung_run(tmp_path, stop_timeout_s=2)
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "camsight: detector: analyzer hang did not return from analyze() within 2 s; "
        "interrupted; the data folder is consistent"
    )
    assert not leftovers(runs), "the embedded nats-server or its folder outlived the run"


def test_a_second_signal_stops_the_run_at_once_and_its_nats_server_too(tmp_path: Path) -> None:
    proc, runs = hung_run(tmp_path, stop_timeout_s=300)  # the first signal alone waits 5 minutes
    try:
        # Two signals of different numbers: never merged into one, however close they come.
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "camsight: interrupted again: stopped at once"
    assert not leftovers(runs), "the embedded nats-server or its folder outlived the run"


def test_a_killed_run_leaves_no_nats_server_and_no_folder_behind(tmp_path: Path) -> None:
    proc, runs = hung_run(tmp_path)
    proc.kill()  # SIGKILL: camsight cannot clean up
    proc.communicate(timeout=30)
    wait_for_sync(lambda: not leftovers(runs), 30, "its nats-server to end with it")
