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
{ ls -l /usr/lib/x86_64-linux-gnu/libnvcuvid.so* /usr/lib/x86_64-linux-gnu/libnvidia-encode.so* \
  || echo "no NVDEC/NVENC driver libraries: the container lacks NVIDIA_DRIVER_CAPABILITIES=video"; } >&3 2>&1
if [[ ${INSTALL:-1} == 1 ]]; then
  wheels=$(mktemp -d)
  tar -C "$wheels" -xJf .device/wheels.tar.xz \
    && "$PY" -m pip install -q --no-index --no-deps "$wheels"/wheels/*.whl >&3 2>&1 \
    || { echo "install failed" >&3; exit 1; }
fi
"$PY" - >&3 2>&1 <<'PYEOF'
import torch, torchvision, av
from camsight.analyzers.manager import default_manager
print("torch", torch.__version__, "torchvision", torchvision.__version__, "av", av.__version__)
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("analyzers:", sorted(default_manager().analyzers()))
try:
    import PyNvVideoCodec
    print("PyNvVideoCodec", PyNvVideoCodec.__version__, "loads")
except Exception as exc:  # the NVDEC rows will say the CPU decoded, and why
    print("PyNvVideoCodec does not load:", exc)
PYEOF
timeout 150 "$PY" -m pytest -q -p no:cacheprovider \
  tests/analyzers/test_gpu.py tests/decoder/test_nvdec.py >"$OUT/tests.txt" 2>&1
echo "tests: exit $?" >&3
timeout 360 "$PY" bench/gpu.py "$@" >"$OUT/gpu.json" 2>"$OUT/gpu.log"
echo "bench/gpu.py: exit $?" >&3
