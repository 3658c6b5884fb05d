"""Device and precision helpers for analyzers that use torch.

torch is imported lazily (it takes seconds), so OpenCV-only plugins and
``camsight plugins list`` never pay for it.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from camsight.analyzers.api import AnalyzerError, Precision

if TYPE_CHECKING:
    import torch


def cuda_available() -> bool:
    """True when torch is installed and sees at least one CUDA device."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(device: str | None) -> str:
    """Turn ``auto`` (or None) into ``cuda`` when torch sees a GPU, else ``cpu``.

    An explicit ``cuda``/``cuda:N`` without a visible GPU is an error, so an
    operator asking for the GPU does not silently run on the CPU.
    """
    if device in (None, "auto"):
        return "cuda" if cuda_available() else "cpu"
    if device.startswith("cuda") and not cuda_available():
        raise AnalyzerError(f"device {device!r} requested but torch sees no CUDA device")
    return device


def torch_dtype(precision: Precision | None) -> torch.dtype:
    """The floating-point dtype inputs should have for ``precision`` (int8 runs float32 inputs)."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision or "fp32", torch.float32)


# int8 (dynamic quantization) converts Linear layers only: below this share of a model's
# weights in Linear layers it changes nothing measurable (decision 0029), so it is refused.
MIN_LINEAR_SHARE = 0.25


def linear_share(module: Any) -> float:
    """Share of a torch module's parameters that sit in Linear layers (0 for a pure conv net)."""
    import torch

    total = sum(p.numel() for p in module.parameters())
    linear = sum(
        p.numel() for m in module.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters()
    )
    return linear / total if total else 0.0


def prepare_module(module: Any, device: str, precision: Precision | None) -> Any:
    """Put a torch module in eval mode on ``device`` at ``precision``.

    ``int8`` applies dynamic quantization to Linear layers (CPU only, as
    torch implements it), and is refused for models it would leave as they
    are (convolutional ones); ``fp16`` needs a GPU for most operators.
    """
    import torch

    module = module.eval()
    if precision == "int8":
        if device != "cpu":
            raise AnalyzerError("precision int8 (dynamic quantization) runs on the CPU only")
        share = linear_share(module)
        if share < MIN_LINEAR_SHARE:
            raise AnalyzerError(
                f"precision int8 does nothing for this model: it quantizes Linear layers, which hold "
                f"{share:.0%} of its weights; use fp32, or an ONNX model from `camsight models quantize`"
            )
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
    return module.to(device=device, dtype=torch_dtype(precision))
