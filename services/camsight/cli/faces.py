"""``camsight faces enroll|ls|rm``: manage the face gallery over gRPC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from camsight.cli import app
from camsight.cli.common import fail
from camsight.cli.events import CaOption, JsonOption, ServerOption, TlsOption, TokenOption, connect
from camsight.query.client import DEFAULT_SERVER, to_json
from camsight.v1 import face_gallery_service_pb2, identity_pb2

faces_app = typer.Typer(help="Enroll, list and remove the people faces are recognised against.")
app.add_typer(faces_app, name="faces")


def _line(identity: identity_pb2.Identity) -> str:
    return f"{identity.id:24} {identity.display_name or '-':24} {identity.face_count} face(s)"


@faces_app.command("enroll")
def enroll_command(
    identity_id: Annotated[str, typer.Argument(help="Identity id (letters, digits, - and _).")],
    image: Annotated[Path | None, typer.Argument(help="JPEG or PNG holding exactly one face.")] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Enroll the face in this event's snapshot.")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a face to an identity (created when new), from an image file or an event."""
    if (image is None) == (event is None):
        fail("give either an IMAGE file or --event EVENT_ID")
    with connect(server, token, tls, ca_file) as client:
        stub = client.faces()
        if image is not None:
            try:
                data = image.read_bytes()
            except OSError as exc:
                fail(f"cannot read {image}: {exc.strerror}")
            identity = client.call(
                stub.EnrollFace,
                face_gallery_service_pb2.EnrollFaceRequest(
                    identity_id=identity_id, display_name=name, image=data
                ),
            )
        else:
            identity = client.call(
                stub.EnrollFaceFromEvent,
                face_gallery_service_pb2.EnrollFaceFromEventRequest(
                    event_id=event or "", identity_id=identity_id, display_name=name
                ),
            )
    typer.echo(to_json(identity) if as_json else f"enrolled {_line(identity)}")


@faces_app.command("ls")
def ls_command(
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """List enrolled identities."""
    with connect(server, token, tls, ca_file) as client:
        identities = client.all_pages(
            client.faces().ListIdentities,
            face_gallery_service_pb2.ListIdentitiesRequest(),
            "identities",
        )
    for identity in identities:
        assert isinstance(identity, identity_pb2.Identity)
        typer.echo(to_json(identity) if as_json else _line(identity))


@faces_app.command("rm")
def rm_command(
    identity_id: Annotated[str, typer.Argument(help="Identity id.")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    tls: TlsOption = False,
    ca_file: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove an identity, its embeddings and thumbnails."""
    with connect(server, token, tls, ca_file) as client:
        client.call(
            client.faces().DeleteIdentity, face_gallery_service_pb2.DeleteIdentityRequest(id=identity_id)
        )
    typer.echo(
        json.dumps({"id": identity_id, "deleted": True}) if as_json else f"removed identity {identity_id}"
    )
