"""The in-memory gallery index: every enrolled embedding of one model, matched by Euclidean distance.

An :class:`GalleryIndex` is immutable: the gallery builds a new one when
the KV bucket changes and swaps it in with one assignment, so matching in a
worker thread never sees a half-updated gallery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from camsight.v1 import analysis_pb2, identity_pb2


@dataclass(frozen=True)
class GalleryIndex:
    """``embeddings`` (n, d) of model ``model``; ``owners[i]`` is the identity of row i."""

    model: str
    embeddings: npt.NDArray[np.float32]
    owners: tuple[str, ...]
    names: dict[str, str]

    @classmethod
    def build(cls, records: Iterable[identity_pb2.IdentityRecord], model: str) -> GalleryIndex:
        """Index the samples of ``model``; samples of other models are left out (not comparable)."""
        rows: list[list[float]] = []
        owners: list[str] = []
        names: dict[str, str] = {}
        for record in records:
            names[record.identity.id] = record.identity.display_name
            for sample in record.samples:
                if sample.model == model and sample.embedding:
                    rows.append(list(sample.embedding))
                    owners.append(record.identity.id)
        dims = len(rows[0]) if rows else 0
        kept = [(row, owner) for row, owner in zip(rows, owners, strict=True) if len(row) == dims]
        matrix = np.asarray([row for row, _ in kept], np.float32).reshape(len(kept), dims)
        return cls(model, matrix, tuple(owner for _, owner in kept), names)

    def __len__(self) -> int:
        return len(self.owners)

    @property
    def identities(self) -> int:
        return len(set(self.owners))

    def match(self, embedding: Iterable[float], threshold: float) -> analysis_pb2.IdentityMatch:
        """The closest enrolled identity, ``matched`` when its distance is within ``threshold``.

        An unknown face keeps ``identity_id`` empty and reports the distance to
        the closest enrolled face (useful to tune the threshold); with an empty
        gallery the distance is 0 and nothing matches.
        """
        vector = np.asarray(list(embedding), np.float32)
        if len(self) == 0 or vector.shape[0] != self.embeddings.shape[1]:
            return analysis_pb2.IdentityMatch(matched=False)
        distances = np.linalg.norm(self.embeddings - vector, axis=1)
        best = int(np.argmin(distances))
        distance = float(distances[best])
        if distance > threshold:
            return analysis_pb2.IdentityMatch(distance=distance, matched=False)
        owner = self.owners[best]
        return analysis_pb2.IdentityMatch(
            identity_id=owner, display_name=self.names.get(owner, ""), distance=distance, matched=True
        )
