"""Which detector ``camsight run`` / ``demo`` use: the COCO detector when its weights can be had.

The cache holds random weights under torchvision's file name (plumbing, not
accuracy) and the network is blocked: the chosen settings must build and load
the detector with nothing fetched; an empty cache falls back to HOG + motion
with one line naming the command that gets the detector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from camsight.analyzers.manager import default_manager
from camsight.config import Settings
from camsight.detector.service import DetectorSettings
from camsight.run.detector import COCO_ANALYZER, COCO_MODEL, NO_DOWNLOAD, PULL_COMMAND, choose_detector
from camsight.run.weights import cache_file, default_weights
from torch_cache import block_network, seed


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(NO_DOWNLOAD, raising=False)  # the suite's guard (tests/conftest.py)
    return block_network(monkeypatch)


def test_cached_weights_give_the_coco_detector_and_it_loads_offline(offline: list[Any]) -> None:
    seed(default_weights(COCO_MODEL), COCO_MODEL, weights_backbone=None)
    choice = choose_detector(Settings(services={"detector": {"batch": 4}}))
    assert choice.fallback is None and COCO_MODEL in choice.detector
    section = choice.settings.services["detector"]
    assert section["batch"] == 4, "the rest of the detector's settings are kept"
    assert list(section["analyzers"]) == [COCO_ANALYZER]
    analyzer = default_manager().create(COCO_ANALYZER, section["analyzers"][COCO_ANALYZER], "cpu")
    analyzer.load()
    assert analyzer.model_version.endswith(f"/{COCO_MODEL}/DEFAULT")
    assert offline == []


def test_an_empty_cache_offline_falls_back_to_hog_and_motion_saying_how_to_get_it(offline: list[Any]) -> None:
    settings = Settings()
    choice = choose_detector(settings)
    assert choice.settings is settings
    assert set(DetectorSettings.model_validate(settings.services.get("detector", {})).analyzers) == {
        "hog",
        "motion",
    }
    assert choice.fallback is not None and "\n" not in choice.fallback
    assert choice.fallback.endswith(f"get them with: {PULL_COMMAND}")
    assert str(cache_file(default_weights(COCO_MODEL))) in choice.fallback
    assert offline, "the download was not even attempted"


def test_configured_analyzers_are_the_users_choice(offline: list[Any]) -> None:
    settings = Settings(services={"detector": {"analyzers": {"hog": {}}}})
    choice = choose_detector(settings)
    assert choice.settings is settings and choice.fallback is None
    assert offline == [], "nothing is fetched for a detector the user did not ask for"


def test_no_download_uses_the_cache_only(offline: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_DOWNLOAD, "1")
    choice = choose_detector(Settings())
    assert choice.fallback is not None and f"{NO_DOWNLOAD}=1" in choice.fallback
    assert choice.fallback.endswith(PULL_COMMAND)
    assert offline == [], "nothing was even tried"
    seed(default_weights(COCO_MODEL), COCO_MODEL, weights_backbone=None)
    assert choose_detector(Settings()).fallback is None
