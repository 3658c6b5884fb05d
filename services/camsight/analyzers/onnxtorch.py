"""ONNX files as torch modules (onnx2torch), for the analyzers that run them on a GPU.

Why one module: ``yolo_onnx`` (``runtime: torch``) and CenterFace's torch
backend both convert ONNX with onnx2torch, whose 1.5 releases convert no
Split or Resize of opset 18, the opset of ultralytics' default exports
(YOLOv8 and YOLO11 under torch 2.x): without this, the file a user exports
with the default options would not load on a GPU. The opset-18 versions of
those two ops add only what such exports leave at their defaults (Split's
``num_outputs``; Resize's ``antialias``, ``axes`` and
``keep_aspect_ratio_policy``), so they are converted here as onnx2torch
converts opset 13, and a use of the new attributes is refused by name. Any
other op onnx2torch lacks is one :class:`AnalyzerError` line, not its trace.
onnx2torch and torch are imported lazily: they come with the ``torch`` extra.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from camsight.analyzers.api import AnalyzerError

RESIZE_18_DEFAULTS = {"antialias": 0, "axes": None, "keep_aspect_ratio_policy": "stretch"}


def to_torch(model: Any) -> Any:
    """``model`` (an ``onnx.ModelProto``) as a ``torch.nn.Module``; an op it cannot convert is one line."""
    import onnx2torch

    _register_opset_18()
    try:
        return onnx2torch.convert(model)
    except NotImplementedError as exc:
        raise AnalyzerError(
            f"torch cannot run this ONNX file: {exc} (export it with opset 17, or use runtime: onnxruntime)"
        ) from None


def _register_opset_18() -> None:
    """Add the Split and Resize converters of opset 18 to onnx2torch, once (a later onnx2torch
    that has its own keeps them)."""
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription, add_converter

    def missing(op: str) -> bool:
        return OperationDescription(domain="", operation_type=op, version=18) not in _CONVERTER_REGISTRY

    if missing("Split"):
        add_converter(operation_type="Split", version=18)(_split_18)
    if missing("Resize"):
        resize_13 = _CONVERTER_REGISTRY[OperationDescription(domain="", operation_type="Resize", version=13)]

        def resize_18(node: Any, graph: Any) -> Any:
            for name, default in RESIZE_18_DEFAULTS.items():
                if node.attributes.get(name, default) != default:
                    raise NotImplementedError(f"Resize (opset 18) with {name}={node.attributes[name]!r}")
            return resize_13(node, graph)

        add_converter(operation_type="Resize", version=18)(resize_18)


def _split_18(node: Any, graph: Any) -> Any:
    """Split of opset 18: sizes from the ``split`` input, else ``num_outputs`` parts of ceil(n / parts)."""
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    return OperationConverterResult(
        torch_module=_split_equal()(num_splits=len(node.output_values), axis=node.attributes.get("axis", 0)),
        onnx_mapping=onnx_mapping_from_node(node=node),
    )


@functools.cache
def _split_equal() -> type:
    """onnx2torch's Split of opset 13, with opset 18's rule for uneven parts (the last one smaller)."""
    from onnx2torch.node_converters.split import OnnxSplit13

    class SplitEqual(OnnxSplit13):
        def forward(self, input_tensor: Any, split: Any = None) -> Any:
            if split is not None:
                return super().forward(input_tensor, split)
            size = math.ceil(input_tensor.shape[self.axis] / self.num_splits)
            return input_tensor.split(size, dim=self.axis)

    return SplitEqual
