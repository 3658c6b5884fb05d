"""The per-coordinate corner Kalman filter computes what trackers' XYXYStateEstimator computes."""

from __future__ import annotations

import numpy as np
import pytest
from camsight.behavior.kalman import DecoupledXYXYEstimator
from trackers.core.bytetrack.tracklet import ByteTrackTracklet
from trackers.utils.predict_timing import PredictTiming
from trackers.utils.state_representations import XYXYStateEstimator


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_library_filter_step_by_step(seed: int) -> None:
    rng = np.random.default_rng(seed)
    box = np.array([0.2, 0.3, 0.3, 0.6])
    ours = ByteTrackTracklet(box, DecoupledXYXYEstimator)
    theirs = ByteTrackTracklet(box, XYXYStateEstimator)
    for _ in range(300):
        # Nominal steps, near-nominal jitter, gaps and short steps; misses and updates.
        step = float(rng.choice([1.0, 1.002, 0.5, 3.7, 12.0]))
        timing = PredictTiming(frame_step=step, elapsed_seconds=step / 30, frame_rate=30.0)
        np.testing.assert_allclose(ours.predict(timing), theirs.predict(timing), rtol=1e-9, atol=1e-12)
        if rng.random() < 0.6:
            box = box + rng.normal(0, 0.01, 4) + 0.005
            ours.update(box)
            theirs.update(box)
        np.testing.assert_allclose(ours.get_state_bbox(), theirs.get_state_bbox(), rtol=1e-9, atol=1e-12)


def test_noise_that_couples_coordinates_is_refused() -> None:
    estimator = DecoupledXYXYEstimator(np.zeros(4))
    with pytest.raises(ValueError, match="measurement_noise"):
        estimator.set_kf_covariances(measurement_noise=np.ones((4, 4)))
