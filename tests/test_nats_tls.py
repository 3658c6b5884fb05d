"""camsight's NATS client over TLS against a real nats-server with a test CA.

The server requires TLS and verifies client certificates (mTLS); the bus
connects with ``nats.tls`` exactly as a service's configuration gives it, and
the server's own connection list confirms the connection is encrypted.
Misconfigurations are one line naming the setting, not an endless retry.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from camsight.bus import connect, connect_with_retry, subjects
from camsight.config import ConfigError, NatsSettings, StreamSettings
from camsight.natsserver import EmbeddedNats
from tls_support import TestCA


class Pki:
    def __init__(self, folder: Path) -> None:
        self.ca = TestCA(folder / "ca")
        self.other_ca = TestCA(folder / "other", "some other CA")
        self.server = self.ca.issue("nats-server", server=True)
        self.client = self.ca.issue("camsight-client", server=False)
        self.stranger = self.other_ca.issue("stranger", server=False)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def tls_nats(tmp_path: Path, pki: Pki) -> Iterator[EmbeddedNats]:
    tls = {
        "cert_file": str(pki.server.cert_file),
        "key_file": str(pki.server.key_file),
        "ca_file": str(pki.ca.ca_file),
        "verify": True,  # mTLS: a client must present a certificate of this CA
        "timeout": 2,
    }
    server = EmbeddedNats(store_dir=tmp_path / "js", log_file=tmp_path / "nats.log", extra={"tls": tls})
    server.start()
    yield server
    server.stop()


def settings(server: EmbeddedNats, **tls: Any) -> NatsSettings:
    return NatsSettings.model_validate({"servers": [server.url], "tls": tls, "reconnect_wait_s": 0.1})


def connections(server: EmbeddedNats) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{server.monitor_url}/connz", timeout=5) as resp:
        return list(json.load(resp).get("connections") or [])


async def test_the_bus_works_over_mutual_tls(tls_nats: EmbeddedNats, pki: Pki) -> None:
    cfg = settings(
        tls_nats, ca_file=pki.ca.ca_file, cert_file=pki.client.cert_file, key_file=pki.client.key_file
    )
    bus = await connect_with_retry(cfg, StreamSettings(), name="camsight-tls-test")
    try:
        await bus.ensure_topology()
        kv = await bus.kv(subjects.CAMERAS_BUCKET)
        await kv.put("lobby", b"over tls")
        assert (await kv.get("lobby")).value == b"over tls"
        ours = [c for c in connections(tls_nats) if c.get("name") == "camsight-tls-test"]
        assert ours and ours[0].get("tls_version", "").startswith("1.")
    finally:
        await bus.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


async def test_a_wrong_ca_is_one_line_naming_the_setting(tls_nats: EmbeddedNats, pki: Pki) -> None:
    cfg = settings(
        tls_nats, ca_file=pki.other_ca.ca_file, cert_file=pki.client.cert_file, key_file=pki.client.key_file
    )
    with pytest.raises(ConfigError) as err:
        await asyncio.wait_for(connect_with_retry(cfg, StreamSettings(), name="t"), 20)
    text = _one_line(err.value)
    assert "nats.tls.ca_file" in text and str(pki.other_ca.ca_file) in text and "not trusted" in text


async def test_a_missing_client_certificate_is_one_line(tls_nats: EmbeddedNats, pki: Pki) -> None:
    with pytest.raises(ConfigError) as err:
        await asyncio.wait_for(connect(settings(tls_nats, ca_file=pki.ca.ca_file), StreamSettings(), "t"), 20)
    assert "requires a client certificate" in _one_line(err.value)
    assert "nats.tls.cert_file" in str(err.value)


async def test_a_client_certificate_of_another_ca_is_refused(tls_nats: EmbeddedNats, pki: Pki) -> None:
    cfg = settings(
        tls_nats, ca_file=pki.ca.ca_file, cert_file=pki.stranger.cert_file, key_file=pki.stranger.key_file
    )
    with pytest.raises(ConfigError) as err:
        await asyncio.wait_for(connect(cfg, StreamSettings(), "t"), 20)
    assert "does not accept the client certificate" in _one_line(err.value)


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ({"ca_file": "missing.pem"}, "nats.tls.ca_file: cannot load"),
        ({"ca_file": "garbage.pem"}, "nats.tls.ca_file: cannot load"),
        ({"cert_file": "x.pem"}, "cert_file and key_file go together"),
    ],
)
async def test_unreadable_tls_files_are_refused_before_connecting(
    tmp_path: Path, tls: dict[str, str], expected: str
) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    resolved = {k: str(tmp_path / v) for k, v in tls.items()}
    cfg = NatsSettings.model_validate({"servers": ["nats://127.0.0.1:1"], "tls": resolved})
    with pytest.raises(ConfigError, match=expected) as err:
        await asyncio.wait_for(connect_with_retry(cfg, StreamSettings(), name="t"), 10)
    _one_line(err.value)
