"""An event carries its explanation: the embedded pipeline of ``camsight run`` on carphone with
CenterFace in torch (real weights) configured with ``explain: true`` and unknown faces blurred.

Proved here, through a real nats-server and every service: the face service's results carry
a small saliency map; the behavior service stores the snapshot's overlay beside it as
``<snapshot>-explain`` and the event names it; the overlay is readable, shows a heat map,
and the face is blurred in it as in the snapshot; the maps on the bus put most of their
mass on the detected face (the measure of test_explain.py, after the trip through the
64 px PNG: median share over 0.5, each frame over three times the box's share of the frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from camsight.analyzers.explain import decode as decode_saliency
from camsight.bus import subjects
from camsight.cli.run import run_pipeline
from camsight.config import Settings
from camsight.run import EmbeddedPipeline, PipelineSummary, source_cameras
from camsight.v1 import analysis_pb2, event_pb2
from helpers import sample_video
from privacy_support import assert_blurred, carphone_frame, decode

pytestmark = pytest.mark.slow

SETTINGS = {
    "services": {
        "face": {
            "analyzers": {"centerface": {"backend": "torch", "explain": True}},
            "blur_unknown": True,
        }
    }
}


@dataclass
class Run:
    """What the run left: the face events, stored pictures by name, centerface's results by seq."""

    events: list[event_pb2.Event] = field(default_factory=list)
    pictures: dict[str, bytes] = field(default_factory=dict)
    results: dict[int, analysis_pb2.AnalysisResult] = field(default_factory=dict)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    import asyncio

    return asyncio.run(_run(tmp_path_factory.mktemp("explain")))


async def _run(data: Path) -> Run:
    found = Run()

    async def collect(pipeline: EmbeddedPipeline, summary: PipelineSummary) -> None:
        store = await pipeline.bus.object_store(subjects.SNAPSHOTS_STORE)
        found.events = [e for e in summary.events.values() if e.analyzer == "centerface"]
        for event in found.events:
            for name in (event.snapshot_id, event.explain_snapshot_id):
                if name:
                    found.pictures[name] = (await store.get(name)).data or b""
        info = await pipeline.bus.js.stream_info(subjects.DETECTIONS_STREAM)
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await pipeline.bus.js.get_msg(subjects.DETECTIONS_STREAM, seq)
            result = analysis_pb2.AnalysisResult.FromString(msg.data or b"")
            if result.analyzer == "centerface" and not result.skipped:
                found.results[result.frame.seq] = result

    cameras = source_cameras([str(sample_video("carphone_pristine.mp4"))], realtime=False, base=[])
    await run_pipeline(Settings.model_validate(SETTINGS), cameras, data, as_json=False, after=collect)
    return found


def test_a_face_event_names_its_explanation_stored_beside_the_snapshot(run: Run) -> None:
    explained = [e for e in run.events if e.explain_snapshot_id]
    assert explained, [(e.id, e.snapshot_id) for e in run.events]
    for event in explained:
        assert event.explain_snapshot_id == event.snapshot_id + "-explain"
        snapshot, overlay = (
            decode(run.pictures[event.snapshot_id]),
            decode(run.pictures[event.explain_snapshot_id]),
        )
        assert overlay.shape == snapshot.shape
        assert np.abs(overlay.astype(int) - snapshot).mean() > 10, "no heat map drawn over the snapshot"


def test_the_face_is_blurred_in_the_explanation_as_in_the_snapshot(run: Run) -> None:
    event = next(e for e in run.events if e.explain_snapshot_id)
    seq = int(event.snapshot_id.rsplit("-", 1)[1])
    [face] = run.results[seq].detections
    assert face.privacy == analysis_pb2.PRIVACY_BLUR
    box = (face.box.x1, face.box.y1, face.box.x2, face.box.y2)
    original = carphone_frame(seq - 1)  # seq counts frames from 1
    assert_blurred(decode(run.pictures[event.snapshot_id]), original, box)
    assert_blurred(decode(run.pictures[event.explain_snapshot_id]), original, box)


def test_the_maps_on_the_bus_lie_mostly_on_the_face(run: Run) -> None:
    explained = [r for r in run.results.values() if r.saliency.png]
    assert len(explained) >= 100, f"{len(explained)} of {len(run.results)} results carry a map"
    assert all(r.saliency.png for r in run.results.values() if r.detections), (
        "a frame with a face went without"
    )
    shares, concentrations = [], []
    for result in explained:
        height, width = result.frame.height, result.frame.width
        saliency = decode_saliency(result.saliency.png, height, width)
        assert saliency is not None
        box = result.detections[0].box
        rows = slice(round(box.y1 * height), round(box.y2 * height))
        cols = slice(round(box.x1 * width), round(box.x2 * width))
        share = float(saliency[rows, cols].sum() / saliency.sum())
        shares.append(share)
        concentrations.append(share / ((box.x2 - box.x1) * (box.y2 - box.y1)))
    assert np.median(shares) > 0.5, shares
    assert min(concentrations) > 3.0, concentrations
