"""Named torchvision weights as the core sees them: the catalogue, the cache file, pulling one.

Why here: ``camsight`` never imports a plugin, yet ``camsight models`` and the
embedded runs' choice of detector need the same files the torch analyzers load
(``camsight_torch.weights`` owns them on the plugin's side). Both sides read
torchvision's own registry and cache (``$TORCH_HOME/hub/checkpoints``), and a
download is torchvision's (``get_state_dict``: progress bar, hash check), so
the two cannot disagree about where a file lives.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# torchvision families and the analyzer that runs each
FAMILIES = {"detection": "torchvision_detector", "video": "torch_video"}


class PullFailed(OSError):
    """The weights are not in the cache and could not be downloaded; the message says where to put them."""


def catalogue() -> dict[str, tuple[str, str, Any]]:
    """Every weights name -> (analyzer, model, WeightsEnum member)."""
    import torchvision

    found: dict[str, tuple[str, str, Any]] = {}
    for family, analyzer in FAMILIES.items():
        for model in torchvision.models.list_models(module=getattr(torchvision.models, family)):
            for weights in torchvision.models.get_model_weights(model):
                found[f"{type(weights).__name__}.{weights.name}"] = (analyzer, model, weights)
    return found


def default_weights(model: str) -> Any:
    """The ``DEFAULT`` weights of a torchvision model."""
    import torchvision

    return torchvision.models.get_model_weights(model).DEFAULT


def cache_file(weights: Any) -> Path:
    """Where torchvision keeps (and looks for) the file of ``weights``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def pull(weights: Any) -> Path:
    """The cache file of ``weights``, downloaded first when absent (torchvision's progress bar, hash check).

    Raises :class:`PullFailed` (one line: the URL and the path to put it at) when offline.
    """
    path = cache_file(weights)
    if not path.is_file():
        try:  # torch.hub announces the download on stdout: keep stdout for results (--json)
            with contextlib.redirect_stdout(sys.stderr):
                weights.get_state_dict(progress=True, check_hash=True)
        except OSError as exc:  # URLError, socket errors, an unwritable cache
            raise PullFailed(
                f"cannot download {weights.url} ({exc.__class__.__name__}): put it at {path}"
            ) from None
    return path
