"""``camsight serve detector``: a thin :class:`Service` around the analyzer host.

Configuration (``services.detector``)::

    services:
      detector:
        analyzers:            # analyzer name -> its own config
          hog: {min_score: 0.6}
          motion: {min_area: 0.005}
        batch: 8
        max_frame_age_s: 10
        device: auto          # auto | cpu | cuda | cuda:N
        precision: fp32       # fp32 | fp16 | bf16 | int8
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from camsight.analyzers import AnalyzerError
from camsight.analyzers.host import AnalyzerHost, HostSettings, create_analyzers
from camsight.analyzers.manager import PluginManager
from camsight.config import ConfigError, service_section
from camsight.runtime import Service, ServiceContext


def _defaults() -> dict[str, dict[str, Any]]:
    return {"hog": {}, "motion": {}}


class DetectorSettings(HostSettings):
    """Host settings with the OpenCV people and motion analyzers enabled by default."""

    analyzers: dict[str, dict[str, Any]] = Field(default_factory=_defaults)


class DetectorService(Service):
    name: ClassVar[str] = "detector"

    def __init__(self, ctx: ServiceContext, plugins: PluginManager | None = None) -> None:
        super().__init__(ctx)
        self.settings = service_section(ctx.settings, self.name, DetectorSettings)
        if not self.settings.analyzers:
            raise ConfigError("services.detector.analyzers: enable at least one analyzer")
        manager = plugins or self.settings.plugin_manager(ctx.settings.disabled_plugins, self.name)
        try:
            analyzers, explained = create_analyzers(manager, self.settings.analyzers, self.settings)
        except AnalyzerError as exc:
            raise ConfigError(f"services.detector.analyzers: {exc}") from None
        self.host = AnalyzerHost(ctx, analyzers, self.name, self.settings, explain=explained)

    async def start(self) -> None:
        await self.host.load()
        self.set_ready(*self.host.readiness())

    def failures(self) -> list[str]:
        return list(self.host.load_errors.values())

    def abandoned(self) -> list[str]:
        return self.host.abandoned

    async def run(self) -> None:
        await self.host.run_until(self.ctx.stopping)

    async def close(self) -> None:
        await self.host.close()
