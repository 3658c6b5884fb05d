"""A small Kubernetes API server for the controller's tests, under the test's control.

It serves what the controller uses and nothing else: list and watch of
``cameras.camsight.io`` in one namespace, merge-patch of the status
subresource, and GET of Secrets. Objects carry resourceVersion and generation
as the real server sets them (generation moves only on spec changes, a status
patch emits a MODIFIED event). The real ``kubernetes`` client talks to it over
HTTP, so the controller's requests, watch handling and patch content type
are exercised for real.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
from pathlib import Path
from typing import Any

from aiohttp import web

GROUP_PATH = "/apis/camsight.io/v1/namespaces/{ns}/cameras"
NAMESPACE = "cams"  # where the tests put their Camera resources


class FakeKubeApi:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.objects: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.history: list[tuple[int, dict[str, Any]]] = []  # (resourceVersion, event)
        self.patch_content_types: list[str] = []
        self.requests: list[str] = []
        self._version = 1
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- what the test does -------------------------------------------------

    async def create(self, name: str, spec: dict[str, Any]) -> None:
        obj = {
            "apiVersion": "camsight.io/v1",
            "kind": "Camera",
            "metadata": {"name": name, "namespace": self.namespace, "generation": 1, "uid": f"uid-{name}"},
            "spec": spec,
        }
        self.objects[name] = obj
        await self._emit("ADDED", obj)

    async def update(self, name: str, spec: dict[str, Any]) -> None:
        obj = self.objects[name]
        obj["spec"] = spec
        obj["metadata"]["generation"] += 1
        await self._emit("MODIFIED", obj)

    async def delete(self, name: str) -> None:
        obj = self.objects.pop(name)
        await self._emit("DELETED", obj)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.objects.get(name, {}).get("status") or {})

    def add_secret(self, name: str, data: dict[str, str]) -> None:
        self.secrets[name] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}

    def kubeconfig(self, path: Path) -> Path:
        server = f"http://127.0.0.1:{self.port}"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": server}}],
                    "users": [{"name": "fake", "user": {"token": "test-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    # ---- the HTTP side -------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        base = GROUP_PATH.format(ns=self.namespace)
        app.router.add_get(base, self._list_or_watch)
        app.router.add_patch(base + "/{name}/status", self._patch_status)
        app.router.add_get(f"/api/v1/namespaces/{self.namespace}/secrets/{{name}}", self._secret)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        self.history.append((self._version, {"type": kind, "object": copy.deepcopy(obj)}))
        async with self._changed:
            self._changed.notify_all()

    async def _list_or_watch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"GET {request.path_qs}")
        if request.query.get("watch") in ("true", "1", "True"):
            return await self._watch(request)
        items = [copy.deepcopy(o) for o in self.objects.values()]
        return web.json_response(
            {
                "apiVersion": "camsight.io/v1",
                "kind": "CameraList",
                "metadata": {"resourceVersion": str(self._version)},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or 0)
        timeout = float(request.query.get("timeoutSeconds") or 300)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + timeout
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            while asyncio.get_running_loop().time() < deadline:
                for version, event in self.history:
                    if version > since:
                        await response.write(json.dumps(event).encode() + b"\n")
                        since = version
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.5)
                if self._runner is None or request.transport is None or request.transport.is_closing():
                    break
        return response

    async def _patch_status(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.requests.append(f"PATCH {request.path}")
        self.patch_content_types.append(request.headers.get("Content-Type", ""))
        if name not in self.objects:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        patch = await request.json()
        obj = self.objects[name]
        obj["status"] = _merge(obj.get("status") or {}, patch.get("status") or {})
        await self._emit("MODIFIED", obj)
        return web.json_response(obj)

    async def _secret(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.secrets:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        return web.json_response(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": self.secrets[name]}
        )


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
