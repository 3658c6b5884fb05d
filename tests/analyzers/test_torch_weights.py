"""Named torchvision weights from the torch cache, with the network blocked.

The cache is pre-seeded with random weights saved under the file name
torchvision expects: these tests check the plumbing (names, cache path, labels
and preprocessing from the weights' metadata, offline errors), not accuracy.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from camsight.analyzers import AnalyzerError
from camsight.analyzers.manager import instantiate
from camsight.analyzers.testing import synthetic_frames
from camsight_torch.detection import TorchvisionDetector
from camsight_torch.video import TorchVideoClassifier
from camsight_torch.weights import cache_file

SSD = "ssdlite320_mobilenet_v3_large"
SSD_WEIGHTS = torchvision.models.get_model_weights(SSD).COCO_V1


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """An empty TORCH_HOME, no name lookups and no connections; returns the attempts made."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise socket.gaierror("network blocked by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def seed(weights: Any, model: str, **kwargs: Any) -> Path:
    """Save a random state dict where torchvision looks for ``weights``."""
    path = cache_file(weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = torchvision.models.get_model(model, weights=None, **kwargs)
    torch.save(module.state_dict(), path)
    return path


def test_named_detector_weights_load_from_the_cache_without_the_network(offline: list[Any]) -> None:
    seed(SSD_WEIGHTS, SSD, weights_backbone=None, num_classes=91)
    analyzer = instantiate(TorchvisionDetector, {"model": SSD, "weights": "DEFAULT", "min_score": 0.0}, "cpu")
    analyzer.load()
    assert isinstance(analyzer, TorchvisionDetector)
    assert analyzer.model_version.endswith(f"/{SSD}/DEFAULT")
    assert analyzer._labels == SSD_WEIGHTS.meta["categories"]
    frames = synthetic_frames(1, width=160, height=120)
    found = analyzer.analyze([img for img, _ in frames], [info for _, info in frames])
    assert all(det.label in SSD_WEIGHTS.meta["categories"] for det in found[0])
    assert offline == []


def test_named_video_weights_bring_labels_and_preprocessing(offline: list[Any]) -> None:
    weights = torchvision.models.get_model_weights("r3d_18").KINETICS400_V1
    seed(weights, "r3d_18")
    analyzer = instantiate(TorchVideoClassifier, {"weights": "R3D_18_Weights.KINETICS400_V1", "window": 2})
    analyzer.load()
    assert isinstance(analyzer, TorchVideoClassifier)
    transform = weights.transforms()
    assert analyzer._size == transform.crop_size[0]
    assert (analyzer._mean, analyzer._std) == (tuple(transform.mean), tuple(transform.std))
    assert analyzer._labels == weights.meta["categories"]
    assert offline == []


def test_absent_weights_offline_say_which_file_to_put_where(offline: list[Any]) -> None:
    analyzer = instantiate(TorchvisionDetector, {"model": SSD, "weights": "DEFAULT"}, "cpu")
    with pytest.raises(AnalyzerError) as err:
        analyzer.load()
    message = str(err.value)
    assert "\n" not in message
    assert SSD_WEIGHTS.url in message and str(cache_file(SSD_WEIGHTS)) in message
    assert offline, "the download was not even attempted"
    assert not cache_file(SSD_WEIGHTS).exists()


def test_an_unknown_weights_name_lists_the_close_matches(offline: list[Any]) -> None:
    analyzer = instantiate(
        TorchvisionDetector, {"model": SSD, "weights": "SSDLite320_MobileNet_V3_Large_Weights.COCO_V2"}
    )
    with pytest.raises(AnalyzerError, match=r"close matches: SSDLite320_MobileNet_V3_Large_Weights\.COCO_V1"):
        analyzer.load()


def test_weights_of_another_architecture_name_both(offline: list[Any]) -> None:
    analyzer = instantiate(
        TorchvisionDetector, {"model": SSD, "weights": "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1"}
    )
    with pytest.raises(AnalyzerError, match=r"FasterRCNN_MobileNet.*another architecture.*ssdlite320"):
        analyzer.load()


def test_a_cached_file_of_another_architecture_is_one_line(offline: list[Any]) -> None:
    path = cache_file(SSD_WEIGHTS)
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.get_model("r3d_18", weights=None).state_dict(), path)
    analyzer = instantiate(TorchvisionDetector, {"model": SSD, "weights": "DEFAULT"})
    with pytest.raises(AnalyzerError, match="do not fit the model SSD") as err:
        analyzer.load()
    assert "\n" not in str(err.value)
