"""What camsight's topology reserves on a JetStream node, for sizing a NATS deployment.

A stream with a byte limit reserves it on every node holding a copy, and a node refuses
a stream that does not fit (JetStream errors 10028, memory, and 10047, storage). The
Helm chart checks its stores against these reservations when it renders, from
``helm/camsight/files/jetstream-reservations.json``, which :func:`reservations_document`
derives from the topology's own declarations (decision 0065): a stream, bucket or
object store given a byte limit counts without anyone keeping a list by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nats.js.api import StorageType

from camsight.bus.topology import kv_configs, object_store_configs, stream_configs
from camsight.config import StreamSettings


def byte_limits(cfg: StreamSettings) -> dict[str, tuple[StorageType, int]]:
    """Every JetStream stream of the topology (buckets and object stores by their stream
    names) with its storage and byte limit (0 or less: none)."""
    limits = {c.name or "": (c.storage or StorageType.FILE, c.max_bytes or 0) for c in stream_configs(cfg)}
    for kv in kv_configs(cfg):
        limits[f"KV_{kv.bucket}"] = (kv.storage or StorageType.FILE, kv.max_bytes or 0)
    for store in object_store_configs(cfg):
        limits[f"OBJ_{store.bucket}"] = (store.storage or StorageType.FILE, store.max_bytes or 0)
    return limits


def _settings_feeding(defaults: StreamSettings) -> dict[str, str]:
    """stream -> the ``streams`` setting its byte limit is, found by changing each integer
    setting by one byte: the topology's code is the only description of that mapping."""
    base = byte_limits(defaults)
    fed: dict[str, str] = {}
    for name, value in defaults.model_dump().items():
        if type(value) is not int:
            continue
        changed = byte_limits(defaults.model_copy(update={name: value + 1}))
        for stream, (_, size) in changed.items():
            if size == base[stream][1] + 1:
                fed[stream] = name
            elif size != base[stream][1]:
                raise ValueError(f"{stream}'s byte limit is not streams.{name}: the chart only sums settings")
    return fed


def reservations_document() -> str:
    """Per storage (``memory``, ``file``): the ``streams`` settings whose value a node
    reserves (setting -> stream) and the fixed byte limits (stream -> bytes), as JSON."""
    defaults = StreamSettings()
    fed = _settings_feeding(defaults)
    document: dict[str, dict[str, dict[str, object]]] = {
        storage.value: {"settings": {}, "fixed": {}} for storage in (StorageType.MEMORY, StorageType.FILE)
    }
    for stream, (storage, size) in byte_limits(defaults).items():
        part = document[storage.value]
        if stream in fed:
            part["settings"][fed[stream]] = stream
        elif size > 0:
            part["fixed"][stream] = size
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """``python -m camsight.bus.sizing FILE``: write :func:`reservations_document` to FILE."""
    if len(argv) != 1:
        print(
            "usage: python -m camsight.bus.sizing helm/camsight/files/jetstream-reservations.json",
            file=sys.stderr,
        )
        return 2
    Path(argv[0]).write_text(reservations_document(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
