"""Events a person would count themselves, through ``camsight run`` on scenes with known truth.

Each scene is a generated video (tests/behavior/truth_video.py) analysed by
the real pipeline twice over: with the motion analyzer (MOG2, which absorbs
a person who stops) and with a sparse detector that reports the true boxes
but misses half of them (tests/behavior/truth_plugin.py).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from behavior.truth_video import FPS, Figure, write
from helpers import camsight_process

pytestmark = pytest.mark.slow
CREATED = "2026-03-01T08:00:00Z"


def camsight_run(
    tmp_path: Path, video: Path, config: dict[str, Any], path: Sequence[Path] = (), data: Path | None = None
) -> list[dict[str, Any]]:
    """``camsight run VIDEO --config ... --json`` in ``data`` or a fresh data folder, with the
    tests and ``path`` (installed plugins) importable; the events but camera_status."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    data = data or tmp_path / f"data-{len(list(tmp_path.glob('data-*')))}"
    command = ["run", str(video), "--config", "c.yaml", "--json", "--data-dir", str(data)]
    done = camsight_process(tmp_path, *command, path=path)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if "CAMERA_STATUS" not in line]


def run(
    tmp_path: Path,
    video: Path,
    camera: dict[str, object],
    truth: list[Figure],
    frames: int,
    data: Path | None = None,
) -> list[dict[str, Any]]:
    """The scene through motion and the sparse truth analyzer; the events."""
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(json.dumps([[f.box(i) for f in truth if f.box(i)] for i in range(frames)]))
    config = {
        "services": {
            "detector": {
                "plugin_modules": ["behavior.truth_plugin"],
                "analyzers": {"motion": {}, "sparse_truth": {"truth": str(truth_file), "fps": FPS}},
            }
        },
        "cameras": [{"id": "scene", "source": str(video), "analyzers": ["motion", "sparse_truth"], **camera}],
    }
    return camsight_run(tmp_path, video, config, data=data)


def count(events: list[dict[str, Any]], kind: str, analyzer: str, state: str = "") -> int:
    return sum(
        1
        for e in events
        if e["type"] == f"EVENT_TYPE_{kind}"
        and e.get("analyzer", "") == analyzer
        and (not state or e["state"] == state)
    )


ZONE = {"id": "right", "polygon": [[0.5, 0.0], [0.95, 0.0], [0.95, 1.0], [0.5, 1.0]]}


def rules(*specs: dict[str, object]) -> list[dict[str, object]]:
    """Each rule once per analyzer (label motion, label person)."""
    return [
        {**spec, "id": f"{spec['id']}-{label}", "labels": [label]}
        for spec in specs
        for label in ("motion", "person")
    ]


def test_a_person_who_stands_still_in_a_zone_is_one_entry_and_one_loitering(tmp_path: Path) -> None:
    # Walks in from the left, stands 30 s inside the zone, walks out to the right. (The
    # sparse detector's exit at the picture's edge is not asserted: see docs/rules.md.)
    person = Figure([(0, -20, 200), (45, 200, 200), (345, 200, 200), (380, 340, 200)])
    video = write(tmp_path / "stand.mp4", [person], 390, creation_time=CREATED)
    camera = {
        "zones": [ZONE],
        "rules": rules(
            {"id": "enter", "type": "zone_enter", "zone": "right"},
            {"id": "exit", "type": "zone_exit", "zone": "right"},
            {"id": "idle", "type": "loitering", "zone": "right", "duration_s": 10},
        ),
    }
    events = run(tmp_path, video, camera, [person], 390)
    assert count(events, "ZONE_EXIT", "motion") == 1
    for analyzer in ("motion", "sparse_truth"):
        assert count(events, "ZONE_ENTER", analyzer) == 1, analyzer
        assert count(events, "LOITERING", analyzer, "EVENT_STATE_STARTED") == 1, analyzer
        assert count(events, "LOITERING", analyzer, "EVENT_STATE_ENDED") == 1, analyzer
        tracks = {e["track_id"] for e in events if e.get("analyzer", "") == analyzer}
        assert len(tracks) == 1, (analyzer, tracks)
    # The entry is placed in the video (media time) and on the recording's clock (creation_time).
    entry = next(e for e in events if e["type"] == "EVENT_TYPE_ZONE_ENTER" and e["analyzer"] == "motion")
    media = float(entry["start_media_time"].rstrip("s"))
    assert 2.5 <= media <= 4.5  # the anchor crosses x = 0.5 at about frame 33
    assert entry["start_time"].startswith("2026-03-01T08:00:0")
    ended = next(
        e for e in events if e["type"] == "EVENT_TYPE_LOITERING" and e["state"] == "EVENT_STATE_ENDED"
    )
    assert float(ended["attributes"]["dwell_s"]) >= 30


def test_a_gathering_that_sways_in_place_is_one_entry_each_and_one_crowding(tmp_path: Path) -> None:
    # Four people walk into the zone one after another, two from each side (the picture's
    # right edge lies outside the zone), then sway by 3 px for 15-20 s: MOG2 absorbs them
    # and reports slivers on either side of each body, then nothing. (People who walk
    # through each other on the way are one moving blob while they overlap: docs/rules.md.)
    people = []
    for k, (x, y, start) in enumerate([(190, 120, -20), (250, 120, 340), (190, 210, -20), (250, 210, 340)]):
        keys = [(k * 15, start, y), (k * 15 + 50, x, y)]
        keys += [(f, x + (3 if (f // 5) % 2 else -3), y) for f in range(k * 15 + 55, 300, 5)]
        people.append(Figure(keys))
    video = write(tmp_path / "crowd.mp4", people, 300, creation_time=CREATED)
    camera = {
        "zones": [ZONE],
        "rules": rules(
            {"id": "enter", "type": "zone_enter", "zone": "right"},
            {"id": "crowd", "type": "crowding", "zone": "right", "min_count": 4, "duration_s": 5},
        ),
    }
    events = run(tmp_path, video, camera, people, 300)
    entries = Counter(e.get("analyzer", "") for e in events if e["type"] == "EVENT_TYPE_ZONE_ENTER")
    crowds = Counter(
        e["rule_id"]
        for e in events
        if e["type"] == "EVENT_TYPE_CROWDING" and e["state"] == "EVENT_STATE_STARTED"
    )
    assert entries == {"motion": 4, "sparse_truth": 4}, entries
    assert crowds == {"crowd-motion": 1, "crowd-person": 1}, crowds


def test_the_same_file_gives_the_same_event_ids_and_json(tmp_path: Path) -> None:
    walker = Figure([(0, -20, 200), (60, 340, 200)])
    video = write(tmp_path / "walk.mp4", [walker], 70, creation_time=CREATED)
    camera = {
        "zones": [ZONE],
        "lines": [{"id": "mid", "a": [0.5, 1.0], "b": [0.5, 0.0], "in_side_right": True}],
        "rules": rules(
            {"id": "cross", "type": "line_cross", "line": "mid"},
            {"id": "enter", "type": "zone_enter", "zone": "right"},
        ),
    }
    first = run(tmp_path, video, camera, [walker], 70)
    second = run(tmp_path, video, camera, [walker], 70)
    assert count(first, "LINE_CROSS", "motion") == 1 and count(first, "LINE_CROSS", "sparse_truth") == 1
    # The same events, message for message; the order of lines may differ between the two
    # analyzers, whose results reach the behavior service on their own (docs/api.md).
    assert sorted(json.dumps(e, sort_keys=True) for e in first) == sorted(
        json.dumps(e, sort_keys=True) for e in second
    )
    # Read again into the same data folder (behavior restores its checkpoint, the index
    # holds the first reading's events): the same ids, so the index keeps one copy.
    again = run(tmp_path, video, camera, [walker], 70, data=tmp_path / "data-0")
    assert {e["id"] for e in again} == {e["id"] for e in first}
    listed = camsight_process(tmp_path, "events", "list", "--data-dir", "data-0", "--limit", "0", "--json")
    indexed = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(e["id"] for e in indexed if "CAMERA_STATUS" not in e["type"]) == sorted(
        {e["id"] for e in first}
    )


def test_two_analyzers_reporting_the_same_label_keep_their_own_tracks_and_events(tmp_path: Path) -> None:
    """One walker, two analyzers reporting ``person`` with scores in ranges that do not
    overlap: each analyzer gets its own track and events, with its own confidences, ended
    when the walker leaves (not "lost after 0.0s", not at the end of the stream)."""
    walker = Figure([(0, -20, 200), (60, 340, 200)])
    video = write(tmp_path / "walk.mp4", [walker], 100, creation_time=CREATED)
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps([[b] if (b := walker.box(i)) else [] for i in range(100)]))
    ranges = {"sparse_truth": (0.6, 0.7), "other_truth": (0.85, 0.95)}
    config = {
        "services": {
            "detector": {
                "plugin_modules": ["behavior.truth_plugin"],
                "analyzers": {
                    "sparse_truth": {"truth": str(truth), "fps": FPS, "scores": ranges["sparse_truth"]},
                    "other_truth": {
                        "truth": str(truth),
                        "fps": FPS,
                        "scores": ranges["other_truth"],
                        "seed": 2,
                    },
                },
            }
        },
        "cameras": [
            {
                "id": "scene",
                "source": str(video),
                "zones": [ZONE],
                "rules": [
                    {"id": "seen", "type": "object_detected", "labels": ["person"]},
                    {"id": "enter", "type": "zone_enter", "zone": "right", "labels": ["person"]},
                ],
            }
        ],
    }
    events = camsight_run(tmp_path, video, config)
    ids: dict[str, set[str]] = {}
    for analyzer, (low, high) in ranges.items():
        ours = [e for e in events if e.get("analyzer") == analyzer]
        ids[analyzer] = {e["id"] for e in ours}
        assert count(events, "OBJECT_DETECTED", analyzer, "EVENT_STATE_STARTED") == 1, analyzer
        assert count(events, "ZONE_ENTER", analyzer) == 1, analyzer
        assert len({e["track_id"] for e in ours}) == 1, analyzer
        assert all(low <= e["confidence"] <= high for e in ours), [(e["type"], e["confidence"]) for e in ours]
        (ended,) = (
            e for e in ours if e["type"] == "EVENT_TYPE_OBJECT_DETECTED" and e["state"] == "EVENT_STATE_ENDED"
        )
        assert "track lost after" in ended["explanation"]["summary"], ended["explanation"]["summary"]
        assert 4.0 <= float(ended["attributes"]["duration_s"]) <= 7.0, ended["attributes"]
        assert float(ended["end_media_time"].rstrip("s")) < 9.0  # lost when the walker left, before the end
    assert not ids["sparse_truth"] & ids["other_truth"]
