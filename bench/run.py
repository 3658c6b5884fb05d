"""Run every benchmark, write a JSON results file, regenerate the tables in docs/performance.md.

Every ``bench/*.py`` module with a ``run(smoke)`` function is a benchmark. Each
one runs in its own Python process (so the memory figures of one are not
the leftovers of another, and a crash is reported without stopping the
rest), in the order of ``ORDER`` and then by name. The results, with a
description of the machine, go to ``bench/results/<UTC timestamp>.json``
(git-ignored). For a full run (or with ``--docs``) the blocks between the
``<!-- bench:... -->`` markers of docs/performance.md are regenerated: the
machine and the summary table of headline figures; the hand-written
sections around them are kept.

Run::

    .venv/bin/python bench/run.py                 # everything, full sizes (tens of minutes)
    .venv/bin/python bench/run.py --smoke         # a few seconds each (CI)
    .venv/bin/python bench/run.py --only bus,latency --out /tmp/r.json
    .venv/bin/python bench/run.py --tables-from bench/results/<file>.json   # tables only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DOC = ROOT / "docs" / "performance.md"
ORDER = (
    "bus",
    "decoder",
    "detector",
    "pipeline",
    "latency",
    "overload",
    "behavior",
    "tracking",
    "query",
    "faces",
    "quantize",
    "console",
)
NOT_BENCHMARKS = {"run"}
MARK = "@@bench-result@@"
CHILD = f"""
import json, sys
sys.path.insert(0, {str(BENCH)!r})
import importlib
module = importlib.import_module(sys.argv[1])
print({MARK!r} + json.dumps(module.run(smoke=sys.argv[2] == "1")), flush=True)
"""
# Headline figures per benchmark for the summary table: (dotted key, what it is, goal).
HEADLINES: dict[str, list[tuple[str, str, str]]] = {
    "bus": [
        ("bus_pipelined_fps", "Frames/s, Bus.publish, 64 in flight", ""),
        ("ratio_bus_vs_raw_pipelined", "... / raw js.publish, 64 in flight", "~1"),
        ("ratio_bus_vs_raw_acked", "Bus.publish / raw js.publish, each ack awaited", "~1"),
        ("ratio_raw_pipelined_vs_core", "JetStream pipelined / core NATS publish", ""),
    ],
    "decoder": [
        ("decoder_fps", "Frames/s published by the decoder", ""),
        ("ratio", "... / bare decode+resize+encode loop", ">= 0.9"),
        ("decode_path_cpu_ratio", "bare loop / decoder's decode threads, CPU per frame", "~1"),
        ("rss_mib_max", "RSS max over the looped run (MiB)", "flat"),
    ],
    "detector": [
        ("service_fps", "Frames/s, detector service (hog+motion)", ""),
        ("ratio", "... / bare analyzer loop (wall)", ">= 0.9"),
        ("ratio_per_cpu_s", "... / bare analyzer loop (per CPU-second)", ">= 0.9"),
        ("torch.service_fps", "Frames/s, detector service (torch detector, one thread)", ""),
        ("torch.ratio_per_cpu_s", "... / bare analyzer loop (per CPU-second)", ">= 0.95"),
        ("torch.pipelined_over_sequential", "... pipelined / stages one after another", ""),
    ],
    "pipeline": [
        ("pipeline_fps", "Frames/s, embedded pipeline (decoder, detector, behavior, query)", ""),
        ("ratio", "... / bare decode + analyzers loop (wall)", ">= 0.9"),
        ("ratio_per_cpu_s", "... / bare loop (per CPU-second, nats-server included)", ">= 0.9"),
    ],
    "latency": [
        ("total.p50_ms", "Capture -> event indexed, p50 (ms)", ""),
        ("total.p95_ms", "Capture -> event indexed, p95 (ms)", ""),
        ("total.p99_ms", "Capture -> event indexed, p99 (ms)", ""),
        ("decode.p50_ms", "Decode + resize + encode per frame, p50 (ms)", ""),
    ],
    "overload": [
        ("max_frame_age_10s.balanced", "decoded = analyzed + dropped (default max age)", "true"),
        ("max_frame_age_10s.age_max_s", "Oldest analysed frame (s)", "bounded"),
        ("max_frame_age_10s.rss_growth_after_warmup_mib", "RSS growth after warm-up (MiB)", "~0"),
        ("max_frame_age_0.5s.balanced", "decoded = analyzed + dropped (max age 0.5 s)", "true"),
        ("max_frame_age_0.5s.age_max_s", "Oldest analysed frame, max age 0.5 s (s)", "bounded"),
    ],
    "behavior": [
        ("behavior_msgs_per_s", "Detection messages/s per core (10 objects each)", ">= 2000"),
        ("behavior_over_baseline", "... / parse-and-read baseline", ""),
        ("checkpointed_over_behavior", "... with a state checkpoint every 5 s / without", "~1"),
    ],
    "tracking": [
        ("miss_30_worst_idf1_after", "IDF1 at 30 % misses, worst scene, camsight's tracker", ">= 0.9"),
        ("miss_30_worst_idf1_before", "... plain ByteTrack, library defaults (before)", ""),
        ("miss_30_worst_frag_per_10s_after", "Fragmentations per 10 s at 30 % misses, worst scene", "<= 1"),
        ("miss_30_id_switches_after", "ID switches at 30 % misses, all scenes (before: next row)", ""),
        ("miss_30_id_switches_before", "... plain ByteTrack", ""),
    ],
    "query": [
        ("list.p99_ms", "ListEvents p99 (ms), camera + type + one day", "<= 20"),
        ("indexed_events", "... events in the index", ""),
        ("ingest_events_per_s", "Events/s indexed through NATS", ">= 5000"),
        ("ingest_vs_baseline", "... / bare fetch-and-ack consumer", ""),
    ],
    "console": [
        ("four_vs_one_viewer_cpu", "Query service CPU, 4 / 1 viewers of a 25-fps camera's live view", "~1"),
        ("viewers_4.cores", "... cores with 4 viewers", ""),
        ("viewers_4.frames_per_s_per_viewer", "... frames/s each viewer got", ">= 5"),
    ],
    "faces": [
        (
            "centerface_opencv_carphone_176x144.frames_per_s_per_core",
            "CenterFace (OpenCV), carphone, frames/s/core",
            "",
        ),
        (
            "centerface_opencv_bikes_640x272.frames_per_s_per_core",
            "CenterFace (OpenCV), bikes, frames/s/core",
            "",
        ),
        ("dlib_embedding_carphone.faces_per_s_per_core", "dlib embedding, faces/s/core", ""),
    ],
    "quantize": [
        (
            "centerface_carphone_176x144.int8_speedup",
            "CenterFace int8 / fp32 (onnxruntime), carphone, per core",
            "",
        ),
        ("centerface_carphone_176x144.matched_share", "... fp32 faces int8 finds (IoU >= 0.5)", ">= 0.95"),
        (
            "centerface_bikes_640x272.int8_speedup",
            "CenterFace int8 / fp32 (onnxruntime), bikes, per core",
            "",
        ),
        ("centerface_bikes_640x272.matched_share", "... fp32 faces int8 finds (IoU >= 0.5)", ">= 0.95"),
    ],
    "gpu_analyzers": [
        ("torchvision_detector_fp32.batch_1_fps", "torchvision detector, batch 1, frames/s", ""),
        ("torchvision_detector_fp32.batch_4_fps", "torchvision detector, batch 4 (CPU), frames/s", ""),
        ("torchvision_detector_fp32.batch_8_fps", "torchvision detector, batch 8 (GPU), frames/s", ""),
    ],
    "gpu": [
        ("service_fp32.fps", "Frames/s, detector service, torch detector fp32", ""),
        ("service_fp32.cameras_at_5fps", "5-fps cameras per device (fp32)", ""),
        (
            "service_fp32.service_vs_analyzer",
            "Detector service / analyzer fed tensors (fp32)",
            ">= 0.9 (GPU)",
        ),
        ("pipeline_fp32.fps", "Frames/s, whole pipeline, 1080p with NVDEC (fp32)", ">= 1,500 (H200)"),
        ("pipeline_fp32.cameras_at_25fps", "25-fps cameras per device, whole pipeline (fp32)", ""),
        ("yolo_fp32.batch_8_fps", "YOLOv8n (torch runtime) analyzer, batch 8 (GPU), frames/s", ""),
        ("pipeline_yolo_fp32.fps", "Frames/s, whole pipeline with YOLOv8n, 1080p with NVDEC (fp32)", ""),
    ],
}


def benchmarks() -> list[str]:
    found = sorted(
        p.stem
        for p in BENCH.glob("*.py")
        if p.stem not in NOT_BENCHMARKS and re.search(r"^def run\(", p.read_text(), re.M)
    )
    return [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, memory, load, GPU."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    info: dict[str, Any] = {
        "cpu": models[0] if models else platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": gpu_name(),
    }
    return info


def gpu_name() -> str:
    """The GPUs nvidia-smi lists ("none" without it: importing torch here would cost seconds)."""
    if shutil.which("nvidia-smi") is None:
        return "none"
    query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "unknown"
    return ", ".join(out.stdout.split("\n")[:8]).strip(", ") or "none"


def run_one(name: str, smoke: bool, timeout: float) -> dict[str, Any]:
    """Run benchmark ``name`` in a child process: its result, or the error and stderr tail."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, name, "1" if smoke else "0"],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {
            "seconds": round(time.perf_counter() - started, 1),
            "error": f"timed out after {timeout:.0f}s",
        }
    seconds = round(time.perf_counter() - started, 1)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return {"seconds": seconds, "result": json.loads(line[len(MARK) :])}
    return {"seconds": seconds, "error": f"exit {proc.returncode}", "stderr": proc.stderr[-3000:]}


def dotted(result: dict[str, Any], key: str) -> Any:
    value: Any = result
    for part in re.split(r"\.(?=[a-z_])", key):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def summary_table(results: dict[str, dict[str, Any]]) -> str:
    rows = ["| benchmark | figure | value | goal |", "|---|---|---|---|"]
    for name, outcome in results.items():
        if "error" in outcome:
            rows.append(f"| {name} | **failed**: {outcome['error']} | | |")
            continue
        for key, label, goal in HEADLINES.get(name, []):
            value = dotted(outcome["result"], key)
            if value is not None:
                shown = json.dumps(value) if isinstance(value, bool) else value
                rows.append(f"| {name} | {label} | {shown} | {goal} |")
    return "\n".join(rows)


def machine_block(info: dict[str, Any], when: str) -> str:
    return (
        f"Last full run: {when} UTC. {info['cpu']}, {info['cpus']} CPUs visible, "
        f"{info['memory_gib']} GiB memory, GPU: {info['gpu']}; Python {info['python']} on "
        f"{info['platform']}; 1-minute load average {info['load_average_1m']} when the run started."
    )


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC}: markers {start} ... {end} not found")
    return pattern.sub(lambda _m: f"{start}\n{body}\n{end}", text)


def update_docs(info: dict[str, Any], when: str, results: dict[str, dict[str, Any]]) -> None:
    text = DOC.read_text()
    text = replace_block(text, "machine", machine_block(info, when))
    text = replace_block(text, "summary", summary_table(results))
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="small sizes, a few seconds per benchmark")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/<timestamp>.json)")
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="regenerate docs/performance.md's tables (default: full runs only)",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per benchmark")
    parser.add_argument(
        "--tables-from", type=Path, help="only regenerate the doc tables from this results file"
    )
    args = parser.parse_args(argv)
    if args.tables_from:
        saved = json.loads(args.tables_from.read_text())
        when = datetime.fromisoformat(saved["started"]).strftime("%Y-%m-%d %H:%M")
        update_docs(saved["machine"], when, saved["benchmarks"])
        return 0
    names = benchmarks()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in wanted]
    now = datetime.now(UTC)
    info = machine()
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        results[name] = run_one(name, args.smoke, args.timeout)
        state = results[name].get("error", "ok")
        print(f"bench: {name}: {state} in {results[name]['seconds']} s", file=sys.stderr, flush=True)
    out = args.out or BENCH / "results" / f"{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {"started": now.isoformat(), "smoke": args.smoke, "machine": info, "benchmarks": results}
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"bench: results in {out}", file=sys.stderr)
    if args.docs if args.docs is not None else not args.smoke:
        update_docs(info, now.strftime("%Y-%m-%d %H:%M"), results)
        print(f"bench: tables regenerated in {DOC}", file=sys.stderr)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
