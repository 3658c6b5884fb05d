"""YOLO files as users make them: ultralytics' own ONNX exports (fixture ``exports``, see
yolo_exports.py), decoded by ``yolo_onnx``.

Random weights give garbage boxes, so the tests check plumbing and
decoding (output layout, letterbox, box mapping, class scores, NMS), not
accuracy; and, with the torch runtime, that the pictures stay on the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analyzer_helpers import Image, OnHost
from camsight.analyzers import AnalyzerError, FrameAnalyzer, FrameInfo
from camsight.analyzers.manager import instantiate
from camsight.analyzers.onnxrt import providers
from camsight.analyzers.pictures import image_to_tensor
from camsight.analyzers.testing import check_conformance
from camsight_torch.yolo import OnnxYolo, letterbox, letterbox_tensor
from helpers import sample_video
from test_pictures import hosted_and_reference
from yolo_exports import SIZE, no_network

CONF, IOU, MAX_DET = 0.5, 0.45, 20


def _camsight_boxes(model: Path, images: list[Image]) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
    """yolo_onnx on ``images`` as one batch: per image, pixel xyxy boxes, scores and labels."""
    config = {
        "model": str(model),
        "input_size": SIZE,
        "conf_threshold": CONF,
        "iou_threshold": IOU,
    }
    analyzer = instantiate(OnnxYolo, {**config, "max_detections": MAX_DET}, device="cpu")
    analyzer.load()
    infos = [FrameInfo("cam", i, image.shape[1], image.shape[0]) for i, image in enumerate(images)]
    found = analyzer.analyze(images, infos)
    analyzer.close()
    out = []
    for dets, info in zip(found, infos, strict=True):
        scale = np.array([info.width, info.height, info.width, info.height], np.float32)
        boxes = np.array([d.box for d in dets], np.float32).reshape(-1, 4) * scale
        out.append((boxes, np.array([d.score for d in dets], np.float32), [d.label for d in dets]))
    return out


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_ultralytics_exports_decode_like_ultralytics(
    exports: dict[str, Path], frames: list[Image], name: str
) -> None:
    """Same ONNX file, same real frames: the same boxes (within 1 px), classes and scores, in order."""
    from ultralytics import YOLO

    attempts: list[Any] = []
    with no_network(attempts):
        reference = YOLO(str(exports[name]), task="detect")
        compared = 0
        for image, (boxes, scores, labels) in zip(
            frames, _camsight_boxes(exports[name], frames), strict=True
        ):
            ref = reference.predict(image, imgsz=SIZE, conf=CONF, iou=IOU, max_det=MAX_DET, verbose=False)[0]
            ref_boxes = ref.boxes.xyxy.numpy()
            assert len(boxes) == len(ref_boxes), f"{name}: {len(boxes)} boxes, ultralytics {len(ref_boxes)}"
            assert np.abs(boxes - ref_boxes).max(initial=0.0) <= 1.0
            assert labels == [f"class_{int(c)}" for c in ref.boxes.cls.numpy()]
            assert scores == pytest.approx(ref.boxes.conf.numpy(), abs=1e-4)
            compared += len(boxes)
    assert compared >= 3 * len(frames), "too few boxes above the threshold to compare anything"
    assert attempts == []


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_the_torch_runtime_runs_default_exports_like_onnxruntime(
    exports: dict[str, Path], frames: list[Image], name: str
) -> None:
    """``runtime: torch`` (onnx2torch, how a GPU runs them) on the file ``yolo export`` writes by default:
    opset 18, whose Split and Resize onnx2torch 1.5 cannot convert by itself, and a fixed batch of
    one. The converted network gives onnxruntime's outputs on the same letterboxed frames, and the
    analyzer runs it on a batch of six."""
    import onnx
    import onnxruntime
    import torch
    from camsight.analyzers.onnxtorch import to_torch

    model = onnx.load(str(exports[name]))
    assert model.opset_import[0].version >= 18, "the default export is not opset 18: this proves less"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    module = to_torch(model)
    session = onnxruntime.InferenceSession(str(exports[name]), providers=["CPUExecutionProvider"])
    for image in frames:
        batch = letterbox(image, SIZE)[0][None]
        expected = session.run(None, {model.graph.input[0].name: batch})[0]
        with torch.inference_mode():
            got = module(torch.from_numpy(batch))
        got = (got[0] if isinstance(got, list | tuple) else got).numpy()
        np.testing.assert_allclose(got[:, 4:], expected[:, 4:], atol=1e-4)  # class scores
        np.testing.assert_allclose(got[:, :4], expected[:, :4], atol=0.05)  # boxes, input pixels
    analyzer = instantiate(OnnxYolo, {"model": str(exports[name]), "input_size": SIZE, "runtime": "torch"})
    analyzer.load()
    assert isinstance(analyzer, FrameAnalyzer)
    infos = [FrameInfo("cam", i, im.shape[1], im.shape[0]) for i, im in enumerate(frames)]
    found = analyzer.analyze(frames, infos)
    analyzer.close()
    assert len(found) == len(frames) and sum(map(len, found)) > 0


def test_an_op_torch_cannot_convert_is_one_line(tmp_path: Path) -> None:
    """An op onnx2torch has no converter for names itself and the way out, in one line."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Resize", ["images", "", "scales"], ["out"], antialias=1, mode="linear")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 0.5, 0.5])],
    )
    path = tmp_path / "antialias.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    analyzer = instantiate(OnnxYolo, {"model": str(path), "runtime": "torch"}, device="cpu")
    with pytest.raises(AnalyzerError) as caught:
        analyzer.load()
    message = str(caught.value)
    assert "\n" not in message
    assert "Resize (opset 18) with antialias=1" in message and "opset 17" in message


def test_a_corrupt_onnx_file_is_one_line(tmp_path: Path, exports: dict[str, Path]) -> None:
    broken = tmp_path / "truncated.onnx"
    broken.write_bytes(exports["yolov8n"].read_bytes()[:4096])
    for runtime in ("onnxruntime", "torch"):
        analyzer = instantiate(OnnxYolo, {"model": str(broken), "runtime": runtime}, device="cpu")
        with pytest.raises(AnalyzerError) as caught:
            analyzer.load()
        assert str(broken) in str(caught.value) and "\n" not in str(caught.value)


def test_onnxruntime_honours_device(exports: dict[str, Path]) -> None:
    """CPU here; asking for CUDA without onnxruntime's CUDA provider is one clear line."""
    import onnxruntime

    config = {"model": str(exports["yolov8n"]), "input_size": SIZE, "runtime": "onnxruntime"}
    assert providers("cpu") == ["CPUExecutionProvider"]
    cpu = instantiate(OnnxYolo, config, device="cpu")
    cpu.load()
    cpu.close()
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed: the refusal cannot happen here")
    analyzer = instantiate(OnnxYolo, config, device="cuda:0")
    with pytest.raises(AnalyzerError, match=r"^device 'cuda:0' requested but onnxruntime has no CUDA"):
        analyzer.load()


def test_precision_that_onnxruntime_ignores_is_refused(exports: dict[str, Path]) -> None:
    config = {"model": str(exports["yolov8n"]), "runtime": "onnxruntime", "precision": "int8"}
    with pytest.raises(AnalyzerError, match="precision int8 does nothing with onnxruntime"):
        instantiate(OnnxYolo, config, device="cpu").load()


def test_an_ultralytics_export_quantized_on_a_real_video_runs_in_yolo_onnx(
    exports: dict[str, Path], frames: list[Image], tmp_path: Path
) -> None:
    """``camsight models quantize`` on a fixed-size export (1/255 pixels): the int8 file loads and decodes."""
    import onnx
    from camsight.cli import app
    from typer.testing import CliRunner

    output = tmp_path / "yolov8n.int8.onnx"
    args = ["models", "quantize", str(exports["yolov8n"]), "--calibrate", str(sample_video("bikes.mp4"))]
    result = CliRunner().invoke(app, [*args, "--frames", "4", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert "QuantizeLinear" in {node.op_type for node in onnx.load(str(output)).graph.node}
    boxes, scores, _ = _camsight_boxes(output, frames[:1])[0]
    assert len(boxes) >= 1 and (scores >= CONF).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


async def yolo_letterboxes_on_the_device(
    on_host: OnHost, images: list[Image], model: Path, device: str
) -> None:
    """yolo_onnx on the torch runtime behind a host: tensors on ``device``, letterboxed there, never
    through the host; the same detections as on the reference pictures of the same JPEGs."""
    config = {"model": str(model), "input_size": SIZE, "conf_threshold": CONF, "runtime": "torch"}
    reference, pictures, infos = await hosted_and_reference(on_host, OnnxYolo, config, images, device)
    assert isinstance(reference, FrameAnalyzer)
    expected = reference.analyze(pictures, infos)
    reference.close()
    published = on_host.results.of("yolo_onnx")
    assert sum(len(dets) for dets in expected) >= 3 * len(images), "too few boxes to compare anything"
    for result, wanted in zip(published, expected, strict=True):
        assert not result.skipped, result.skip_reason
        assert [d.label for d in result.detections] == [d.label for d in wanted]
        for got, want in zip(result.detections, wanted, strict=True):
            assert got.score == pytest.approx(want.score, abs=1e-4)
            assert (got.box.x1, got.box.y1, got.box.x2, got.box.y2) == pytest.approx(want.box, abs=1e-4)


def the_device_letterbox_is_opencvs(images: list[Image], device: str) -> None:
    """letterbox_tensor on ``device`` against OpenCV's letterbox (onnxruntime's): the same geometry
    and pixels up to rounding (one grey level). A wide picture shrunk, a small one enlarged."""
    for image in images:
        array, box = letterbox(image, SIZE)
        tensor, device_box = letterbox_tensor(image_to_tensor(image, device), SIZE)
        assert device_box == box and tensor.device.type == device.split(":")[0]
        difference = np.abs(tensor.cpu().numpy() - array) * 255
        assert difference.max() <= 1.0 + 1e-3 and (difference > 0.5).mean() < 0.2


def test_the_device_letterbox_is_opencvs(frames: list[Image]) -> None:
    the_device_letterbox_is_opencvs(frames, "cpu")


def test_yolo_takes_tensors_with_the_torch_runtime_only(exports: dict[str, Path]) -> None:
    model = str(exports["yolov8n"])
    kinds = {
        runtime: instantiate(OnnxYolo, {"model": model, "runtime": runtime}, device="cpu").inputs
        for runtime in ("auto", "onnxruntime", "torch")
    }
    assert kinds == {
        "auto": "numpy",
        "onnxruntime": "numpy",
        "torch": "tensor",
    }  # auto on the CPU: onnxruntime
    for runtime in ("onnxruntime", "torch"):  # the kit hands each its kind
        check_conformance(OnnxYolo, {"model": model, "input_size": SIZE, "runtime": runtime})


async def test_yolo_on_torch_letterboxes_the_hosts_tensors_and_finds_what_the_numpy_path_finds(
    on_host: OnHost, frames: list[Image], exports: dict[str, Path]
) -> None:
    await yolo_letterboxes_on_the_device(on_host, frames, exports["yolov8n"], "cpu")
