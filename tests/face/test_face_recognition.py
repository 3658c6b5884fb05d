"""Recognition on real footage: dlib embeddings of CenterFace faces matched against a gallery.

Evaluated on every 2nd carphone_pristine frame (60 frames; dlib costs ~55 ms
a face on one core): percentages are over the frames evaluated in which a
face was detected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from camsight.analyzers import Detection, FrameInfo
from camsight.face.matching import GalleryIndex
from camsight.v1 import identity_pb2
from face_support import astronaut, carphone, carphone_distorted

MODEL = "dlib_resnet_v1"
THRESHOLD = 0.6
EVALUATED = range(1, 120, 2)
DISTORTED_ENROLLMENT_FRAME = 64
"""carphone_distorted is heavily compressed: of its 120 frames only this one
embeds within 0.6 of (nearly) every pristine face; docs/faces.md has the scan."""


def faces(analyzer: Any, image: Any) -> list[Detection]:
    info = FrameInfo("test", 0, image.shape[1], image.shape[0])
    return [d for d in analyzer.analyze([image], [info])[0] if d.label == "face"]


def only_face(analyzer: Any, image: Any) -> Detection:
    found = faces(analyzer, image)
    assert len(found) == 1
    assert found[0].attributes["embedding_model"] == MODEL and len(found[0].embedding) == 128
    return found[0]


def record(identity_id: str, *embeddings: list[float]) -> identity_pb2.IdentityRecord:
    rec = identity_pb2.IdentityRecord(
        identity=identity_pb2.Identity(id=identity_id, display_name=identity_id)
    )
    for i, embedding in enumerate(embeddings):
        rec.samples.add(id=str(i), embedding=embedding, model=MODEL)
    return rec


@pytest.fixture(scope="module")
def pristine_faces(centerface: Any) -> list[list[Detection]]:
    frames = carphone()
    return [faces(centerface, frames[i]) for i in EVALUATED]


def recognised_share(index: GalleryIndex, per_frame: list[list[Detection]], who: str) -> float:
    detected = [dets for dets in per_frame if dets]
    hits = sum(
        1 for dets in detected if any(index.match(d.embedding, THRESHOLD).identity_id == who for d in dets)
    )
    return hits / len(detected)


def test_man_enrolled_from_a_distorted_frame_is_recognised_in_90_percent_of_pristine_frames(
    centerface: Any, pristine_faces: list[list[Detection]]
) -> None:
    enrolled = only_face(centerface, carphone_distorted()[DISTORTED_ENROLLMENT_FRAME])
    index = GalleryIndex.build([record("carphone", enrolled.embedding)], MODEL)
    share = recognised_share(index, pristine_faces, "carphone")
    assert share >= 0.9, f"recognised in {share:.0%} of the frames with a face"


def test_man_enrolled_from_a_pristine_frame_is_recognised_in_90_percent_of_other_frames(
    centerface: Any, pristine_faces: list[list[Detection]]
) -> None:
    enrolled = only_face(centerface, carphone()[0])  # frame 0 is not among the evaluated (odd) frames
    index = GalleryIndex.build([record("carphone", enrolled.embedding)], MODEL)
    assert recognised_share(index, pristine_faces, "carphone") >= 0.9


def test_no_carphone_frame_is_matched_to_the_astronaut(
    centerface: Any, pristine_faces: list[list[Detection]]
) -> None:
    man = only_face(centerface, carphone_distorted()[DISTORTED_ENROLLMENT_FRAME])
    woman = only_face(centerface, astronaut())
    index = GalleryIndex.build(
        [record("carphone", man.embedding), record("astronaut", woman.embedding)], MODEL
    )
    matches = [index.match(d.embedding, THRESHOLD) for dets in pristine_faces for d in dets]
    assert matches and not [m for m in matches if m.identity_id == "astronaut"]
    alone = GalleryIndex.build([record("astronaut", woman.embedding)], MODEL)
    distances = [alone.match(d.embedding, THRESHOLD).distance for dets in pristine_faces for d in dets]
    assert min(distances) > THRESHOLD, "the astronaut must be unknown-distance from every carphone face"


def test_match_reports_unknown_faces_with_the_closest_distance() -> None:
    index = GalleryIndex.build([record("a", [0.0] * 128), record("b", [1.0] * 128)], MODEL)
    near = index.match([0.01] * 128, THRESHOLD)
    assert (near.identity_id, near.display_name, near.matched) == ("a", "a", True)
    far = index.match([0.5] * 128, THRESHOLD)
    assert far.identity_id == "" and not far.matched
    assert far.distance == pytest.approx(np.sqrt(128 * 0.25), rel=1e-5)
    assert not GalleryIndex.build([], MODEL).match([0.0] * 128, THRESHOLD).matched


def test_gallery_index_compares_only_embeddings_of_its_model() -> None:
    other = identity_pb2.IdentityRecord(identity=identity_pb2.Identity(id="x"))
    other.samples.add(id="1", embedding=[0.0] * 128, model="another_model")
    index = GalleryIndex.build([other, record("a", [0.0] * 128, [0.1] * 128)], MODEL)
    assert len(index) == 2 and index.identities == 1
