"""Camera sources through the camsight_sources hook: the built-in schemes, a third party's
(``sample://``, tests/decoder/sample_source_plugin, pip-installed like a third party) used
by ``camsight run``, and bad input in one line."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from camsight.analyzers.manager import BUILTIN_SOURCES, PluginManager
from camsight.cameras import CameraConfig
from camsight.cli import app
from camsight.config import ConfigError
from camsight.decoder.plugins import SourceRegistry
from camsight.decoder.sources import SourceError
from helpers import camsight_process, install_package
from typer.testing import CliRunner

PACKAGE = Path(__file__).parent / "sample_source_plugin"
PLUGIN = "camsight_sample_source"
REFUSED = "plugin {!r} declares source scheme 'rtsp', which camsight's own camsight-sources owns: rename it"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_package(PACKAGE, tmp_path_factory.mktemp("sample_source"))


@pytest.fixture
def registry(site: Path) -> SourceRegistry:
    sys.path.insert(0, str(site))
    try:
        manager = PluginManager()
        manager.add(importlib.import_module(PLUGIN), name=PLUGIN)
        return SourceRegistry(manager)
    finally:
        sys.path.remove(str(site))


def test_builtin_schemes_and_a_plugin_scheme_come_through_the_hook(registry: SourceRegistry) -> None:
    assert {registry.types[s].plugin for s in ("file", "rtsp", "rtmp", "https")} == {BUILTIN_SOURCES}
    assert registry.types["sample"].plugin == PLUGIN
    source = registry.source("sample://bikes.mp4?frames=3")
    source.open()
    grabbed = [source.grab(lambda t: True) for _ in range(3)]
    assert [g.image.shape for g in grabbed if g and g.image is not None] == [(272, 640, 3)] * 3
    source.close()


def test_a_plugin_claiming_a_builtin_scheme_is_refused_naming_it(
    registry: SourceRegistry, site: Path
) -> None:
    assert registry.errors[PLUGIN] == REFUSED.format(PLUGIN)
    assert registry.types["rtsp"].plugin == BUILTIN_SOURCES
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:  # plugins list shows the scheme, and the refusal
        listed = CliRunner().invoke(app, ["plugins", "list"])
    finally:
        sys.path.remove(str(site))
    assert (
        "  sample://" in listed.output
        and f"sample_source: BROKEN: {REFUSED.format('sample_source')}" in listed.output
    )


def test_unknown_schemes_and_failing_plugins_are_one_line(registry: SourceRegistry) -> None:
    with pytest.raises(
        ConfigError, match=r"^cameras: camera 'c': no source plugin reads scheme 'ftp' of ftp://x/y"
    ):
        registry.check([CameraConfig(id="c", source="ftp://x/y")])
    registry.check(
        [CameraConfig(id="c", source="sample://bikes.mp4"), CameraConfig(id="d", source="rtsp://h/s")]
    )
    missing = registry.source("sample://missing.mp4")
    with pytest.raises(
        SourceError, match=r"^no sample video 'missing.mp4' \(source plugin 'camsight_sample_source'\)$"
    ):
        missing.open()


def camsight(site: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return camsight_process(tmp_path, *args, "--data-dir", str(tmp_path / "data"), path=[site])


@pytest.mark.slow
def test_camsight_run_reads_a_plugin_source_to_its_end(site: Path, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        json.dumps(
            {
                "services": {"detector": {"analyzers": {"motion": {}}}},
                "cameras": [
                    {
                        "id": "bikes",
                        "source": "sample://bikes.mp4?frames=40",
                        "rules": [{"id": "moving", "type": "object_detected", "labels": ["motion"]}],
                    }
                ],
            }
        )
    )
    done = camsight(site, tmp_path, "run", "--config", "c.yaml", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    status = [e for e in events if e["type"] == "EVENT_TYPE_CAMERA_STATUS"]
    assert status and "ENDED" in json.dumps(status[-1]), status
    moving = [e for e in events if e["type"] == "EVENT_TYPE_OBJECT_DETECTED"]
    assert moving and all(e["camera_id"] == "bikes" for e in moving)
    assert max(float(e["end_media_time"].rstrip("s")) for e in moving if "end_media_time" in e) <= 40 / 25


@pytest.mark.slow
def test_camsight_run_refuses_an_unknown_scheme_in_one_line(site: Path, tmp_path: Path) -> None:
    done = camsight(site, tmp_path, "run", "ftp://x/y.mp4")
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert "cameras: camera 'y': no source plugin reads scheme 'ftp' of ftp://x/y.mp4" in line
    assert REFUSED.format("sample_source") in line  # what was refused is said too (entry-point name)
