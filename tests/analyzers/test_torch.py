"""Torch and ONNX analyzers: plumbing only.

Every model here has random weights or hand-made outputs: the tests prove
output decoding, confidence filtering, NMS, batching, box normalisation and
weight loading. They claim nothing about accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
import torch
import torchvision
from analyzer_helpers import Image, OnHost
from camsight.analyzers import AnalyzerError, Clip, FrameInfo
from camsight.analyzers.explain import Explainer
from camsight.analyzers.manager import instantiate
from camsight.analyzers.testing import check_conformance, synthetic_frames
from camsight.cli import app
from camsight_torch.detection import TorchvisionDetector
from camsight_torch.video import TorchVideoClassifier
from camsight_torch.yolo import OnnxYolo, decode
from helpers import sample_video
from onnx import TensorProto, helper, numpy_helper
from test_pictures import hosted_and_reference
from typer.testing import CliRunner

SIZE = 64  # network input of the hand-made YOLO model

# Hand-made head output, v8 layout (4 + 2 classes, 4 anchors), in input pixels.
#            cx    cy    w     h    person car
ANCHORS = [
    [32.0, 32.0, 20.0, 10.0, 0.90, 0.05],  # person: kept
    [33.0, 32.0, 20.0, 10.0, 0.80, 0.05],  # same person, lower score: suppressed by NMS
    [32.0, 32.0, 20.0, 10.0, 0.05, 0.70],  # a car in the same place: other class, kept
    [10.0, 10.0, 4.0, 4.0, 0.10, 0.10],  # below the confidence threshold
]
# Padded with empty anchors: real heads have more anchors than channels, which is how
# `layout: auto` tells v8 (channels first) from v5.
HEAD = np.concatenate([np.array(ANCHORS, np.float32), np.zeros((12, 6), np.float32)]).T[None]  # (1, 6, 16)


def yolo_shaped_onnx(path: Path) -> Path:
    """An ONNX graph that returns HEAD for every image of a dynamic batch: (N, 6, 16)."""
    nodes = [
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Concat", ["n", "ones"], ["target"], axis=0),
        helper.make_node("Expand", ["head", "target"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "yolo_shaped",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, 16])],
        [
            numpy_helper.from_array(HEAD, "head"),
            numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array([1, 1], dtype=np.int64), "ones"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_decode_understands_v5_and_v8_layouts() -> None:
    v8 = decode(HEAD, "auto", 0.25)
    v5_rows = np.concatenate([HEAD[0].T[:, :4], np.ones((16, 1), np.float32), HEAD[0].T[:, 4:]], axis=1)
    v5 = decode(v5_rows[None], "v5", 0.25)
    for boxes, scores, classes in (v8[0], v5[0]):
        assert classes.tolist() == [0, 0, 1]
        assert scores == pytest.approx([0.9, 0.8, 0.7])
        assert boxes[0] == pytest.approx([22.0, 27.0, 42.0, 37.0])


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_onnx_yolo_decodes_filters_suppresses_and_normalises(tmp_path: Path, runtime: str) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("person\ncar\n")
    config = {
        "model": str(yolo_shaped_onnx(tmp_path / "tiny.onnx")),
        "labels": str(labels),
        "input_size": SIZE,
    }
    analyzer = instantiate(OnnxYolo, {**config, "runtime": runtime}, device="cpu")
    analyzer.load()
    # A wide and a tall image in one batch: letterboxing differs, the boxes must still map back.
    wide, tall = np.zeros((64, 128, 3), np.uint8), np.zeros((128, 64, 3), np.uint8)
    assert isinstance(analyzer, OnnxYolo)
    found = analyzer.analyze([wide, tall], [FrameInfo("a", 1, 128, 64), FrameInfo("b", 1, 64, 128)])
    assert [[d.label for d in dets] for dets in found] == [["person", "car"], ["person", "car"]]
    assert found[0][0].score == pytest.approx(0.9)
    # wide: scale 0.5, padded 16 px top and bottom; box 22..42 x 27..37 in input pixels.
    assert found[0][0].box == pytest.approx(
        (22 / 0.5 / 128, (27 - 16) / 0.5 / 64, 42 / 0.5 / 128, (37 - 16) / 0.5 / 64)
    )
    # tall: scale 0.5, padded 16 px left and right.
    assert found[1][0].box == pytest.approx(
        ((22 - 16) / 0.5 / 64, 27 / 0.5 / 128, (42 - 16) / 0.5 / 64, 37 / 0.5 / 128)
    )
    check_conformance(OnnxYolo, {**config, "runtime": runtime})


def test_onnx_yolo_reports_a_missing_model(tmp_path: Path) -> None:
    analyzer = instantiate(OnnxYolo, {"model": str(tmp_path / "nope.onnx")})
    with pytest.raises(AnalyzerError, match="does not exist"):
        analyzer.load()


SMALL_DETECTOR = {
    "model": "ssdlite320_mobilenet_v3_large",
    "min_score": 0.0,
    "model_kwargs": {"detections_per_img": 5},
}


def test_torchvision_detector_batches_and_normalises_with_a_weights_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model("ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None)
    torch.save(model.state_dict(), tmp_path / "ssdlite.pt")
    analyzer = instantiate(
        TorchvisionDetector, {**SMALL_DETECTOR, "weights": str(tmp_path / "ssdlite.pt")}, "cpu"
    )
    analyzer.load()
    assert isinstance(analyzer, TorchvisionDetector)
    assert analyzer.model_version.endswith("/ssdlite320_mobilenet_v3_large/ssdlite.pt")
    frames = synthetic_frames(2, width=160, height=120)
    found = analyzer.analyze([img for img, _ in frames], [info for _, info in frames])
    assert len(found) == 2 and all(len(dets) == 5 for dets in found)
    for det in (d for dets in found for d in dets):
        x1, y1, x2, y2 = det.box
        assert 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1 and 0 <= det.score <= 1
    analyzer.close()


def test_torchvision_detector_rejects_weights_that_do_not_fit(tmp_path: Path) -> None:
    model = torchvision.models.get_model("ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None)
    torch.save(model.state_dict(), tmp_path / "coco.pt")
    analyzer = instantiate(
        TorchvisionDetector, {"weights": str(tmp_path / "coco.pt"), "num_classes": 3}, "cpu"
    )
    with pytest.raises(AnalyzerError, match="do not fit the model"):
        analyzer.load()


def test_torch_analyzers_refuse_to_run_without_weights_unless_asked() -> None:
    with pytest.raises(AnalyzerError, match="set `weights`"):
        instantiate(TorchvisionDetector, {})


def test_torch_video_classifier_passes_conformance_with_random_weights() -> None:
    config: dict[str, Any] = {"random_weights": True, "window": 4, "size": 32, "min_score": 0.0, "top_k": 2}
    check_conformance(TorchVideoClassifier, config, batch=2)


def test_torchvision_detector_passes_conformance_with_random_weights() -> None:
    check_conformance(TorchvisionDetector, {**SMALL_DETECTOR, "random_weights": True}, batch=2)


@pytest.mark.parametrize("model", ["ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn"])
def test_the_detector_explains_where_it_looked(model: str, tmp_path: Path) -> None:
    """Plumbing (random weights): one EigenCAM map per image, the image's size, 0..1, not flat;
    ``camsight analyze --explain`` draws it. What a map shows with real weights is measured
    on CenterFace (tests/face/test_explain.py)."""
    video = sample_video("bikes.mp4")
    capture = cv2.VideoCapture(str(video))
    image = capture.read()[1]
    capture.release()
    analyzer = instantiate(TorchvisionDetector, {"model": model, "random_weights": True}, "cpu")
    analyzer.load()
    assert isinstance(analyzer, Explainer)
    [saliency] = analyzer.explain([image])
    assert saliency.shape == image.shape[:2] and saliency.dtype == np.float32
    assert saliency.min() >= 0.0 and saliency.max() <= 1.0 and saliency.std() > 0.0
    options = ["-o", f"model={model}", "-o", "random_weights=true", "--device", "cpu", "--limit", "1"]
    result = CliRunner().invoke(
        app, ["analyze", "-p", "torchvision_detector", *options, "--explain", str(tmp_path), str(video)]
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.glob("*.jpg")] == ["000001.jpg"]


def peaked_r3d(path: Path) -> Path:
    """r3d_18 with random weights whose class scores differ (the last layer scaled up), saved to ``path``:
    with the plain random head every class scores about 1/400 and any clip would match any other."""
    torch.manual_seed(0)
    model = torchvision.models.get_model("r3d_18", weights=None, num_classes=400)
    with torch.no_grad():
        model.fc.weight.mul_(30.0)
    torch.save(model.state_dict(), path)
    return path


async def video_windows_stay_on_the_device(
    on_host: OnHost, images: list[Image], folder: Path, device: str
) -> None:
    """torch_video behind a host over ``images``: windows of tensors on ``device``, never through the
    host; each window scores as the same analyzer on the reference pictures of the same JPEGs."""
    weights = peaked_r3d(folder / "r3d.pt")
    config = {"weights": str(weights), "window": 4, "size": 32, "min_score": 0.0, "top_k": 400}
    reference, pictures, infos = await hosted_and_reference(
        on_host, TorchVideoClassifier, config, images, device
    )
    assert isinstance(reference, TorchVideoClassifier)
    published = on_host.results.of("torch_video")
    assert [r.frame.seq for r in published if not r.skipped] == list(range(4, len(images) + 1))
    for result in published[3:]:
        end = result.frame.seq
        [expected] = reference.analyze_clips([Clip("cam", pictures[end - 4 : end], infos[end - 4 : end])])
        scores = {d.label: d.score for d in result.detections}
        assert len(scores) == 400 and max(scores.values()) > 10 / 400, "the classes must differ to compare"
        assert {d.label: pytest.approx(d.score, rel=1e-3, abs=1e-6) for d in expected} == scores
    reference.close()


async def test_torch_video_windows_are_tensors_and_score_like_arrays(
    on_host: OnHost, bikes: list[Image], tmp_path: Path
) -> None:
    await video_windows_stay_on_the_device(on_host, bikes[:8], tmp_path, "cpu")
