"""The plugin's own tests, written with camsight's author kit."""

from camsight.analyzers.testing import check_conformance, synthetic_frames
from camsight_example_plugin import BrightSpots


def test_conformance() -> None:
    check_conformance(BrightSpots, {"threshold": 200})


def test_finds_the_bright_rectangle() -> None:
    analyzer = BrightSpots(BrightSpots.Config(threshold=200))
    [(image, info)] = synthetic_frames(1)
    [found] = analyzer.analyze([image], [info])
    assert [d.label for d in found] == ["bright_spot"]
