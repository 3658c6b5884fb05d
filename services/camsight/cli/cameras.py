"""``camsight cameras add|rm|restart|ls|status``: manage the camera registry over gRPC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import ValidationError

from camsight.cameras import CameraConfig
from camsight.cli import app
from camsight.cli.common import fail
from camsight.cli.events import CaOption, JsonOption, ServerOption, TlsOption, TokenOption, connect
from camsight.naming import redact_uri
from camsight.query.client import DEFAULT_SERVER, to_json
from camsight.v1 import camera_pb2, camera_service_pb2

cameras_app = typer.Typer(
    help="Add, remove, restart and inspect cameras (add, rm and restart need the admin scope)."
)
app.add_typer(cameras_app, name="cameras")


def camera_from_options(
    camera_id: str | None, source: str | None, from_file: Path | None, **fields: object
) -> camera_pb2.Camera:
    """The camera from a YAML file (one camera mapping) or from the options."""
    data: dict[str, object] = {}
    if from_file is not None:
        try:
            loaded = yaml.safe_load(from_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            fail(f"cannot read {from_file}: {exc}")
        if not isinstance(loaded, dict):
            fail(f"{from_file} must hold one camera mapping")
        data.update(loaded)
    if camera_id:
        data["id"] = camera_id
    if source:
        data["source"] = source
    data.update({k: v for k, v in fields.items() if v not in (None, [], "")})
    try:
        return CameraConfig.model_validate(data).to_proto()
    except ValidationError as exc:
        error = exc.errors()[0]
        fail(f"camera.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}")


@cameras_app.command("add")
def add_command(
    camera_id: Annotated[str | None, typer.Argument(help="Camera id (letters, digits, - and _).")] = None,
    source: Annotated[str | None, typer.Argument(help="File, rtsp://, http(s)://, /dev/videoN, ...")] = None,
    from_file: Annotated[Path | None, typer.Option("--file", help="YAML file with one camera.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    fps: Annotated[float | None, typer.Option("--fps", help="Frames per second to sample.")] = None,
    analyzer: Annotated[
        list[str] | None, typer.Option("--analyzer", help="Analyzer to run (repeatable).")
    ] = None,
    loop: Annotated[
        bool | None, typer.Option("--loop/--no-loop", help="Files: start again at the end.")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a camera; the decoders pick it up at once."""
    camera = camera_from_options(
        camera_id, source, from_file, display_name=name, fps=fps, analyzers=analyzer or [], loop=loop
    )
    with connect(server, token, tls, ca_file) as client:
        created = client.call(
            client.cameras().CreateCamera, camera_service_pb2.CreateCameraRequest(camera=camera)
        )
    typer.echo(to_json(created) if as_json else f"added camera {created.id} ({created.source_uri})")


@cameras_app.command("rm")
def rm_command(
    camera_id: Annotated[str, typer.Argument(help="Camera id.")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove a camera; its decoder stops."""
    with connect(server, token, tls, ca_file) as client:
        client.call(client.cameras().DeleteCamera, camera_service_pb2.DeleteCameraRequest(id=camera_id))
    typer.echo(json.dumps({"id": camera_id, "deleted": True}) if as_json else f"removed camera {camera_id}")


@cameras_app.command("restart")
def restart_command(
    camera_id: Annotated[str, typer.Argument(help="Camera id.")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restart a camera: a stream reconnects, a file plays again from its start (one that ended too)."""
    with connect(server, token, tls, ca_file) as client:
        stub = client.cameras()
        camera = client.call(stub.GetCamera, camera_service_pb2.GetCameraRequest(id=camera_id))
        # Written back unchanged: a new revision of the entry is what restarts it (its
        # redacted source is restored by the service).
        restarted = client.call(stub.UpdateCamera, camera_service_pb2.UpdateCameraRequest(camera=camera))
    typer.echo(to_json(restarted) if as_json else f"restarted camera {restarted.id}")


@cameras_app.command("ls")
def ls_command(
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """List registered cameras."""
    with connect(server, token, tls, ca_file) as client:
        cameras = client.all_pages(
            client.cameras().ListCameras, camera_service_pb2.ListCamerasRequest(), "cameras"
        )
    for camera in cameras:
        assert isinstance(camera, camera_pb2.Camera)
        if as_json:
            typer.echo(to_json(camera))
        else:
            state = "enabled" if camera.enabled else "disabled"
            typer.echo(
                f"{camera.id:20} {state:9} {camera.target_fps or 0:5.1f} fps  {redact_uri(camera.source_uri)}"
            )


@cameras_app.command("status")
def status_command(
    camera_id: Annotated[str | None, typer.Argument(help="One camera; all when omitted.")] = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the live status of cameras (state, fps, frames, last error)."""
    with connect(server, token, tls, ca_file) as client:
        stub = client.cameras()
        if camera_id:
            statuses: list[object] = [
                client.call(
                    stub.GetCameraStatus, camera_service_pb2.GetCameraStatusRequest(camera_id=camera_id)
                )
            ]
        else:
            statuses = client.all_pages(
                stub.ListCameraStatuses, camera_service_pb2.ListCameraStatusesRequest(), "statuses"
            )
    for status in statuses:
        assert isinstance(status, camera_pb2.CameraStatus)
        if as_json:
            typer.echo(to_json(status))
        else:
            state = camera_pb2.CameraState.Name(status.state).removeprefix("CAMERA_STATE_").lower()
            typer.echo(
                f"{status.camera_id:20} {state:9} {status.fps:5.1f} fps  published {status.frames_published}"
                f"  dropped {status.frames_dropped}  {status.last_error}".rstrip()
            )
