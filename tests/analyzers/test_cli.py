"""``camsight plugins list`` and ``camsight analyze``, run through typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
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
