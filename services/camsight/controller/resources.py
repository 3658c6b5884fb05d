"""Pure translation between Camera resources, registry entries and status.

Kept free of I/O so the rules (which camera id a resource maps to, who owns a
registry entry, what the status subresource says) are easy to read and test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from camsight.cameras import CameraConfig
from camsight.stores.cameras import OWNER_LABEL
from camsight.v1 import camera_pb2

GROUP = "camsight.io"
VERSION = "v1"
PLURAL = "cameras"
KIND = "Camera"

# Status states beyond the decoder's CameraState names.
PENDING = "Pending"
INVALID = "Invalid"
CONFLICT = "Conflict"

SecretLookup = Callable[[str, str], str]
"""(secret name, key) -> value, in the resource's namespace; raises KeyError."""


@dataclass(frozen=True)
class Desired:
    """What one Camera resource asks for: a camera, or why it cannot be used."""

    namespace: str
    name: str
    generation: int
    camera: CameraConfig | None
    error: str = ""

    @property
    def owner(self) -> str:
        return f"{self.namespace}/{self.name}"


def resource_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def desired_camera(obj: Mapping[str, Any], secret: SecretLookup) -> Desired:
    """Validate a Camera resource's spec with the one camera model.

    ``spec.id`` defaults to the resource name; ``spec.source_from.secret_key_ref``
    reads the source URI (which may hold credentials) from a Secret instead of
    the resource, where anyone who can read Cameras would see it.
    """
    namespace, name = resource_key(obj)
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    spec: dict[str, Any] = dict(obj.get("spec") or {})
    spec.setdefault("id", name)
    source_from = spec.pop("source_from", None)
    try:
        if source_from is not None:
            if "source" in spec:
                raise ValueError("set either source or source_from, not both")
            ref = (source_from or {}).get("secret_key_ref") or {}
            if not ref.get("name") or not ref.get("key"):
                raise ValueError("source_from.secret_key_ref needs name and key")
            try:
                spec["source"] = secret(ref["name"], ref["key"])
            except KeyError as exc:
                raise ValueError(f"source_from: {exc.args[0]}") from None
        labels = dict(spec.get("labels") or {})
        labels[OWNER_LABEL] = f"{namespace}/{name}"
        spec["labels"] = labels
        camera = CameraConfig.model_validate(spec)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        return Desired(namespace, name, generation, None, f"invalid spec: {problems}")
    except ValueError as exc:
        return Desired(namespace, name, generation, None, f"invalid spec: {exc}")
    return Desired(namespace, name, generation, camera)


def status_for(desired: Desired, live: camera_pb2.CameraStatus | None, problem: str = "") -> dict[str, Any]:
    """The status subresource for one resource.

    ``problem`` (a conflict) and an invalid spec win over the decoder's live
    status, which is only shown for a camera that is in the registry.
    """
    status: dict[str, Any] = {"observedGeneration": desired.generation}
    if desired.camera is None:
        return status | {"state": INVALID, "message": desired.error}
    status["cameraId"] = desired.camera.id
    if problem:
        return status | {"state": CONFLICT, "message": problem}
    if live is None:
        return status | {"state": PENDING, "message": "in the registry; waiting for a decoder to report"}
    state = camera_pb2.CameraState.Name(live.state).removeprefix("CAMERA_STATE_").capitalize()
    status |= {
        "state": PENDING if state == "Unspecified" else state,
        "fps": round(live.fps, 2),
        "framesPublished": live.frames_published,
        "message": live.last_error,
    }
    if live.HasField("last_frame_time"):
        status["lastFrameTime"] = live.last_frame_time.ToJsonString()
    if live.decoder_id:
        status["decoder"] = live.decoder_id
    return status
