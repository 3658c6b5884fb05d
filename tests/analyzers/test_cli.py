"""``camsight plugins list`` and ``camsight analyze``, run through typer's test runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from camsight.cli import app
from helpers import sample_video
from typer.testing import CliRunner

runner = CliRunner()


def test_plugins_list_shows_builtin_analyzers_with_kinds_and_versions() -> None:
    result = runner.invoke(app, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    plugins = {p["name"]: p for p in json.loads(result.output)["plugins"]}
    analyzers = {a["name"]: a for a in plugins["opencv"]["analyzers"]}
    assert analyzers["hog"]["kind"] == "objects" and analyzers["flow_activity"]["clip"] is True
    assert plugins["opencv"]["version"]
    text = runner.invoke(app, ["plugins", "list"])
    assert text.exit_code == 0 and "motion" in text.output and "[clip]" in text.output


def test_analyze_prints_json_detections_of_a_video() -> None:
    result = runner.invoke(
        app,
        [
            "analyze",
            "--plugin",
            "motion",
            "--limit",
            "10",
            "--json",
            "-o",
            "min_area=0.001",
            str(sample_video("bikes.mp4")),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines and all(
        line["label"] == "motion" and 0 <= min(line["box"]) <= max(line["box"]) <= 1 for line in lines
    )


def test_analyze_writes_an_annotated_video(tmp_path: Path) -> None:
    out = tmp_path / "annotated.mp4"
    result = runner.invoke(
        app,
        [
            "analyze",
            "--plugin",
            "motion",
            "--limit",
            "8",
            "--output",
            str(out),
            str(sample_video("bikes.mp4")),
        ],
    )
    assert result.exit_code == 0, result.output
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    capture.release()


def test_analyze_reports_bad_names_and_config() -> None:
    unknown = runner.invoke(app, ["analyze", "--plugin", "nope", str(sample_video("bikes.mp4"))])
    assert unknown.exit_code == 2 and "no analyzer named 'nope'" in unknown.output
    bad = runner.invoke(
        app, ["analyze", "--plugin", "motion", "-o", "min_area=7", str(sample_video("bikes.mp4"))]
    )
    assert bad.exit_code == 2 and "min_area" in bad.output


VIDEO = ["--limit", "3", str(sample_video("bikes.mp4"))]
MODULE = ["--plugin-module", "analyzers.cli_plugin"]


def test_analyze_summarises_even_when_nothing_is_found() -> None:
    # Motion learns the background from its first two frames: nothing in two frames.
    result = runner.invoke(
        app, ["analyze", "--plugin", "motion", "--limit", "2", str(sample_video("bikes.mp4"))]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "motion: 2 frames analysed, 0 detections (nothing)" in result.stderr


def test_analyze_json_keeps_attributes() -> None:
    result = runner.invoke(app, ["analyze", "--plugin", "cli_tagged", *MODULE, "--json", *VIDEO])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 and all(line["attributes"] == {"colour": "red"} for line in lines)
    assert "3 detections (thing 3)" in result.stderr


def test_a_raising_plugin_is_one_line() -> None:
    result = runner.invoke(app, ["analyze", "--plugin", "cli_raises", *MODULE, *VIDEO])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "analyzer cli_raises raised RuntimeError: model exploded" in line


def test_results_out_of_contract_are_not_shown_and_fail_the_run() -> None:
    result = runner.invoke(app, ["analyze", "--plugin", "cli_out_of_contract", *MODULE, *VIDEO])
    assert result.exit_code == 1 and result.stdout == ""
    assert "3 frames with invalid results, not shown (first: frame 1: 'thing': score 1.7" in result.stderr


def test_analyze_can_disable_a_plugin() -> None:
    result = runner.invoke(app, ["analyze", "--plugin", "hog", "--disable", "opencv", *VIDEO])
    assert result.exit_code == 2 and "no analyzer named 'hog'" in result.output


MISBEHAVES = ["--plugin", "cli_misbehaves", *MODULE]
NOT_A_LIST = "cli_misbehaves must return a list with one list of detections per input"
PLUGIN_MISTAKES = {
    "value_error": "analyzer cli_misbehaves raised ValueError: boom at seq 25 with a second line",
    "os_error": "analyzer cli_misbehaves raised OSError: the model's disk is gone",
    "analyzer_error": "analyzer cli_misbehaves raised AnalyzerError: the model refused the input",
    "load": "analyzer cli_misbehaves failed to load: FileNotFoundError: weights missing: "
    "/models/misbehaves.pt",
    "short": "invalid result: cli_misbehaves returned 1 results for 3 inputs",
    "flat": "invalid result: cli_misbehaves returned Detection for input 1, not a list of detections: "
    "return one list per input ([] when nothing was found)",
    "none": f"invalid result: {NOT_A_LIST}, got None",
    "generator": f"invalid result: {NOT_A_LIST}, got generator",
}
"""cli_misbehaves's mistake -> the one line ``camsight analyze`` prints (after ``camsight: ``)."""


@pytest.mark.parametrize("mistake", PLUGIN_MISTAKES)
def test_a_plugin_mistake_is_one_line_naming_the_analyzer_exit_1(mistake: str) -> None:
    """What the plugin's code raises or returns out of shape is the plugin's fault (exit 1, one
    line, as the host logs it), never a usage error."""
    result = runner.invoke(app, ["analyze", *MISBEHAVES, "-o", f"mistake={mistake}", *VIDEO])
    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr.strip().splitlines() == [f"camsight: {PLUGIN_MISTAKES[mistake]}"]


@pytest.mark.parametrize(
    ("mistake", "problem"),
    [
        ("tuples", "results must be Detection objects, got tuple"),
        ("int_attribute", "'thing': attributes must map strings to strings, got 'n': 3"),
    ],
)
def test_detections_the_host_would_refuse_are_counted_not_shown(mistake: str, problem: str) -> None:
    result = runner.invoke(app, ["analyze", *MISBEHAVES, "-o", f"mistake={mistake}", *VIDEO])
    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert f"3 frames with invalid results, not shown (first: frame 1: {problem})" in result.stderr


def test_a_source_that_cannot_be_read_is_a_usage_error_before_the_analyzer_loads(tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    result = runner.invoke(app, ["analyze", *MISBEHAVES, "-o", "mistake=load", str(notes)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [f"camsight: {notes} is not a video OpenCV can read"]


@pytest.mark.parametrize("command", [["plugins", "list"], ["analyze", "--plugin", "motion", *VIDEO]])
def test_a_plugin_module_that_cannot_be_imported_stops_the_command(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--plugin-module", "no_such_module_here"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "camsight: --plugin-module: cannot import no_such_module_here: ModuleNotFoundError: "
        "No module named 'no_such_module_here'"
    ]


MODULE_OF_MINE = """
from camsight.analyzers import FrameAnalyzer, hookimpl


class Mine(FrameAnalyzer):
    name = "mine"
    kind = "objects"
    version = "1"

    def analyze(self, images, frames):
        return [[] for _ in images]


@hookimpl
def camsight_analyzers():
    return [Mine]
"""


def test_the_camsight_script_finds_a_plugin_module_in_the_current_folder(tmp_path: Path) -> None:
    """The console script's ``sys.path`` starts with its own folder, not the current one: a plugin
    author trying a module that is not installed runs it from the module's folder."""
    (tmp_path / "my_plugin.py").write_text(MODULE_OF_MINE)
    script = Path(sys.executable).with_name("camsight")
    done = subprocess.run(
        [str(script), "analyze", "--plugin-module", "my_plugin", "--plugin", "mine", *VIDEO],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "mine: 3 frames analysed, 0 detections (nothing)" in done.stderr
