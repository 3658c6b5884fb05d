"""The wrong-way rule, checked with camsight's author kit."""

from camsight.analyzers.testing import check_rule
from camsight_example_plugin.rules import WrongWay


def test_conformance_and_one_finding_for_the_track_going_left() -> None:
    findings = check_rule(WrongWay, {"allowed": "right"})
    assert [(f.track.number, f.attributes["distance"]) for f in findings] == [(2, "0.213")]
