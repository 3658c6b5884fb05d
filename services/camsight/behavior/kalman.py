"""ByteTrack's corner Kalman filter, computed per coordinate instead of as 8x8 matrices.

``trackers``' ``XYXYStateEstimator`` keeps (x1, y1, x2, y2) and their four
velocities in one 8-dimensional filter: every predict and update multiplies
8x8 matrices and inverts a 4x4 one, for each track in each frame, and that
was most of the behavior service's CPU time. Its matrices are all block
diagonal with the same 2x2 block per coordinate (F couples a position only
to its own velocity, H observes positions, Q and R as ByteTrack configures
them are multiples of the identity), so the filter is four independent
(position, velocity) filters that share one 2x2 covariance. This estimator
computes exactly that, in plain floats, with the library's own process-noise
scaling for gaps (``ScalableProcessNoise``), and plugs into the library
through its public ``state_estimator_class`` parameter. A test checks it
against ``XYXYStateEstimator`` step by step.
"""

from __future__ import annotations

import numpy as np
from trackers.utils.motion_models import (
    _NOMINAL_FRAME_STEP_TOLERANCE,
    _NOMINAL_FRAME_STEP_TOLERANCE_SECONDS,
)
from trackers.utils.state_representations import BaseStateEstimator


class _Noise:
    """What ``ByteTrackTracklet._configure_noise`` reads before scaling it: identity matrices."""

    def __init__(self) -> None:
        self.measurement_noise = np.eye(4)
        self.process_noise = np.eye(8)


class DecoupledXYXYEstimator(BaseStateEstimator):
    """Four (position, velocity) Kalman filters with one shared covariance ``[[p, c], [c, v]]``."""

    def __init__(self, bbox: np.ndarray) -> None:  # no super(): there is no 8x8 filter to build
        self.kf = _Noise()  # type: ignore[assignment]
        self.x = [float(b) for b in bbox[:4]]
        self.vx = [0.0, 0.0, 0.0, 0.0]
        self.p, self.c, self.v = 1.0, 0.0, 1.0  # the library's initial covariance: identity
        self.r, self.q_pos, self.q_vel = 1.0, 1.0, 1.0

    def set_kf_covariances(
        self,
        measurement_noise: np.ndarray | None = None,
        process_noise: np.ndarray | None = None,
        state_covariance: np.ndarray | None = None,
    ) -> None:
        if measurement_noise is not None:
            self.r = _isotropic(measurement_noise, "measurement_noise")
        if process_noise is not None:
            self.q_pos = _isotropic(process_noise[:4, :4], "process_noise")
            self.q_vel = _isotropic(process_noise[4:, 4:], "process_noise")
            if np.any(process_noise[:4, 4:]):
                raise ValueError("process_noise must not couple positions and velocities")
        if state_covariance is not None:
            self.p = _isotropic(state_covariance[:4, :4], "state_covariance")
            self.v = _isotropic(state_covariance[4:, 4:], "state_covariance")
            self.c = float(state_covariance[0, 4])

    def predict(self, frame_step: float = 1.0, frame_rate: float | None = None) -> None:
        dt = frame_step
        for i in range(4):
            self.x[i] += self.vx[i] * dt
        p, c, v = self.p, self.c, self.v
        p, c = p + 2 * dt * c + dt * dt * v, c + dt * v
        tolerance = (
            _NOMINAL_FRAME_STEP_TOLERANCE_SECONDS * frame_rate
            if frame_rate is not None and frame_rate > 0
            else _NOMINAL_FRAME_STEP_TOLERANCE
        )
        if abs(dt - 1.0) <= tolerance:
            self.p, self.c, self.v = p + self.q_pos, c, v + self.q_vel
        else:  # discrete white-noise acceleration, as the library scales a gap
            a = self.q_vel
            self.p, self.c, self.v = p + a * dt**4 / 4, c + a * dt**3 / 2, v + a * dt * dt

    def update(self, bbox: np.ndarray | None) -> None:
        if bbox is None:
            return
        p, c, v, r = self.p, self.c, self.v, self.r
        s = p + r
        k0, k1 = p / s, c / s
        for i in range(4):
            y = float(bbox[i]) - self.x[i]
            self.x[i] += k0 * y
            self.vx[i] += k1 * y
        # Joseph form, as the library computes it: (I - KH) P (I - KH)^T + K R K^T.
        a = 1.0 - k0
        self.p = a * a * p + r * k0 * k0
        self.c = a * (c - k1 * p) + r * k0 * k1
        self.v = k1 * k1 * p - 2 * k1 * c + v + r * k1 * k1

    def state_to_bbox(self) -> np.ndarray:
        return np.array(self.x)

    def bbox_to_measurement(self, bbox: np.ndarray) -> np.ndarray:
        return bbox

    def clamp_velocity(self, frame_step: float = 1.0) -> None:
        """Corner velocities are unconstrained (as in ``XYXYStateEstimator``)."""

    def _create_filter(self, bbox: np.ndarray) -> None:  # type: ignore[override]
        raise NotImplementedError("this estimator has no 8x8 filter")


def _isotropic(matrix: np.ndarray, name: str) -> float:
    value = float(matrix[0, 0])
    if not np.allclose(matrix, value * np.eye(len(matrix))):
        raise ValueError(f"{name} must be a multiple of the identity for the decoupled filter")
    return value
