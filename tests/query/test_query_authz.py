"""Authorization is deny-by-default: every served method has an entry, an unlisted one is refused.

The table test walks the protos' service descriptors, so a new RPC fails here until it
is given a scope in camsight.query.auth; the server tests add a method the table does
not know to the real query service and call it through a real gRPC channel.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

import camsight.v1
import grpc
import pytest
from camsight.config import ConfigError, NatsSettings, Settings, service_section
from camsight.query import auth, server
from camsight.query.settings import QuerySettings, Scope
from camsight.v1 import event_service_pb2
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.empty_pb2 import Empty
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from query_helpers import query_settings, running_query

READ = "read-token-0123456789"
ADMIN = "admin-token-0123456789"
TOKENS = [
    {"name": "viewer", "token": READ, "scope": "read"},
    {"name": "ops", "token": ADMIN, "scope": "admin"},
]
# A method the server serves but the table has never heard of: what a later RPC would be.
UNLISTED_SERVICE = "camsight.v1.LaterService"
UNLISTED = f"/{UNLISTED_SERVICE}/Purge"


def methods_of(file: FileDescriptor, package: str | None = None) -> set[str]:
    """Full method paths of a proto file's services (``package`` renames the proto package)."""
    out = set()
    for service in file.services_by_name.values():
        name = service.full_name if package is None else f"{package}.{service.name}"
        out |= {f"/{name}/{method.name}" for method in service.methods}
    return out


def camsight_methods() -> set[str]:
    """Every RPC declared in camsight.v1, found by importing each generated *_pb2 module."""
    out: set[str] = set()
    for module in pkgutil.iter_modules(camsight.v1.__path__):
        if module.name.endswith("_pb2"):
            out |= methods_of(importlib.import_module(f"camsight.v1.{module.name}").DESCRIPTOR)
    return out


def test_every_method_has_exactly_one_entry() -> None:
    ours = camsight_methods()
    assert ours, "no camsight.v1 service found: the walk itself is broken"
    # Reflection is also served as grpc.reflection.v1 (same messages): server.add_reflection.
    public = (
        methods_of(health_pb2.DESCRIPTOR)
        | methods_of(reflection_pb2.DESCRIPTOR)
        | methods_of(reflection_pb2.DESCRIPTOR, package=server.REFLECTION_V1.rsplit(".", 1)[0])
    )
    unmapped = sorted((ours | public) - auth.METHOD_SCOPES.keys() - auth.PUBLIC_METHODS)
    assert not unmapped, f"methods with no entry in camsight.query.auth (refused to everyone): {unmapped}"
    assert auth.METHOD_SCOPES.keys() <= ours, "METHOD_SCOPES names a method no proto declares"
    assert public == auth.PUBLIC_METHODS, "PUBLIC_METHODS must be exactly health and reflection"
    assert not auth.METHOD_SCOPES.keys() & auth.PUBLIC_METHODS


def test_the_writes_need_admin() -> None:
    """The writes of decision 0052 keep the admin scope (a slip to read would pass the walk)."""
    admin = {m.rsplit("/", 1)[-1] for m, s in auth.METHOD_SCOPES.items() if s is Scope.ADMIN}
    assert admin == {
        "CreateCamera", "UpdateCamera", "DeleteCamera", "EnrollFace", "EnrollFaceFromEvent", "DeleteIdentity",
    }  # fmt: skip


@pytest.fixture
def unlisted_method(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Serve UNLISTED next to the real services; the list records each call that got through."""
    called: list[str] = []
    original = server.add_reflection

    async def purge(request: Empty, context: grpc.aio.ServicerContext) -> Empty:
        called.append(UNLISTED)
        return Empty()

    def add_reflection_and_more(grpc_server: grpc.aio.Server, names: tuple[str, ...]) -> None:
        original(grpc_server, names)
        handler = grpc.unary_unary_rpc_method_handler(
            purge, request_deserializer=Empty.FromString, response_serializer=Empty.SerializeToString
        )
        grpc_server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(UNLISTED_SERVICE, {"Purge": handler}),)
        )

    monkeypatch.setattr(server, "add_reflection", add_reflection_and_more)
    return called


def auth_md(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.mark.parametrize("tokens", [TOKENS, []], ids=["auth-on", "auth-off"])
async def test_an_unlisted_method_is_refused_to_everyone(
    nats_settings: NatsSettings, tmp_path: Path, unlisted_method: list[str], tokens: list[dict[str, Any]]
) -> None:
    async with running_query(query_settings(nats_settings, tmp_path, tokens=tokens)) as query:
        call = query.channel.unary_unary(
            UNLISTED, request_serializer=Empty.SerializeToString, response_deserializer=Empty.FromString
        )
        for metadata in (auth_md(ADMIN), auth_md(READ)) if tokens else ([],):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(Empty(), metadata=metadata, timeout=10)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert UNLISTED in (err.value.details() or "")
            assert "\n" not in (err.value.details() or "")
        if tokens:  # an unauthenticated caller is turned away before the table is consulted
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(Empty(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert unlisted_method == []
        # Listed methods are unaffected; a method nobody serves is still UNIMPLEMENTED.
        md = auth_md(ADMIN) if tokens else []
        await query.events.CountEvents(event_service_pb2.CountEventsRequest(), metadata=md, timeout=10)
        absent = query.channel.unary_unary(
            "/camsight.v1.NoSuchService/Nothing",
            request_serializer=Empty.SerializeToString,
            response_deserializer=Empty.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await absent(Empty(), metadata=md, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def config_error(section: dict[str, Any]) -> str:
    """The one-line error of a query section that does not validate."""
    with pytest.raises(ConfigError) as err:
        service_section(Settings(services={"query": section}), "query", QuerySettings)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_an_unknown_scope_in_config_is_one_line_naming_the_field() -> None:
    message = config_error({"tokens": [{"name": "ops", "token": ADMIN, "scope": "owner"}]})
    assert message.startswith("invalid configuration: services.query.tokens.0.scope: ")
    assert "'read' or 'admin'" in message
    assert ADMIN not in message


def test_no_tokens_without_allow_anonymous_is_one_line() -> None:
    """What the Helm chart sets (allow_anonymous: false): an empty token list stops the
    service with one line instead of serving every caller; true, or tokens, start."""
    message = config_error({"allow_anonymous": False, "tokens": []})
    assert message.startswith("invalid configuration: services.query: ")
    assert "no tokens while allow_anonymous is false" in message
    assert service_section(Settings(), "query", QuerySettings).allow_anonymous
    tokens = {"allow_anonymous": False, "tokens": [{"token": READ}]}
    assert service_section(Settings(services={"query": tokens}), "query", QuerySettings).tokens
