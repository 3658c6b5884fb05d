"""``camsight models list|info|pull`` against a pre-seeded torch cache, with the network blocked.

The seeded file holds random weights under torchvision's file name: these tests
check the cache plumbing and the reported facts, not the weights.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from camsight.cli import app
from typer.testing import CliRunner

runner = CliRunner()
SSD = "ssdlite320_mobilenet_v3_large"
SSD_WEIGHTS = torchvision.models.get_model_weights(SSD).COCO_V1
SSD_NAME = "SSDLite320_MobileNet_V3_Large_Weights.COCO_V1"


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty TORCH_HOME with name lookups and connections refused; returns its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror("network blocked by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return tmp_path / "torch" / "hub" / "checkpoints"


def seed(cache: Path) -> Path:
    cache.mkdir(parents=True)
    path = cache / Path(SSD_WEIGHTS.url).name
    model = torchvision.models.get_model(SSD, weights=None, weights_backbone=None)
    torch.save(model.state_dict(), path)
    return path


def test_models_list_says_which_weights_are_present(cache: Path) -> None:
    seed(cache)
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)["models"]}
    assert rows[SSD_NAME]["present"] is True and rows[SSD_NAME]["analyzer"] == "torchvision_detector"
    assert rows["R3D_18_Weights.KINETICS400_V1"] == {
        "name": "R3D_18_Weights.KINETICS400_V1",
        "analyzer": "torch_video",
        "model": "r3d_18",
        "file": str(cache / "r3d_18-b3b3357e.pth"),
        "present": False,
    }


def test_models_info_reports_labels_size_and_sha256_of_the_cached_file(cache: Path) -> None:
    path = seed(cache)
    result = runner.invoke(app, ["models", "info", SSD, "--json"])  # a model name means its DEFAULT
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["name"] == SSD_NAME and info["file"] == str(path)
    assert info["labels"] == SSD_WEIGHTS.meta["categories"] and len(info["labels"]) == 91
    assert info["size_bytes"] == path.stat().st_size
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    video = json.loads(
        runner.invoke(app, ["models", "info", "R3D_18_Weights.KINETICS400_V1", "--json"]).output
    )
    assert video["input_size"] == [112, 112] and video["present"] is False and video["sha256"] is None


def test_models_pull_keeps_a_cached_file_and_says_where_offline(cache: Path) -> None:
    path = seed(cache)
    kept = runner.invoke(app, ["models", "pull", SSD_NAME])
    assert kept.exit_code == 0 and kept.output.strip() == str(path)
    missing = runner.invoke(app, ["models", "pull", "R3D_18_Weights.KINETICS400_V1"])
    assert missing.exit_code == 1
    assert "put it at" in missing.output and str(cache / "r3d_18-b3b3357e.pth") in missing.output
    assert not (cache / "r3d_18-b3b3357e.pth").exists()


def test_models_info_of_an_unknown_name_lists_close_matches(cache: Path) -> None:
    result = runner.invoke(app, ["models", "info", "SSDLite320_MobileNet_V3_Large_Weights.COCO"])
    assert result.exit_code == 1 and SSD_NAME in result.output
