#!/usr/bin/env bash
# Issue 23's GPU checks in one call on a lent device machine, after bench/device/prepare.sh
# here: installs the carried wheels into the image's Python, then runs the GPU tests and
# bench/gpu.py, writing everything under $OUT (env.txt, tests.txt, gpu.json, gpu.log).
# Each step has its own time limit so that one that hangs leaves time for the others: nine
# minutes at most, inside the run tool's 10-minute limit and a session's 15 minutes of device
# time. bench/gpu.py prints each section to gpu.log as it ends, so a cut run keeps them.
# The figures go into docs/performance.md ("GPU").
#
# On the device:  bash bench/device/run.sh          (carry: [".device"], timeout_s: 600)
# Here, to check the script itself (no install; the CPU sizes):
#   PY=.venv/bin/python INSTALL=0 OUT=/tmp/out bash bench/device/run.sh --smoke
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:?set OUT to the folder the results go to}
PY=${PY:-python3}
mkdir -p "$OUT"
exec 3>>"$OUT/env.txt"
{ date -u; nvidia-smi || echo "no nvidia-smi"; } >&3 2>&1
if [[ ${INSTALL:-1} == 1 ]]; then
  "$PY" -m pip install -q --no-index --no-deps .device/wheels/*.whl >&3 2>&1 || { echo "install failed" >&3; exit 1; }
fi
# torchcodec loads FFmpeg's shared libraries by their usual names (libavcodec.so.62, ...).
# PyAV's wheel carries FFmpeg (built with NVDEC: the *_cuvid decoders) under hashed names:
# a folder of links gives them the usual names, and holds links to all of PyAV's libraries
# so that their $ORIGIN run path still finds one another through it.
avlibs=$("$PY" -c 'import av, pathlib; print(pathlib.Path(av.__file__).resolve().parent.parent / "av.libs")')
ffmpeg=$(mktemp -d)
for lib in "$avlibs"/*; do ln -s "$lib" "$ffmpeg/"; done
for name in avcodec avdevice avfilter avformat avutil swresample swscale; do
  lib=$(ls "$avlibs"/lib$name-*.so.* | head -1)
  ln -s "$lib" "$ffmpeg/lib$name.so.$(basename "$lib" | sed -E 's/.*\.so\.([0-9]+).*/\1/')"
done
export LD_LIBRARY_PATH=$ffmpeg${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
"$PY" - >&3 2>&1 <<'PYEOF'
import torch, torchvision, av
from torchcodec.decoders import VideoDecoder
from camsight.analyzers.manager import default_manager
print("torch", torch.__version__, "torchvision", torchvision.__version__, "av", av.__version__)
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("torchcodec loads; analyzers:", sorted(default_manager().analyzers()))
PYEOF
timeout 150 "$PY" -m pytest -q -p no:cacheprovider \
  tests/analyzers/test_gpu.py tests/decoder/test_nvdec.py >"$OUT/tests.txt" 2>&1
echo "tests: exit $?" >&3
timeout 360 "$PY" bench/gpu.py "$@" >"$OUT/gpu.json" 2>"$OUT/gpu.log"
echo "bench/gpu.py: exit $?" >&3
