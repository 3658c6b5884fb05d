"""Static checks of the Dockerfile (no Docker daemon on the build machines: the image
itself is built and run in docs/deploy.md's kind procedure)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stage(name: str) -> str:
    """The text of build stage ``name`` (from its FROM line to the next)."""
    (text,) = re.findall(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", DOCKERFILE, re.M | re.S)
    return str(text)


def final_stage() -> str:
    """What every role's image inherits (user, entrypoint, environment)."""
    return stage("runtime")


# Image per role: target -> the extras its venv installs (pyproject.toml).
ROLES = {"core": "", "faces": "[faces]", "analyzers": "[torch,faces,nvdec]"}


def test_one_target_per_role_and_cpu_and_cuda_variants() -> None:
    stages = re.findall(r"^FROM (\S+) AS ([\w-]+)", DOCKERFILE, re.M)
    assert stages[-1] == ("runtime", "analyzers")  # the default target has every analyzer
    for role, extras in ROLES.items():
        assert ("runtime", role) in stages
        assert f"COPY --from=build-{role} /opt/camsight /opt/camsight" in stage(role)
        assert (
            f'pip install ".{extras}"' in stage(f"build-{role}")
            if extras
            else "pip install ." in stage("build-core")
        )
    assert "torch" not in stage("build-core") + stage("build-faces")
    assert "cpu)" in stage("build-analyzers") and "cuda)" in stage("build-analyzers")


def test_nvdec_needs_no_system_ffmpeg_in_either_variant() -> None:
    """NVDEC goes through PyNvVideoCodec, whose wheel carries its demuxer (decision 0077): no
    variant installs Debian's FFmpeg libraries (torchcodec, before it, needed them)."""
    assert "libav" not in stage("runtime")


def test_runs_as_the_non_root_user_the_chart_expects() -> None:
    values = yaml.safe_load((ROOT / "helm" / "camsight" / "values.yaml").read_text())
    (user,) = re.findall(r"^USER (\d+):(\d+)$", final_stage(), re.M)
    assert user == (
        str(values["podSecurityContext"]["runAsUser"]),
        str(values["podSecurityContext"]["runAsGroup"]),
    )
    assert int(user[0]) != 0


def test_entrypoint_is_camsight() -> None:
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "camsight"]' in final_stage()
    assert "PYTHONDONTWRITEBYTECODE=1" in final_stage()  # read-only root filesystem


def test_dockerignore_keeps_only_what_the_build_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = set(re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.M))
    sources = {p.rstrip("/") for line in copied for p in line.split()}
    assert ignore[0] == "**"
    assert sources == {p.removeprefix("!").rstrip("/") for p in ignore if p.startswith("!")}
    for path in sources:
        assert (ROOT / path).exists(), path
