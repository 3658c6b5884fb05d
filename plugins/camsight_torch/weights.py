"""torchvision weights by name (``DEFAULT``, ``Enum.MEMBER``), loaded from the torch cache.

Why a module of its own: the cache path, the offline error and the close-match
hints are shared by every torch analyzer and by ``camsight models``. Downloading
and hash checking stay torchvision's (``WeightsEnum.get_state_dict``): a missing
file is fetched once into ``$TORCH_HOME/hub/checkpoints`` with a progress bar.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from camsight.analyzers import AnalyzerError


def is_named(weights: str) -> bool:
    """A weights name (``DEFAULT`` or ``Enum.MEMBER``, e.g. ``R3D_18_Weights.KINETICS400_V1``), not a file."""
    return weights == "DEFAULT" or re.fullmatch(r"\w+_Weights\.\w+", weights) is not None


def resolve(model: str, name: str) -> Any:
    """The torchvision ``WeightsEnum`` member ``name`` (or ``DEFAULT``) of architecture ``model``."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(model)
    except (ValueError, KeyError):
        raise AnalyzerError(f"{model!r} has no named torchvision weights") from None
    members = {f"{enum.__name__}.{m.name}": m for m in enum}
    if name == "DEFAULT":
        return enum.DEFAULT
    if name in members:
        return members[name]
    if name.split(".", 1)[0] != enum.__name__:
        try:
            other = torchvision.models.get_weight(name)
        except (ValueError, KeyError, AttributeError):
            other = None
        if other is not None:
            raise AnalyzerError(
                f"weights {name} are for another architecture than {model!r} ({enum.__name__})"
            )
    close = difflib.get_close_matches(name, [*members, "DEFAULT"], n=3, cutoff=0.4) or list(members)
    raise AnalyzerError(f"unknown weights {name!r} for {model}; close matches: {', '.join(close)}")


def cache_file(weights: Any) -> Path:
    """Where torchvision keeps (and looks for) the file of ``weights``: ``$TORCH_HOME/hub/checkpoints``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def state_dict(weights: Any) -> dict[str, Any]:
    """The state dict of ``weights``: from the cache, else downloaded once (progress bar, hash check)."""
    path = cache_file(weights)
    try:
        return dict(weights.get_state_dict(progress=True, check_hash=True))
    except OSError as exc:  # URLError, socket errors, unreadable cache: all OSError
        raise AnalyzerError(
            f"weights {weights} not in the torch cache and not downloadable ({exc.__class__.__name__}): "
            f"put {weights.url} at {path}"
        ) from None
    except RuntimeError as exc:
        raise AnalyzerError(f"weights file {path} is unreadable: {str(exc).splitlines()[0][:200]}") from None
