"""The generated code in services/camsight/v1 matches proto/ (regenerate with proto/generate.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_generator():
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    generate = _load_generator().generate
    fresh = {p.name: p.read_text() for p in generate(tmp_path)}
    committed_dir = ROOT / "services" / "camsight" / "v1"
    committed = {p.name: p.read_text() for p in committed_dir.glob("*_pb2*")}
    assert fresh.keys() == committed.keys(), "generated files differ: run python proto/generate.py"
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not stale, f"stale generated code {stale}: run python proto/generate.py"


def test_enum_zero_values_are_unspecified() -> None:
    """Google API design guide: every enum's zero value is *_UNSPECIFIED."""
    from camsight.v1 import (
        analysis_pb2,
        camera_pb2,
        event_pb2,
        event_service_pb2,
        frame_pb2,
    )

    for module in (analysis_pb2, camera_pb2, event_pb2, event_service_pb2, frame_pb2):
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            assert enum.values_by_number[0].name.endswith("_UNSPECIFIED"), enum.full_name


@pytest.mark.parametrize(
    ("service", "method"),
    [
        ("EventService", "ListEvents"),
        ("CameraService", "ListCameras"),
        ("CameraService", "ListCameraStatuses"),
        ("FaceGalleryService", "ListIdentities"),
    ],
)
def test_list_methods_follow_aip_132(service: str, method: str) -> None:
    import camsight.v1.camera_service_pb2
    import camsight.v1.event_service_pb2
    import camsight.v1.face_gallery_service_pb2  # noqa: F401  (registers descriptors)
    from google.protobuf import descriptor_pool

    svc = descriptor_pool.Default().FindServiceByName(f"camsight.v1.{service}")
    rpc = svc.methods_by_name[method]
    request_fields = set(rpc.input_type.fields_by_name)
    assert {"page_size", "page_token"} <= request_fields
    assert "next_page_token" in rpc.output_type.fields_by_name
