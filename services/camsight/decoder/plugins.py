"""Camera sources from plugins: URI scheme -> reader, through the ``camsight_sources`` hook.

camsight's own schemes register through the same hook (this module is the
plugin ``camsight-sources``: ``VideoSource`` declares them), so a plugin
claiming ``rtsp`` is refused by name and the built-in keeps working. A plugin's
:class:`~camsight.analyzers.SourceReader` runs behind :class:`PluginSource`,
which gives the camera worker what every source gives: a recording read to
its end, errors as :class:`SourceError` naming the plugin.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from urllib.parse import urlsplit

from camsight.analyzers import hookimpl
from camsight.analyzers.manager import BUILTIN_SOURCES, PluginManager, TypeInfo, default_manager
from camsight.analyzers.sources import SourceReader, SourceUnavailable
from camsight.cameras import CameraConfig
from camsight.config import ConfigError
from camsight.decoder.sources import EndOfSource, FrameFilter, Grabbed, SourceError, SourceKind, VideoSource
from camsight.naming import redact_uri


@hookimpl
def camsight_sources() -> list[type]:
    return [VideoSource]


class PluginSource:
    """A plugin's reader as a decoder source (a recording: paced losslessly, ends at None)."""

    kind = SourceKind.PLUGIN

    def __init__(self, reader: SourceReader, plugin: str) -> None:
        self.reader = reader
        self.plugin = plugin
        self.shown = redact_uri(reader.uri)

    def _failed(self, exc: Exception) -> SourceError:
        if isinstance(exc, SourceUnavailable):
            return SourceError(f"{exc} (source plugin {self.plugin!r})", permanent=exc.permanent)
        return SourceError(
            f"source plugin {self.plugin!r} raised {type(exc).__name__} on {self.shown}: {exc}",
            permanent=False,
        )

    def open(self) -> None:
        try:
            self.reader.open()
        except Exception as exc:
            raise self._failed(exc) from None

    def seek(self, media_time: float) -> None:
        """Resume: the camera worker skips the pictures up to ``media_time`` itself."""

    def grab(self, take: FrameFilter) -> Grabbed | None:
        try:
            picture = self.reader.read()
        except Exception as exc:
            raise self._failed(exc) from None
        if picture is None:
            raise EndOfSource
        image, media_time = picture
        return Grabbed(image, media_time) if take(media_time) else None

    def progress(self) -> float:
        return 0.0

    def close(self) -> None:
        self.reader.close()


class SourceRegistry:
    """The URI schemes a decoder can open: camsight's own and every plugin's."""

    def __init__(self, manager: PluginManager) -> None:
        manager.add(sys.modules[__name__], name=BUILTIN_SOURCES)
        self.types: dict[str, TypeInfo] = manager.source_types()
        self.errors = manager.type_errors
        """Plugin -> why its schemes are refused (a built-in's scheme, a clash, not a class)."""

    @classmethod
    def load(cls, disabled: Iterable[str] = ()) -> SourceRegistry:
        return cls(default_manager(disabled))

    def _plugin(self, uri: str) -> TypeInfo:
        scheme = urlsplit(uri).scheme.lower()
        info = self.types.get(scheme)
        if info is None or info.plugin == BUILTIN_SOURCES:
            known = ", ".join(sorted(self.types))
            refused = "".join(f"; {problem}" for problem in sorted(self.errors.values()))
            raise SourceError(
                f"no source plugin reads scheme {scheme!r} of {redact_uri(uri)} (schemes: {known}){refused}",
                permanent=True,
            )
        return info

    def source(self, uri: str) -> PluginSource:
        """The (unopened) source of a plugin's scheme; :class:`SourceError` when none reads it."""
        info = self._plugin(uri)
        return PluginSource(info.cls(uri), info.plugin)

    def check(self, cameras: Iterable[CameraConfig]) -> None:
        """A camera whose scheme no plugin reads is a :class:`ConfigError` (one line)."""
        for camera in cameras:
            if "://" in camera.source and urlsplit(camera.source).scheme.lower() not in self.types:
                try:
                    self._plugin(camera.source)
                except SourceError as exc:
                    raise ConfigError(f"cameras: camera {camera.id!r}: {exc}") from None


def checked_sources(disabled: Iterable[str], cameras: Iterable[CameraConfig]) -> SourceRegistry:
    """The schemes of the installed plugins but ``disabled``, once every camera's scheme was
    found among them (else a one-line :class:`ConfigError`: exit 2 at start-up)."""
    registry = SourceRegistry.load(disabled)
    registry.check(cameras)
    return registry


@functools.cache
def default_sources() -> SourceRegistry:
    """Every installed plugin's schemes (for workers built without a service)."""
    return SourceRegistry.load()
