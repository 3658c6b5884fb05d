"""A torch cache the tests control: seeded with random weights, with the network blocked.

Random weights saved under the file name torchvision expects stand in for the
published ones (the tests prove plumbing, not accuracy); blocking name
lookups and connections proves nothing is fetched. ``offline_main.py`` does
the same for a ``camsight`` child process.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from camsight.run.weights import cache_file


def block_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """No name lookups and no connections from now on; returns the attempts made."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise socket.gaierror("network blocked by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def seed(weights: Any, model: str, **kwargs: Any) -> Path:
    """Save a random state dict of ``model`` where torchvision looks for ``weights``."""
    path = cache_file(weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = torchvision.models.get_model(model, weights=None, **kwargs)
    torch.save(module.state_dict(), path)
    return path
