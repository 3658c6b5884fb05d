"""Privacy as a typed field: the reader rule, the one blur, and the host's conversion of plugin results.

Pictures are real (carphone_pristine.mp4); what "blurred" means is in
privacy_support.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from camsight.analyzers import Detection, Privacy
from camsight.analyzers.explain import encode
from camsight.analyzers.host import to_proto
from camsight.behavior.snapshots import render
from camsight.privacy import blur_boxes, blur_jpeg, detection_must_blur, must_blur
from camsight.v1 import analysis_pb2, frame_pb2
from privacy_support import (
    CARPHONE_FACE,
    assert_blurred,
    assert_sharp,
    carphone_frame,
    decode,
    region,
    sharpness,
)

UNKNOWN_PRIVACY = 7  # a value a newer writer might send: beyond this reader's enum


def face(privacy: int = analysis_pb2.PRIVACY_BLUR) -> analysis_pb2.Detection:
    detection = analysis_pb2.Detection(label="face", score=0.9)
    detection.box.x1, detection.box.y1, detection.box.x2, detection.box.y2 = CARPHONE_FACE
    detection.MergeFromString(bytes([10 << 3, privacy]))  # field 10 as a varint, as the wire carries it
    return detection


def jpeg_frame(image: np.ndarray) -> frame_pb2.Frame:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    h, w = image.shape[:2]
    return frame_pb2.Frame(
        camera_id="car", seq=5, width=w, height=h, encoding=frame_pb2.IMAGE_ENCODING_JPEG, data=data.tobytes()
    )


def test_the_plugin_enum_is_the_wire_enum() -> None:
    assert {p.name: p.value for p in Privacy} == {
        name.removeprefix("PRIVACY_"): value for name, value in analysis_pb2.Privacy.items()
    }


@pytest.mark.parametrize(
    ("privacy", "blurred"),
    [
        (analysis_pb2.PRIVACY_UNSPECIFIED, False),
        (analysis_pb2.PRIVACY_VISIBLE, False),
        (analysis_pb2.PRIVACY_BLUR, True),
        (UNKNOWN_PRIVACY, True),
    ],
)
def test_only_known_visible_values_are_shown(privacy: int, blurred: bool) -> None:
    detection = face(privacy)
    assert detection.privacy == privacy, "proto3 enums are open: the number survives parsing"
    assert must_blur(privacy) is blurred and detection_must_blur(detection) is blurred


def test_the_attribute_of_older_face_services_is_still_honoured() -> None:
    legacy = face(analysis_pb2.PRIVACY_UNSPECIFIED)
    legacy.attributes["privacy"] = "blur"
    assert detection_must_blur(legacy)


def test_an_unknown_privacy_value_is_blurred_in_a_snapshot() -> None:
    original = carphone_frame()
    jpeg = render(jpeg_frame(original), face(UNKNOWN_PRIVACY))
    assert jpeg is not None
    assert_blurred(decode(jpeg), original, CARPHONE_FACE)


def saliency_on_the_face() -> bytes:
    """A map hot on the carphone face, as an analyzer with ``explain: true`` sends it."""
    height, width = carphone_frame().shape[:2]
    x1, y1, x2, y2 = CARPHONE_FACE
    ys, xs = np.mgrid[0:height, 0:width]
    cx, cy, sx, sy = (x1 + x2) / 2 * width, (y1 + y2) / 2 * height, (x2 - x1) * width, (y2 - y1) * height
    return encode(np.exp(-(((xs - cx) / sx) ** 2) - ((ys - cy) / sy) ** 2).astype(np.float32))


def test_a_face_to_blur_is_blurred_in_the_explanation_too() -> None:
    """The overlay is a picture of the frame: blurred like the snapshot. Without the blur the
    heat map alone would leave the face recognisable (a visible face keeps over a tenth of
    its edge energy under it), which the measure would catch."""
    original = carphone_frame()
    explained = render(jpeg_frame(original), face(), saliency=saliency_on_the_face())
    assert explained is not None
    assert_blurred(decode(explained), original, CARPHONE_FACE)
    shown = render(jpeg_frame(original), face(analysis_pb2.PRIVACY_VISIBLE), saliency=saliency_on_the_face())
    assert shown is not None
    assert sharpness(region(decode(shown), CARPHONE_FACE)) > sharpness(region(original, CARPHONE_FACE)) / 10
    assert np.abs(decode(shown).astype(int) - original).mean() > 10, "no heat map drawn"


def test_an_unreadable_map_gives_no_explanation() -> None:
    assert render(jpeg_frame(carphone_frame()), face(), saliency=b"not a png") is None


def test_blur_boxes_blurs_only_the_flagged_boxes() -> None:
    original = carphone_frame()
    image = original.copy()
    visible = face(analysis_pb2.PRIVACY_VISIBLE)
    assert blur_boxes(image, [face(), visible]) == 1
    assert_blurred(image, original, CARPHONE_FACE)
    assert np.array_equal(image[:, :40], original[:, :40]), "pixels outside the box were touched"
    shown = original.copy()
    assert blur_boxes(shown, [visible]) == 0 and np.array_equal(shown, original)


def test_a_plugin_crop_of_a_face_to_blur_leaves_the_host_blurred() -> None:
    original = carphone_frame()
    h, w = original.shape[:2]
    x1, y1, x2, y2 = CARPHONE_FACE
    crop = original[round(y1 * h) : round(y2 * h), round(x1 * w) : round(x2 * w)]
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    hidden = to_proto(Detection("face", 0.9, CARPHONE_FACE, crop_jpeg=data.tobytes(), privacy=Privacy.BLUR))
    assert hidden.privacy == analysis_pb2.PRIVACY_BLUR
    assert sharpness(decode(hidden.crop_jpeg)) < sharpness(crop) / 10
    shown = to_proto(Detection("face", 0.9, CARPHONE_FACE, crop_jpeg=data.tobytes(), privacy=Privacy.VISIBLE))
    assert shown.privacy == analysis_pb2.PRIVACY_VISIBLE and shown.crop_jpeg == data.tobytes()
    assert to_proto(Detection("person", 0.9)).privacy == analysis_pb2.PRIVACY_UNSPECIFIED


def test_undecodable_crops_are_dropped_not_passed_on() -> None:
    assert blur_jpeg(b"not a jpeg") == b""


def test_the_region_helper_sees_a_face() -> None:
    """Guard of the measure itself: the untouched face box has edges to lose."""
    original = carphone_frame()
    assert sharpness(region(original, CARPHONE_FACE)) > 100
    assert_sharp(original, original, CARPHONE_FACE)
