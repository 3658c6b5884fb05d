"""The benchmark suite keeps working: ``bench/run.py --smoke`` runs every benchmark at small sizes.

This checks plumbing only (every benchmark finishes and reports numeric
figures); it asserts nothing about speed: speed is the benchmarks' own
business, as ratios against baselines measured in the same run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
# Benchmarks that must be there and the figures each must report as numbers.
EXPECTED: dict[str, list[str]] = {
    "bus": ["bus_acked_fps", "raw_acked_fps", "bus_pipelined_fps", "raw_pipelined_fps", "core_fps"],
    "decoder": ["baseline_fps", "decoder_fps", "ratio"],
    "detector": ["baseline_fps", "service_fps", "ratio", "torch.ratio_per_cpu_s"],
    "pipeline": ["baseline_fps", "pipeline_fps", "ratio", "ratio_per_cpu_s"],
    "latency": ["decode.p50_ms", "bus_frames.p50_ms", "analysis.p99_ms", "total.n"],
    "overload": [
        "max_frame_age_10s.decoded",
        "max_frame_age_10s.analyzed",
        "max_frame_age_10s.dropped_too_old",
        "max_frame_age_10s.discarded_by_stream",
        "max_frame_age_10s.rss_mib.max",
        "max_frame_age_10s.nats_server_mem_mib.max",
    ],
    "behavior": [
        "behavior_msgs_per_s",
        "baseline_parse_and_read_msgs_per_s",
        "checkpointed_msgs_per_s",
        "checkpointed_over_behavior",
    ],
    "tracking": [
        "miss_30_worst_idf1_after",
        "miss_30_worst_idf1_before",
        "miss_30_worst_frag_per_10s_after",
        "miss_30_id_switches_after",
        "scenes.walk.miss_30.before.idf1",
        "scenes.cross.miss_30.after.id_switches",
        "scenes.stop.miss_30.after.frag_per_10s",
    ],
    "query": ["ingest_events_per_s", "list.p99_ms"],
    "console": ["four_vs_one_viewer_cpu", "viewers_4.cores", "viewers_4.frames_per_s_per_viewer"],
    "faces": ["centerface_opencv_carphone_176x144.frames_per_s_per_core"],
    "quantize": ["centerface_carphone_176x144.int8_speedup", "centerface_bikes_640x272.matched_share"],
    "models": ["detectors.ssdlite320_mobilenet_v3_large.ms_per_frame", "clips.r3d_18.s_per_clip"],
    "gpu_analyzers": ["torchvision_detector_fp32.batch_1_fps"],
    "gpu": [
        "service_fp32.fps",
        "service_fp32.cameras_at_5fps",
        "service_fp32.service_vs_analyzer",
        "model_vs_analyzer_fp32.batch_4.analyzer_tensors_fps",
        "pipeline_fp32.fps",
        "pipeline_fp32.cameras_at_25fps",
        "yolo_fp32.batch_4_fps",
        "pipeline_yolo_fp32.fps",
    ],
}


def figure(result: dict[str, Any], key: str) -> Any:
    """``a.b.c`` -> result["a"]["b"]["c"]; a dot before a digit is part of a name (``age_0.5s``)."""
    value: Any = result
    for part in re.split(r"\.(?=[a-z_])", key):
        value = value[part]
    return value


def numbers(value: Any) -> list[float]:
    """Every numeric leaf of a result."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


ALONE = {"gpu", "tracking"}
"""Benchmarks with a test of their own below, left out of the all-benchmarks run (about 25 s)."""


@pytest.mark.slow
def test_every_benchmark_runs_and_reports_numbers(tmp_path: Path) -> None:
    """Every benchmark but those of :data:`ALONE` in one ``bench/run.py`` run, as CI's smoke
    would run them; with the tests of :data:`ALONE`, every module of bench/ is covered."""
    modules = {p.stem for p in (ROOT / "bench").glob("*.py") if re.search(r"^def run\(", p.read_text(), re.M)}
    modules -= {"run"}
    assert modules >= ALONE
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--smoke",
            "--no-docs",
            "--only",
            ",".join(sorted(modules - ALONE)),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.exists(), proc.stderr[-3000:]
    document = json.loads(out.read_text())
    benchmarks = document["benchmarks"]
    failed = {name: r for name, r in benchmarks.items() if "error" in r}
    assert not failed, json.dumps(failed, indent=2)[-4000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert document["machine"]["cpus"]
    assert set(benchmarks) == modules - ALONE
    for name, outcome in benchmarks.items():
        assert numbers(outcome["result"]), f"benchmark {name} reported no figure"
    for name, keys in EXPECTED.items():
        if name in ALONE:
            continue
        assert name in benchmarks, f"benchmark {name} missing from the results"
        for key in keys:
            value = figure(benchmarks[name]["result"], key)
            assert isinstance(value, int | float) and not isinstance(value, bool), (name, key, value)
    overload = benchmarks["overload"]["result"]["max_frame_age_10s"]
    assert overload["balanced"], overload  # every decoded frame accounted for


def run_alone(name: str, tmp_path: Path, timeout: float) -> dict[str, Any]:
    """``bench/run.py --smoke --only <name>``: its result, with every EXPECTED figure a number."""
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--no-docs", "--only", name, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads(out.read_text())["benchmarks"][name]
    assert "error" not in outcome, outcome
    result: dict[str, Any] = outcome["result"]
    for key in EXPECTED[name]:
        value = figure(result, key)
        assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
    return result


@pytest.mark.slow
def test_the_gpu_benchmark_runs_on_the_cpu(tmp_path: Path) -> None:
    """``bench/run.py --smoke --only gpu`` on a CPU-only machine: the device script is known to
    work before a GPU is lent (model, service, YOLOv8n from its graph and random weights, and the
    whole pipeline with either detector and NVDEC and nvJPEG falling back)."""
    result = run_alone("gpu", tmp_path, 300)
    for key in ("pipeline_fp32", "pipeline_yolo_fp32"):
        pipeline = result[key]
        assert pipeline["frames"] > 0 and pipeline["decoded_by"].startswith(("nvdec", "cpu (")), key
        assert pipeline["encoded_by"].startswith(("nvjpeg", "cpu (")), key


def test_the_tracking_benchmark_runs_quickly(tmp_path: Path) -> None:
    """``bench/run.py --smoke --only tracking``: a few seconds, so it runs outside the slow suite too."""
    result = run_alone("tracking", tmp_path, 120)
    for scene in result["scenes"].values():
        for cell in scene.values():
            assert set(cell) >= {"before", "after"}
            assert 0.0 <= cell["after"]["idf1"] <= 1.0
