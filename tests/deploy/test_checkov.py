"""checkov on every rendered values file (issue 25): no failed check without a written reason.

Renders each ci/*-values.yaml (and the minimal values with NATS TLS) with the real Helm
engine and runs checkov's Kubernetes checks on the manifest, offline (``--skip-download``).
A check that fails must be listed in helm/camsight/checkov-skips.yaml with its reason
(skipped for the whole chart) or be skipped by an annotation on its object
(``checkov.io/skip1: CKV_...=reason``); a listed check that no longer fails on any render
is stale and fails too. checkov lives in its own virtual environment (its pins clash with
camsight's): CAMSIGHT_CHECKOV names its binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_render import render
from helpers import needs, needs_helm

CHART = Path(__file__).resolve().parents[2] / "helm" / "camsight"
VALUES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((CHART / "ci").glob("*-values.yaml"))}
# The bundled NATS with TLS on both sides from cert-manager: its Certificates and the
# tls-reloader sidecar render only then.
TLS = {"enabled": True}
VALUES["minimal-values+nats-tls"] = VALUES["minimal-values"] | {
    "nats": {
        "tls": {"client": TLS, "routes": TLS, "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}}
    }
}
SKIPS: dict[str, str] = yaml.safe_load((CHART / "checkov-skips.yaml").read_text())
INSTALL = (
    "python3 -m venv /tmp/venv-checkov && /tmp/venv-checkov/bin/pip install checkov==3.2.533 "
    "&& export CAMSIGHT_CHECKOV=/tmp/venv-checkov/bin/checkov"
)
CHECKOV = os.environ.get("CAMSIGHT_CHECKOV") or shutil.which("checkov")

needs_helm()
needs(
    "checkov 3.2.533",
    bool(CHECKOV and Path(CHECKOV).exists()),
    INSTALL,
    "CAMSIGHT_REQUIRE_CHECKOV",
    module=True,
)


def checkov(manifest: Path) -> list[dict[str, Any]]:
    """checkov's JSON report per framework for one manifest file."""
    assert CHECKOV is not None
    run = subprocess.run(
        [
            CHECKOV,
            "--framework",
            "kubernetes",
            "-f",
            str(manifest),
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stderr[-3000:]  # 1: some check failed
    report = json.loads(run.stdout)
    return report if isinstance(report, list) else [report]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name, values in VALUES.items():
        manifest = tmp_path_factory.mktemp("checkov") / f"{name}.yaml"
        manifest.write_text(yaml.safe_dump_all(render(CHART, values).manifest))
        out[name] = checkov(manifest)
    return out


def failed(report: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(c["check_id"], c["resource"]) for r in report for c in r["results"]["failed_checks"]]


def test_every_skipped_check_has_a_reason() -> None:
    assert SKIPS and all(k.startswith("CKV_") and len(v.split()) >= 8 for k, v in SKIPS.items())


def test_no_failed_check_without_a_reason(reports: dict[str, list[dict[str, Any]]]) -> None:
    unexplained = {name: [f for f in failed(r) if f[0] not in SKIPS] for name, r in reports.items()}
    assert unexplained == {name: [] for name in reports}
    for name, report in reports.items():
        summary = report[0]["summary"]
        assert summary["parsing_errors"] == 0 and summary["passed"] > 100, name
        # Every object was checked: the render's NATS and camsight objects alike.
        resources = {c["resource"] for r in report for c in r["results"]["passed_checks"]}
        assert {"StatefulSet.default.cs-nats", "Deployment.default.cs-camsight-decoder"} <= resources
        # The annotation skips carry their reasons into the report: the controller's token,
        # and with TLS the tls-reloader sidecar's missing probes (on that object only).
        skipped = {
            (c["check_id"], c["resource"]): c["check_result"]["suppress_comment"]
            for r in report
            for c in r["results"]["skipped_checks"]
        }
        expected = {("CKV_K8S_38", "Deployment.default.cs-camsight-controller"): "controller"}
        if name.endswith("+nats-tls"):
            for check in ("CKV_K8S_8", "CKV_K8S_9"):
                expected[(check, "StatefulSet.default.cs-nats")] = "tls-reloader"
        assert set(skipped) == set(expected), name
        assert all(word in skipped[key] for key, word in expected.items())


def test_no_listed_skip_is_stale(reports: dict[str, list[dict[str, Any]]]) -> None:
    hit = {check for r in reports.values() for check, _ in failed(r)}
    assert set(SKIPS) <= hit, f"listed in checkov-skips.yaml but failing nowhere: {sorted(set(SKIPS) - hit)}"
