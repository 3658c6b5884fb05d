"""``camsight serve <service>``: run one service until SIGTERM."""

from __future__ import annotations

import asyncio
import importlib
from enum import StrEnum
from typing import Annotated

import typer

from camsight.cli import app
from camsight.cli.common import EXIT_USAGE, ConfigOption, fail, settings_or_exit
from camsight.config import ConfigError
from camsight.runtime import Service, serve, setup_logging


class ServiceName(StrEnum):
    decoder = "decoder"
    detector = "detector"
    face = "face"
    behavior = "behavior"
    query = "query"
    controller = "controller"


# Services never import each other; the CLI finds each by module path.
SERVICES: dict[ServiceName, str] = {
    ServiceName.decoder: "camsight.decoder.service:DecoderService",
    ServiceName.detector: "camsight.detector.service:DetectorService",
    ServiceName.face: "camsight.face.service:FaceService",
    ServiceName.behavior: "camsight.behavior.service:BehaviorService",
    ServiceName.query: "camsight.query.service:QueryService",
    ServiceName.controller: "camsight.controller.service:ControllerService",
}


def service_class(name: ServiceName) -> type[Service]:
    module, _, attr = SERVICES[name].partition(":")
    try:
        cls: type[Service] = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            fail(f"service {name.value!r} is not part of this camsight version yet")
        raise
    return cls


@app.command("serve")
def serve_command(
    service: Annotated[ServiceName, typer.Argument(help="The service to run.")],
    config: ConfigOption = None,
) -> None:
    """Run one service: health on /healthz, /readyz, metrics on /metrics."""
    settings = settings_or_exit(config)
    setup_logging(settings.log, service.value)
    cls = service_class(service)
    try:
        code = asyncio.run(serve(settings, [cls], name=service.value))
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    raise typer.Exit(code)
