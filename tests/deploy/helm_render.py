"""Render the chart with the real Helm engine offline (helm-sdkpy, Helm v4).

Helm has no offline template call in helm-sdkpy, so :func:`render` runs a real
``Install`` against :class:`ApiStandIn`, a local HTTP server that answers as an
empty Kubernetes API server would and records what it is sent: the version,
discovery documents for every kind the chart uses (CRDs, KEDA and the
Prometheus operator's kinds included), 404 for each object Helm looks up, and
201 with the object echoed for each create. The release Secret arrives in
protobuf and gets a minimal JSON Secret back. See ASSETS.md (Helm and Kubernetes).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

KUBE_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}

# group/version -> [(plural, kind, namespaced)]: everything the chart can render.
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("pods", "Pod", True),
        ("namespaces", "Namespace", False),
    ],
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    "batch/v1": [("jobs", "Job", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True), ("ingresses", "Ingress", True)],
    "rbac.authorization.k8s.io/v1": [("roles", "Role", True), ("rolebindings", "RoleBinding", True)],
    "apiextensions.k8s.io/v1": [("customresourcedefinitions", "CustomResourceDefinition", False)],
    "keda.sh/v1alpha1": [("scaledobjects", "ScaledObject", True)],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True)],
    "camsight.io/v1": [("cameras", "Camera", True)],
    "cert-manager.io/v1": [("certificates", "Certificate", True)],
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def _resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": plural, "singularName": "", "namespaced": ns, "kind": kind, "verbs": VERBS}
            for plural, kind, ns in RESOURCES[group_version]
        ],
    }


def _group_list() -> dict[str, Any]:
    groups = []
    for gv in RESOURCES:
        if "/" not in gv:
            continue
        group, version = gv.split("/")
        ver = {"groupVersion": gv, "version": version}
        groups.append({"name": group, "versions": [ver], "preferredVersion": ver})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str
    body: Any = None


@dataclass
class ApiStandIn:
    """A Kubernetes API server that holds nothing (or only ``existing``) and records every request."""

    requests: list[Recorded] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    existing: dict[str, dict[str, Any]] = field(default_factory=dict)
    """API path -> object it answers (what a template's ``lookup`` finds, as on an upgrade)."""

    def __post_init__(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> tuple[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype and raw:
                    return ctype, json.loads(raw)
                return ctype, raw

            def do_GET(self) -> None:
                path = urlsplit(self.path).path.rstrip("/")
                stand_in.requests.append(Recorded("GET", self.path, ""))
                if path == "/version":
                    return self._reply(200, KUBE_VERSION)
                if path == "/api":
                    return self._reply(200, {"kind": "APIVersions", "versions": ["v1"]})
                if path == "/apis":
                    return self._reply(200, _group_list())
                if path in stand_in.existing:
                    return self._reply(200, stand_in.existing[path])
                gv = path.removeprefix("/api/").removeprefix("/apis/")
                if gv in RESOURCES:
                    return self._reply(200, _resource_list(gv))
                parts = path.split("/")
                # A collection (".../<plural>") lists empty; a named object is not found.
                if parts[-1] in {p for rs in RESOURCES.values() for p, _, _ in rs}:
                    return self._reply(200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []})
                return self._reply(
                    404,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "NotFound",
                        "code": 404,
                    },
                )

            def _write(self, method: str, code: int) -> None:
                ctype, body = self._body()
                stand_in.requests.append(Recorded(method, self.path, ctype, body))
                if isinstance(body, dict):
                    if method == "POST":
                        stand_in.created.append(body)
                    # A patch of an existing object (Helm adopting it) answers the patched object.
                    current = stand_in.existing.get(urlsplit(self.path).path.rstrip("/"), {})
                    return self._reply(code, {**current, **body})
                # Helm's release Secret comes as protobuf: answer a minimal JSON Secret.
                name = urlsplit(self.path).path.rstrip("/").split("/")[-1]
                return self._reply(
                    code,
                    {
                        "kind": "Secret",
                        "apiVersion": "v1",
                        "metadata": {"name": name, "resourceVersion": "1"},
                    },
                )

            def do_POST(self) -> None:
                self._write("POST", 201)

            def do_PATCH(self) -> None:
                self._write("PATCH", 200)

            def do_PUT(self) -> None:
                self._write("PUT", 200)

            def do_DELETE(self) -> None:
                stand_in.requests.append(Recorded("DELETE", self.path, ""))
                return self._reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ApiStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def kubeconfig(self) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
                "users": [{"name": "standin", "user": {"token": "render"}}],
                "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin"}}],
                "current-context": "standin",
            }
        )


@dataclass
class Rendered:
    manifest: list[dict[str, Any]]
    notes: str
    stand_in: ApiStandIn

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.manifest if d["kind"] == kind]

    def one(self, kind: str, name_suffix: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, (
            f"expected one {kind} *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
        )
        return found[0]


def render(
    chart: Path,
    values: dict[str, Any],
    release: str = "cs",
    namespace: str = "video",
    existing: dict[str, dict[str, Any]] | None = None,
) -> Rendered:
    """Install the chart into the stand-in and return the rendered manifest.

    ``existing`` (API path -> object) is what the cluster already holds, for ``lookup``.
    """
    import helm_sdkpy

    with ApiStandIn(existing=dict(existing or {})) as stand_in:
        config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=stand_in.kubeconfig())
        result = asyncio.run(helm_sdkpy.Install(config).run(release, str(chart), values=values, wait=False))
    manifest = [d for d in yaml.safe_load_all(result["manifest"]) if d]
    info = result.get("info") or {}
    return Rendered(manifest, str(info.get("notes", "")), stand_in)
