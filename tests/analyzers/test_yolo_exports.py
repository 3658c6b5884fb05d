"""YOLO files as users make them: ultralytics' own ONNX exports, decoded by ``yolo_onnx``.

ultralytics (a test-only dependency) builds YOLOv8n and YOLO11n from their
YAML with random weights and exports them to ONNX exactly as ``yolo export
format=onnx`` does (onnxslim included), offline: nothing is downloaded
(network and auto-install are switched off, and socket connections fail).
Random weights give garbage boxes, so the tests check plumbing and
decoding (output layout, letterbox, box mapping, class scores, NMS), not
accuracy; to get real, distinct scores instead of a flat 1e-4 everywhere,
the BatchNorm statistics are calibrated on the test frames and the class
logits are scaled into about -5..3 before export.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analyzer_helpers import Image
from camsight.analyzers import AnalyzerError, FrameInfo
from camsight.analyzers.manager import instantiate
from camsight.analyzers.onnxrt import providers
from camsight_torch.yolo import OnnxYolo, letterbox
from helpers import sample_video

SIZE = 320  # export size: small, so the session's exports take seconds
CONF, IOU, MAX_DET = 0.5, 0.45, 20
# ultralytics reads these at import: no network checks, no pip at export time, settings in tmp.
OFFLINE = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false"}


@contextlib.contextmanager
def no_network(attempts: list[Any]) -> Iterator[None]:
    """Name lookups and connections fail (and are recorded) inside the block."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise socket.gaierror("network blocked by the test")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket.socket, "connect", refuse)
        yield


def _carphone() -> Image:
    import cv2

    capture = cv2.VideoCapture(str(sample_video("carphone_pristine.mp4")))
    ok, image = capture.read()
    capture.release()
    assert ok
    return image


@pytest.fixture(scope="session")
def frames(bikes: list[Image]) -> list[Image]:
    """Wide (bikes, 640x272) and nearly square, upscaled (carphone, 176x144) real frames."""
    return [*bikes[:5], _carphone()]


def _seed(model: Any, frames: list[Image]) -> None:
    """Give random weights distinct scores: BatchNorm statistics of real frames, class logits in -5..3."""
    import torch

    batch = torch.from_numpy(np.stack([letterbox(image, SIZE)[0] for image in frames]))
    net = model.model
    for layer in net.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None  # cumulative average over the batch
    with torch.no_grad():
        net.train()
        net(batch)
        net.eval()
        classes = [branch[-1] for branch in net.model[-1].cv3]  # the last conv of each class branch
        peaks: dict[int, float] = {}
        hooks = [
            conv.register_forward_hook(lambda _m, _i, out, i=i: peaks.__setitem__(i, float(out.abs().max())))
            for i, conv in enumerate(classes)
        ]
        for conv in classes:
            conv.bias.zero_()
        net(batch)
        for hook in hooks:
            hook.remove()
        for i, conv in enumerate(classes):
            conv.weight.mul_(4.0 / peaks[i])
            conv.bias.fill_(-1.0)


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory, frames: list[Image]) -> dict[str, Path]:
    """YOLOv8n and YOLO11n exported to ONNX once per session, with the network blocked.

    ultralytics is imported here, after the environment is set: it reads it at import.
    """
    folder = tmp_path_factory.mktemp("yolo")
    attempts: list[Any] = []
    out = {}
    with pytest.MonkeyPatch.context() as patch, no_network(attempts), contextlib.chdir(folder):
        for key, value in {**OFFLINE, "YOLO_CONFIG_DIR": str(folder / "config")}.items():
            patch.setenv(key, value)
        import torch
        from ultralytics import YOLO

        for name in ("yolov8n", "yolo11n"):
            torch.manual_seed(0)
            model = YOLO(f"{name}.yaml")
            _seed(model, frames)
            out[name] = folder / model.export(format="onnx", imgsz=SIZE)
    assert attempts == [], "exporting tried to reach the network"
    return out


def _camsight_boxes(
    model: Path, images: list[Image], runtime: str = "auto"
) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
    """yolo_onnx on ``images`` as one batch: per image, pixel xyxy boxes, scores and labels."""
    config = {
        "model": str(model),
        "input_size": SIZE,
        "conf_threshold": CONF,
        "iou_threshold": IOU,
        "runtime": runtime,
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
    one, given here a batch of six frames. The same boxes, scores and classes as onnxruntime."""
    import onnx

    model = onnx.load(str(exports[name]))
    assert model.opset_import[0].version >= 18, (
        "the default export is no longer opset 18: this test proves less"
    )
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    by_torch = _camsight_boxes(exports[name], frames, runtime="torch")
    by_onnxruntime = _camsight_boxes(exports[name], frames, runtime="onnxruntime")
    assert sum(len(scores) for _, scores, _ in by_onnxruntime) > 0, "no detections: nothing compared"
    for (boxes, scores, labels), (ref_boxes, ref_scores, ref_labels) in zip(
        by_torch, by_onnxruntime, strict=True
    ):
        # The same detections, matched by box: near ties in score may leave NMS in another order.
        assert sorted(labels) == sorted(ref_labels)
        unmatched = list(range(len(ref_labels)))
        for box, score, label in zip(boxes, scores, labels, strict=True):
            j = min(unmatched, key=lambda k: float(np.abs(ref_boxes[k] - box).max()))
            assert ref_labels[j] == label
            assert np.abs(ref_boxes[j] - box).max() < 0.1  # pixels: float sums in another order
            assert abs(ref_scores[j] - score) < 1e-4
            unmatched.remove(j)


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
