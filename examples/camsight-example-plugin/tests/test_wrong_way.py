"""The wrong-way rule, checked with camsight's author kit."""

from camsight.analyzers.testing import check_rule
from camsight_example_plugin.rules import WrongWay


def test_conformance_and_the_track_going_left_reported_while_it_goes_the_wrong_way() -> None:
    findings = check_rule(WrongWay, {"allowed": "right"})
    # track 2 walks left 0.8 in 30 frames: 0.2 against the way from frame 8 on, to the last (29)
    assert {(f.track.number, f.key) for f in findings} == {(2, "wrong_way")} and len(findings) == 22
    assert (findings[0].attributes["distance"], findings[-1].attributes["distance"]) == ("0.213", "0.773")
