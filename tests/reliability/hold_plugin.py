"""A test analyzer that can hold a batch forever, to kill a replica exactly mid-batch.

With ``CAMSIGHT_TEST_HOLD=<path>`` in its environment, ``analyze`` writes
``path`` (the test's signal that a batch is in hand) and then blocks; without
it the analyzer returns no detections at once. Loaded by the detector through
``services.detector.plugin_modules: [hold_plugin]``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from camsight.analyzers import KIND_OBJECTS, Detection, FrameAnalyzer, FrameInfo, Image, hookimpl


class Hold(FrameAnalyzer):
    name = "hold"
    kind = KIND_OBJECTS
    version = "1"

    def analyze(self, images: Sequence[Image], frames: Sequence[FrameInfo]) -> list[list[Detection]]:
        marker = os.environ.get("CAMSIGHT_TEST_HOLD")
        if marker:
            Path(marker).write_text(",".join(str(f.seq) for f in frames))
            threading.Event().wait()  # until SIGKILL
        return [[] for _ in images]


@hookimpl
def camsight_analyzers() -> list[type[FrameAnalyzer]]:
    return [Hold]
