"""Blocking calls to the Kubernetes API, one small class; callers run them off the loop.

The ``kubernetes`` client is synchronous: every method here blocks and the
service calls it through ``asyncio.to_thread``. The watch runs in its own
thread and hands events to the event loop through a callback; ``stop()``
shuts its socket so the thread ends at once instead of at the next event.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from camsight.controller.resources import GROUP, PLURAL, VERSION

WatchEvent = dict[str, Any]


class KubeCameras:
    """Camera resources and Secrets of one namespace."""

    def __init__(self, namespace: str, kubeconfig: Path | None) -> None:
        self.namespace = namespace
        if kubeconfig is not None:
            self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        else:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            self.api_client = client.ApiClient(configuration)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self._watch: watch.Watch | None = None
        self._lock = threading.Lock()

    def list(self) -> tuple[list[dict[str, Any]], str]:
        """Every Camera of the namespace and the list's resourceVersion."""
        result = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        assert isinstance(result, dict), "a list of custom objects is a JSON object"
        return list(result.get("items") or []), str((result.get("metadata") or {}).get("resourceVersion", ""))

    def watch(self, resource_version: str, timeout_s: int, emit: Callable[[WatchEvent], None]) -> None:
        """Stream ADDED/MODIFIED/DELETED events after ``resource_version`` until the
        server ends the watch or :meth:`stop` is called. Raises ApiException
        (410 Gone when the version is too old: the caller lists again)."""
        w = watch.Watch()
        with self._lock:
            self._watch = w
        try:
            for event in w.stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                resource_version=resource_version,
                timeout_seconds=timeout_s,
                allow_watch_bookmarks=True,
                deserialize=False,
            ):
                emit(event)
        finally:
            with self._lock:
                self._watch = None

    def stop(self) -> None:
        """End a running :meth:`watch` from another thread."""
        with self._lock:
            if self._watch is not None:
                self._watch.stop()

    def patch_status(self, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource of one Camera."""
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, name, {"status": status}
        )

    def secret_value(self, name: str, key: str) -> str:
        """One key of a Secret of the namespace, decoded; KeyError names what is missing."""
        try:
            secret = self.core.read_namespaced_secret(name, self.namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                raise KeyError(f"secret {name!r} not found") from None
            raise
        data = secret.data or {}
        if key not in data:
            raise KeyError(f"secret {name!r} has no key {key!r}")
        try:
            return base64.b64decode(data[key]).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            raise KeyError(f"secret {name!r} key {key!r} is not UTF-8 text") from None

    def close(self) -> None:
        self.api_client.close()
