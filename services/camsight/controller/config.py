"""The controller's own settings: ``services.controller`` in the config file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ControllerConfig(BaseModel):
    """Where the Camera resources live and how often status is copied back.

    ``kubeconfig`` empty means in-cluster (the pod's service account);
    ``namespace`` empty means the pod's own namespace, so the chart's RBAC can
    stay a namespaced Role.
    """

    model_config = ConfigDict(extra="forbid")

    kubeconfig: Path | None = None
    namespace: str = ""
    status_interval_s: float = Field(5.0, gt=0, le=3600)
    # The API server ends a watch after this long; the controller re-lists and
    # watches again, which also repairs any drift in the registry.
    watch_timeout_s: int = Field(300, ge=1, le=3600)
    retry_backoff_s: float = Field(2.0, gt=0, le=300)

    def resolved_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
        except OSError:
            return "default"
