"""A YOLO-class detector for ``bench/gpu.py``: YOLOv8n's graph, random weights, the torch runtime.

Issue 23 asks for the GPU figures with "an ultralytics YOLOv8n export with
random weights run through the torch runtime" beside the torchvision
detector. ultralytics is a test-only dependency here (AGPL, never shipped)
and is not on a lent device machine, so the export is split in two:

* :func:`graph`: YOLOv8n exported to ONNX by ultralytics (random weights,
  640x640 input, offline, the default options but ``dynamic=True``: a batch
  runs as one, as a user exporting for a GPU would), with its large float
  initializers (the convolution weights) removed: the graph alone, under 1 MB, which
  ``bench/device/prepare.sh`` carries to the device as
  ``.device/yolov8n-graph.onnx``;
* :func:`with_random_weights`: those initializers filled from a seeded
  normal draw scaled by each tensor's fan-in (activations keep their scale
  through the network, fp16 does not overflow), into a complete ONNX file
  that the ``yolo_onnx`` analyzer runs with ``runtime: torch`` (onnx2torch).

Speed only: the detections are noise. The same path runs on a CPU in the
benchmark's smoke test, so what the device runs is what CI checks.

Run alone: ``.venv/bin/python bench/gpu_yolo.py --graph PATH`` writes the graph.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CARRIED = ROOT / ".device" / "yolov8n-graph.onnx"
INPUT_SIZE = 640  # ultralytics' default export size: what users deploy
KEEP_BYTES = 1024  # smaller initializers (shapes, the DFL's 0..15, scales) stay in the graph
OFFLINE = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false"}


def graph(target: Path, size: int = INPUT_SIZE) -> Path:
    """YOLOv8n's ONNX graph for ``size`` pixels without its weights: ``.device``'s copy (made at
    the default size), else exported by ultralytics.

    Raises ``ModuleNotFoundError`` when neither is there (no ultralytics: the
    test extra is not installed, and prepare.sh did not run).
    """
    if size == INPUT_SIZE and CARRIED.exists():
        return CARRIED
    import onnx

    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.chdir(tmp),
        # ultralytics offline, its settings in tmp (it reads them at import)
        mock.patch.dict(os.environ, {**OFFLINE, "YOLO_CONFIG_DIR": str(Path(tmp) / "config")}),
    ):
        import torch
        from ultralytics import YOLO

        torch.manual_seed(0)
        model_file = YOLO("yolov8n.yaml").export(format="onnx", imgsz=size, dynamic=True)
        exported = Path(tmp) / model_file
        model = onnx.load(str(exported))
    for tensor in model.graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT and len(tensor.raw_data) > KEEP_BYTES:
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", "random"
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def with_random_weights(graph_path: Path, target: Path, seed: int = 0) -> Path:
    """A complete ONNX file: every weight :func:`graph` removed, drawn from a seeded normal."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph_path), load_external_data=False)
    rng = np.random.default_rng(seed)
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            dims = tuple(tensor.dims)
            fan_in = math.prod(dims[1:]) or 1
            values = rng.normal(0.0, 1.0 / math.sqrt(fan_in), dims).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    onnx.save(model, str(target))
    return target


def yolo_model(folder: Path, size: int = INPUT_SIZE) -> tuple[Path, int]:
    """YOLOv8n with random weights for ``size`` pixels in ``folder``, and that size."""
    model = with_random_weights(graph(folder / "yolov8n-graph.onnx", size), folder / "yolov8n-random.onnx")
    return model, size


def analyzer_config(model: tuple[Path, int]) -> dict[str, object]:
    """The ``yolo_onnx`` config the benchmarks run: the torch runtime (onnx2torch), as on a GPU."""
    path, size = model
    return {"model": str(path), "input_size": size, "runtime": "torch", "conf_threshold": 0.25}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--graph":
        sys.exit("usage: bench/gpu_yolo.py --graph PATH")
    written = graph(Path(sys.argv[2]))
    print(f"{written}: {written.stat().st_size / 1e6:.2f} MB")
