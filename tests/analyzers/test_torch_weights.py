"""Named torchvision weights from the torch cache, with the network blocked.

The cache is pre-seeded with random weights saved under the file name
torchvision expects: these tests check the plumbing (names, cache path, labels
and preprocessing from the weights' metadata, offline errors), not accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import pytest
import torch
import torchvision
from camsight.analyzers import AnalyzerError, Clip, ClipAnalyzer, FrameInfo
from camsight.analyzers.manager import instantiate
from camsight.analyzers.testing import synthetic_frames
from camsight.samples import sample_video
from camsight_torch.detection import TorchvisionDetector
from camsight_torch.video import TorchVideoClassifier
from camsight_torch.weights import cache_file
from torch_cache import block_network, seed

SSD = "ssdlite320_mobilenet_v3_large"
SSD_WEIGHTS = torchvision.models.get_model_weights(SSD).COCO_V1


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """An empty TORCH_HOME, no name lookups and no connections; returns the attempts made."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return block_network(monkeypatch)


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


def clip_of(video: str, length: int) -> Clip:
    """The first ``length`` frames of a sample video as one clip."""
    capture = cv2.VideoCapture(str(sample_video(video)))
    images = [capture.read()[1] for _ in range(length)]
    capture.release()
    height, width = images[0].shape[:2]
    return Clip(
        "bikes", images, [FrameInfo("bikes", i, width, height, media_time=i / 25) for i in range(length)]
    )


@pytest.mark.parametrize(
    ("model", "name", "length", "size"),
    [
        ("r3d_18", "R3D_18_Weights.KINETICS400_V1", 16, 112),
        ("mvit_v2_s", "MViT_V2_S_Weights.KINETICS400_V1", 16, 224),
        ("swin3d_t", "Swin3D_T_Weights.KINETICS400_V1", 32, 224),
    ],
)
def test_video_transformers_load_by_name_and_label_real_clips(
    offline: list[Any], model: str, name: str, length: int, size: int
) -> None:
    """Plumbing (random weights): the clip's length and size come from the weights' metadata."""
    weights = torchvision.models.get_weight(name)
    seed(weights, model)
    analyzer = instantiate(
        TorchVideoClassifier, {"model": model, "weights": name, "min_score": 0.0, "top_k": 3}
    )
    analyzer.load()
    assert isinstance(analyzer, ClipAnalyzer)
    assert (analyzer.window, analyzer._size) == (length, size)  # type: ignore[attr-defined]
    [found] = analyzer.analyze_clips([clip_of("bikes.mp4", analyzer.window)])
    assert len(found) == 3
    assert all(det.label in weights.meta["categories"] and 0 <= det.score <= 1 for det in found)
    assert offline == []


def test_a_clip_mvit_cannot_take_is_refused_at_load_in_one_line(offline: list[Any]) -> None:
    analyzer = instantiate(TorchVideoClassifier, {"model": "mvit_v2_s", "random_weights": True, "window": 8})
    with pytest.raises(
        AnalyzerError, match=r"mvit_v2_s takes clips of exactly 16 frames of 224x224; got window 8"
    ):
        analyzer.load()
