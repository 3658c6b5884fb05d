"""The plugin's own tests, written with camsight's author kit."""

from camsight.analyzers.testing import check_conformance, run_on_frames, synthetic_frames
from camsight_example_clips import SceneChange


def test_conformance() -> None:
    check_conformance(SceneChange)


def test_a_cut_lands_on_the_first_frame_of_the_new_shot() -> None:
    analyzer = SceneChange(SceneChange.Config())
    (image, first), (_, second), (_, third) = synthetic_frames(3)
    shots = [(image, first), (255 - image, second), (255 - image, third)]  # a cut before frame 2
    found = {info.seq: [d.label for d in dets] for info, _, dets in run_on_frames(analyzer, shots)}
    assert found == {1: [], 2: ["cut"], 3: []}
