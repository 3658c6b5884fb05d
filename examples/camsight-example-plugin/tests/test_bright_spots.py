"""The plugin's own tests, written with camsight's author kit."""

from camsight.analyzers.testing import check_conformance, read_source, run_on_source, synthetic_frames
from camsight.samples import sample_video  # camsight's sample videos: pip install 'camsight[samples]'
from camsight_example_plugin import BrightSpots


def test_conformance() -> None:
    check_conformance(BrightSpots, {"threshold": 200})
    street = list(read_source(sample_video("bikes.mp4"), limit=20))  # pictures with spots in them
    check_conformance(BrightSpots, {"threshold": 200}, frames=street)


def test_finds_the_bright_rectangle() -> None:
    analyzer = BrightSpots(BrightSpots.Config(threshold=200))
    [(image, info)] = synthetic_frames(1)
    [found] = analyzer.analyze([image], [info])
    assert [d.label for d in found] == ["bright_spot"]


def test_finds_the_street_s_lights() -> None:
    analyzer = BrightSpots(BrightSpots.Config(threshold=200))
    results = list(run_on_source(analyzer, sample_video("bikes.mp4"), limit=20))
    assert all(found for _, _, found in results)
