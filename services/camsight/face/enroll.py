"""The enrollment endpoint: an image with exactly one face in, a gallery sample out.

Requests are ``camsight.v1.EnrollRequest`` on ``camsight.face.enroll``
(NATS request/reply, queue group shared by the face replicas); replies are
``camsight.v1.EnrollReply``. The face is found and embedded by the same
analyzer that analyses the cameras, so gallery and live embeddings come
from one model. Refusals carry a gRPC-style code and a reason a person can
act on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import cv2
import numpy as np
from google.protobuf.message import DecodeError
from prometheus_client import Counter

from camsight.analyzers import (
    EMBEDDING_MODEL_ATTRIBUTE,
    FACE_LABEL,
    Detection,
    FrameAnalyzer,
    FrameInfo,
    Image,
)
from camsight.face.gallery import Gallery
from camsight.naming import validate_id
from camsight.v1 import identity_pb2

log = logging.getLogger(__name__)

INVALID_ARGUMENT = "INVALID_ARGUMENT"
FAILED_PRECONDITION = "FAILED_PRECONDITION"
INTERNAL = "INTERNAL"

"""Detection attribute naming the embedding model (set by the face analyzers)."""

ENROLLMENTS = Counter("camsight_face_enrollments", "Enrollment requests by outcome", ["outcome"])


class EnrollError(Exception):
    """An enrollment refused for a reason the caller can fix; ``code`` is a gRPC status name."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def decode_image(data: bytes) -> Image:
    """The request's image as BGR pixels, or an INVALID_ARGUMENT saying why not."""
    if not data:
        raise EnrollError(INVALID_ARGUMENT, "the request holds no image")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise EnrollError(
            INVALID_ARGUMENT, f"the image ({len(data)} bytes) cannot be decoded: send a JPEG or PNG"
        )
    return np.asarray(image, dtype=np.uint8)


def single_face(faces: Sequence[Detection]) -> Detection:
    """The one face of an enrollment image; refuse none or several."""
    if not faces:
        raise EnrollError(INVALID_ARGUMENT, "no face found in the image")
    if len(faces) > 1:
        raise EnrollError(
            INVALID_ARGUMENT,
            f"{len(faces)} faces found in the image: enroll with an image of exactly one face",
        )
    face = faces[0]
    if not face.embedding:
        raise EnrollError(FAILED_PRECONDITION, "face embeddings are disabled (services.face.embed: false)")
    return face


class Enroller:
    """Turns EnrollRequest bytes into EnrollReply bytes; never raises for bad input."""

    def __init__(
        self,
        analyzer: FrameAnalyzer,
        gallery: Gallery,
        crop: Callable[[Image, tuple[float, float, float, float]], bytes],
    ) -> None:
        self.analyzer = analyzer
        self.gallery = gallery
        self.crop = crop

    async def __call__(self, payload: bytes) -> bytes:
        try:
            identity = await self.enroll(payload)
        except EnrollError as exc:
            log.info("enrollment refused: %s", exc.reason)
            ENROLLMENTS.labels("refused").inc()
            return identity_pb2.EnrollReply(error=exc.reason, error_code=exc.code).SerializeToString()
        ENROLLMENTS.labels("enrolled").inc()
        return identity_pb2.EnrollReply(identity=identity).SerializeToString()

    async def enroll(self, payload: bytes) -> identity_pb2.Identity:
        request = identity_pb2.EnrollRequest()
        try:
            request.ParseFromString(payload)
        except DecodeError:
            raise EnrollError(INVALID_ARGUMENT, "the request is not a camsight.v1.EnrollRequest") from None
        try:
            identity_id = validate_id(request.identity_id, "identity id")
        except ValueError as exc:
            raise EnrollError(INVALID_ARGUMENT, str(exc)) from None
        image = await asyncio.to_thread(decode_image, request.image)
        face, thumbnail = await asyncio.to_thread(self._face, image)
        model = face.attributes.get(EMBEDDING_MODEL_ATTRIBUTE, "")
        if model != self.gallery.model:
            used = model or "an unnamed model"
            raise EnrollError(
                FAILED_PRECONDITION,
                f"the analyzer embeds with {used}, the gallery holds {self.gallery.model}",
            )
        identity, _ = await self.gallery.add_sample(
            identity_id, face.embedding, thumbnail, request.display_name, dict(request.labels)
        )
        log.info("enrolled a face for identity %s (%d faces)", identity.id, identity.face_count)
        return identity

    def _face(self, image: Image) -> tuple[Detection, bytes]:
        height, width = image.shape[:2]
        info = FrameInfo(camera_id="enroll", seq=0, width=width, height=height)
        faces = [d for d in self.analyzer.analyze([image], [info])[0] if d.label == FACE_LABEL]
        face = single_face(faces)
        return face, self.crop(image, face.box)


def error_reply(exc: Exception) -> bytes:
    """The reply for an unexpected failure (the endpoint still answers)."""
    ENROLLMENTS.labels("failed").inc()
    reason = f"enrollment failed: {type(exc).__name__}: {exc}"[:500]
    return identity_pb2.EnrollReply(error=reason, error_code=INTERNAL).SerializeToString()
