"""Generate the Python code and type stubs for proto/camsight/v1/*.proto.

Run ``python proto/generate.py`` after editing a .proto file. The output lands
in services/camsight/v1/ (protoc's Python output imports siblings by package
path, so generating next to the ``camsight`` import package needs no path
hacks). ``tests/test_proto.py`` fails when the committed output is stale.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
DEFAULT_OUT = ROOT / "services"


def generate(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Run protoc into ``out_dir`` and return the files it wrote."""
    from grpc_tools import protoc

    sources = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "camsight" / "v1").glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    # mypy-protobuf's protoc plugins are scripts in the environment's bin dir.
    scripts = sysconfig.get_path("scripts")
    os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    target = out_dir / "camsight" / "v1"
    if target.exists():
        for old in target.glob("*_pb2*"):
            old.unlink()
    target.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: see the messages above")
    init = target / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated protobuf and gRPC code for camsight.v1 (see proto/)."""\n')
    return sorted(target.glob("*_pb2*"))


if __name__ == "__main__":
    if shutil.which("protoc-gen-mypy", path=sysconfig.get_path("scripts")) is None:
        sys.exit("protoc-gen-mypy not found: pip install -e '.[dev]' first")
    for path in generate():
        print(path.relative_to(ROOT))
