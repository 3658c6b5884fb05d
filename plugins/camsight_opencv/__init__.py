"""Built-in camsight analyzers that need only OpenCV (registered through the camsight entry-point group).

* ``hog``: people, with the HOG + linear SVM weights built into OpenCV;
* ``motion``: moving regions from MOG2 background subtraction;
* ``flow_activity``: a clip analyzer labelling running or sudden motion
  from dense optical flow over a window of frames.
"""

from __future__ import annotations

from collections.abc import Sequence

from camsight.analyzers import Analyzer, hookimpl

from camsight_opencv.flow import FlowActivity
from camsight_opencv.hog import HogPeople
from camsight_opencv.motion import Motion

__version__ = "0.1.0"


@hookimpl
def camsight_analyzers() -> Sequence[type[Analyzer]]:
    return [HogPeople, Motion, FlowActivity]
