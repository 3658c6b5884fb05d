"""Fixtures of the face tests: loaded face analyzers, shared per session (dlib loads in ~1 s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from camsight.analyzers.manager import instantiate
from camsight_faces.analyzers import CenterFace, HaarFaces


@pytest.fixture(scope="session")
def centerface() -> Iterator[Any]:
    """CenterFace on OpenCV DNN with dlib embeddings, as the face service runs it by default."""
    analyzer = instantiate(CenterFace, {"backend": "opencv"}, device="cpu")
    analyzer.load()
    yield analyzer
    analyzer.close()


@pytest.fixture(scope="session")
def centerface_detect_only() -> Iterator[Any]:
    analyzer = instantiate(CenterFace, {"backend": "opencv", "embed": False}, device="cpu")
    analyzer.load()
    yield analyzer
    analyzer.close()


@pytest.fixture(scope="session")
def haar() -> Iterator[Any]:
    analyzer = instantiate(HaarFaces, {"embed": False}, device="cpu")
    analyzer.load()
    yield analyzer
    analyzer.close()
