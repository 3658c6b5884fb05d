"""Configuration: YAML + CAMSIGHT_* variables, and clear errors for bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from camsight.cameras import CameraConfig
from camsight.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "camsight.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings()
    assert settings.nats.servers == ["nats://127.0.0.1:4222"]
    assert settings.streams.events_replicas == 1


def test_yaml_then_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        """
nats:
  servers: [nats://file:4222]
  user: camsight
streams:
  events_replicas: 3
cameras:
  - id: lobby
    source: rtsp://user:pw@10.0.0.5/stream
    fps: 5
""",
    )
    monkeypatch.setenv("CAMSIGHT_NATS__SERVERS", "nats://a:4222,nats://b:4222")
    monkeypatch.setenv("CAMSIGHT_LOG__LEVEL", "debug")
    settings = load_settings(path)
    assert settings.nats.servers == ["nats://a:4222", "nats://b:4222"]
    assert settings.nats.user == "camsight"  # kept from the file: env merges, not replaces
    assert settings.streams.events_replicas == 3
    assert settings.log.level == "DEBUG"
    assert settings.cameras[0].fps == 5
    assert settings.cameras[0].redacted_source == "rtsp://user:***@10.0.0.5/stream"


def test_inbox_prefix_defaults_to_the_conventional_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().nats.inbox_prefix == "_INBOX"
    monkeypatch.setenv("CAMSIGHT_NATS__INBOX_PREFIX", "_INBOX.camsight-decoder")
    assert load_settings().nats.inbox_prefix == "_INBOX.camsight-decoder"


def test_secret_from_environment_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMSIGHT_NATS__PASSWORD", "s3cret")
    settings = load_settings()
    assert settings.nats.password is not None
    assert settings.nats.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("streams:\n  frames_per_camera: 0\n", "streams.frames_per_camera", "0"),
        ("nats:\n  servers: [http://x]\n", "nats.servers", "http://x"),
        ("http:\n  port: 70000\n", "http.port", "70000"),
        ("log:\n  level: loud\n", "log.level", "loud"),
        ("nats:\n  sevrers: [nats://x:1]\n", "nats.sevrers", "nats://x:1"),
        ("nats:\n  inbox_prefix: _INBOX.>\n", "nats.inbox_prefix", "_INBOX.>"),
        ("nats:\n  inbox_prefix: _INBOX.*.me\n", "nats.inbox_prefix", "_INBOX.*.me"),
        ("nats:\n  inbox_prefix: _INBOX..me\n", "nats.inbox_prefix", "_INBOX..me"),
        ("nats:\n  inbox_prefix: 'my inbox'\n", "nats.inbox_prefix", "my inbox"),
        ("nats:\n  inbox_prefix: ''\n", "nats.inbox_prefix", "''"),
        ("cameras:\n  - id: a.b\n    source: x.mp4\n", "cameras.0.id", "a.b"),
        ("cameras:\n  - id: cam\n    source: x.mp4\n    fps: -1\n", "cameras.0.fps", "-1"),
    ],
)
def test_bad_values_name_field_and_value(tmp_path: Path, text: str, field: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert field in str(info.value)
    assert value.lower() in str(info.value).lower()


def test_bad_password_value_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "nats:\n  password: [1, 2]\n"))
    assert "nats.password" in str(info.value)
    assert "<hidden>" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nats: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "must hold a mapping"),
    ],
)
def test_unusable_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_malformed_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "streams:\n  events_replicas: 9\n")
    proc = subprocess.run(
        [sys.executable, "-m", "camsight", "serve", "query", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "streams.events_replicas" in proc.stderr
    assert "9" in proc.stderr
    assert "Traceback" not in proc.stderr


CAMERA = {"id": "door", "source": "video.mp4"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"source": "ftp+s://x/y"}, "unsupported source scheme"),  # not even a plugin's: not a name
        ({"zones": [{"id": "z", "polygon": [[0, 0], [1, 0]]}]}, "at least 3"),
        ({"zones": [{"id": "z", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]}, "intersects itself"),
        ({"zones": [{"id": "z", "polygon": [[0, 0], [float("nan"), 0], [1, 1]]}]}, "finite number"),
        ({"lines": [{"id": "l", "a": [0.5, 0.5], "b": [0.5, 0.5]}]}, "same"),
        ({"rules": [{"id": "r", "type": "zone_enter"}]}, "needs a zone"),
        ({"rules": [{"id": "r", "type": "line_cross", "line": "nope"}]}, "unknown line"),
        ({"rules": [{"id": "r", "type": "crowding", "zone": "z"}]}, "needs min_count"),
        ({"jpeg_quality": 0}, "greater than or equal to 1"),
    ],
)
def test_camera_validation(extra: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CameraConfig.model_validate(CAMERA | extra)


def test_camera_round_trips_through_the_wire_message() -> None:
    camera = CameraConfig.model_validate(
        {
            "id": "door",
            "source": "rtsp://cam/1",
            "fps": 5,
            "pacing": "realtime",
            "zones": [{"id": "entry", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]}],
            "lines": [{"id": "gate", "a": [0, 0.5], "b": [1, 0.5], "in_side_right": True}],
            "rules": [
                {"id": "in", "type": "line_cross", "line": "gate", "direction": "in", "labels": ["person"]},
                {"id": "dwell", "type": "loitering", "zone": "entry", "duration_s": 30, "anchor": "center"},
            ],
        }
    )
    wire = camera.to_proto()
    again = CameraConfig.from_proto(wire)
    # Coordinates travel as 32-bit floats: compare on the wire.
    assert again.to_proto() == wire
    assert again.rules == camera.rules and again.pacing == camera.pacing


@pytest.mark.parametrize("folder", ["missing", "a-file"])
def test_a_secrets_dir_that_is_not_a_folder_is_one_line(tmp_path: Path, folder: str) -> None:
    (tmp_path / "a-file").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "camsight", "topology", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CAMSIGHT_SECRETS_DIR": str(tmp_path / folder)},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"camsight: CAMSIGHT_SECRETS_DIR: {tmp_path / folder} is not a folder"
