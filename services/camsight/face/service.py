"""``camsight serve face``: the analyzer host with face analyzers, plus the gallery and enrollment.

Per analysed batch the host calls :meth:`FaceService.postprocess` before
publishing: every face detection gets its identity (the closest enrolled
face within ``match_threshold``, or unknown), an explicit ``privacy``
(``PRIVACY_BLUR`` for unknown faces when ``blur_unknown`` is on, or when the
plugin asked for it; else ``PRIVACY_VISIBLE``: every writer of pictures
downstream blurs the box of a ``PRIVACY_BLUR`` face, see
:mod:`camsight.privacy`), a small JPEG crop (blurred when the face is), and
loses its embedding unless ``publish_embeddings`` is on.

The enrollment endpoint (``camsight.face.enroll``, queue group shared by
the replicas) writes the gallery; every replica follows the gallery bucket
and matches against the new faces without a restart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from typing import ClassVar

from nats.aio.subscription import Subscription
from prometheus_client import Counter

from camsight.analyzers import (
    EMBEDDING_MODEL_ATTRIBUTE,
    FACE_LABEL,
    KIND_FACES,
    Analyzer,
    AnalyzerError,
    FrameAnalyzer,
    Image,
)
from camsight.analyzers.host import AnalyzerHost, create_analyzers
from camsight.analyzers.manager import PluginManager
from camsight.bus import subjects
from camsight.bus.rpc import serve_requests
from camsight.config import ConfigError, service_section
from camsight.face.crops import face_crop
from camsight.face.enroll import Enroller, error_reply
from camsight.face.gallery import Gallery
from camsight.face.settings import FaceSettings
from camsight.privacy import must_blur
from camsight.runtime import Service, ServiceContext
from camsight.v1 import analysis_pb2

log = logging.getLogger(__name__)

FACES = Counter("camsight_face_faces", "Faces identified, by outcome (known, unknown)", ["outcome"])


class FaceService(Service):
    name: ClassVar[str] = "face"

    def __init__(self, ctx: ServiceContext, plugins: PluginManager | None = None) -> None:
        super().__init__(ctx)
        self.settings = service_section(ctx.settings, self.name, FaceSettings)
        manager = plugins or self.settings.plugin_manager(ctx.settings.disabled_plugins, self.name)
        try:
            analyzers, explained = create_analyzers(manager, self.settings.analyzer_configs(), self.settings)
        except AnalyzerError as exc:
            raise ConfigError(f"services.face: {exc}") from None
        faces = [a for a in analyzers if a.kind == KIND_FACES and isinstance(a, FrameAnalyzer)]
        if not faces:
            raise ConfigError("services.face.analyzers: enable at least one face (frame) analyzer")
        self.enroll_analyzer: FrameAnalyzer = faces[0]
        self.host = AnalyzerHost(
            ctx, analyzers, self.name, self.settings, postprocess=self.postprocess, explain=explained
        )
        self.gallery: Gallery | None = None
        self._endpoint: Subscription | None = None
        s = self.settings
        self._crop = functools.partial(
            face_crop, size=s.crop_size or 96, quality=s.crop_quality, margin=s.crop_margin
        )

    async def start(self) -> None:
        await self.host.load()
        self.gallery = Gallery(self.ctx.bus, self.settings.embedding_model)
        await self.gallery.start()
        enroller = Enroller(self.enroll_analyzer, self.gallery, self._crop)
        self._endpoint = await serve_requests(
            self.ctx.bus, subjects.FACE_ENROLL_SUBJECT, self.settings.enroll_queue, enroller, error_reply
        )
        self.set_ready(*self.host.readiness())

    def failures(self) -> list[str]:
        return list(self.host.load_errors.values())

    def abandoned(self) -> list[str]:
        return self.host.abandoned

    async def run(self) -> None:
        await self.host.run_until(self.ctx.stopping)

    async def close(self) -> None:
        if self._endpoint is not None:
            try:
                await self._endpoint.unsubscribe()
            except Exception as exc:  # the connection may already be closed
                log.debug("enroll endpoint unsubscribe: %s", exc)
        if self.gallery is not None:
            await self.gallery.stop()
        await self.host.close()

    async def postprocess(
        self, analyzer: Analyzer, images: Sequence[Image], results: Sequence[analysis_pb2.AnalysisResult]
    ) -> None:
        """Attach identities and crops to the face detections of ``results`` (in place)."""
        if analyzer.kind != KIND_FACES:
            return
        await asyncio.to_thread(self._identify, images, results)

    def _identify(self, images: Sequence[Image], results: Sequence[analysis_pb2.AnalysisResult]) -> None:
        s = self.settings
        index = self.gallery.index if self.gallery is not None else None
        for image, result in zip(images, results, strict=True):
            for detection in result.detections:
                if detection.label != FACE_LABEL:
                    continue
                comparable = detection.attributes.get(EMBEDDING_MODEL_ATTRIBUTE) == s.embedding_model
                if index is not None and comparable and detection.embedding:
                    detection.identity.CopyFrom(index.match(detection.embedding, s.match_threshold))
                else:
                    detection.identity.CopyFrom(analysis_pb2.IdentityMatch(matched=False))
                FACES.labels("known" if detection.identity.matched else "unknown").inc()
                # Decided explicitly for every face (never left UNSPECIFIED), and a plugin's
                # BLUR (or a value this version does not know) is never turned into VISIBLE.
                hide = must_blur(detection.privacy) or (s.blur_unknown and not detection.identity.matched)
                detection.privacy = analysis_pb2.PRIVACY_BLUR if hide else analysis_pb2.PRIVACY_VISIBLE
                if s.crop_size:
                    box = (detection.box.x1, detection.box.y1, detection.box.x2, detection.box.y2)
                    detection.crop_jpeg = self._crop(image, box, blurred=hide)
                if not s.publish_embeddings:
                    del detection.embedding[:]
