"""The chart's rendered configuration runs (issue 25): a real NATS cluster from the rendered
nats.conf and auth.conf, the topology Job and the services from their rendered config file
and environment, a camera from the values, and its events read back over gRPC with the
rendered API token. For the default values and the GPU/KEDA values (there on the CPU:
the GPU changes the image and the scheduling, not the configuration).

See rendered_install.py for what is rewritten (hostnames, ports, mount paths) and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from camsight.behavior.partition import owner
from camsight.query.client import Client, ClientError
from camsight.v1 import event_service_pb2
from helm_render import Rendered, render
from helpers import needs, needs_helm, sample_video, wait_for
from reliability.processes import ServiceProcess, free_port
from rendered_install import NatsNode, Workload, nats_nodes, start_topology, topology, workload

pytestmark = pytest.mark.slow

CHART = Path(__file__).resolve().parents[2] / "helm" / "camsight"
CI_VALUES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((CHART / "ci").glob("*-values.yaml"))}
# Every service and its workload kind, but the controller (it needs an API server:
# test_controller.py); the detector runs the OpenCV analyzers, face CenterFace and dlib,
# each with the weights that ship with its package.
SERVICES = {
    "decoder": "Deployment",
    "detector": "Deployment",
    "face": "Deployment",
    "behavior": "StatefulSet",
    "query": "Deployment",
}
# JetStream refusing a stream its resources (10023, 10028 memory, 10047 storage), as
# nats-server writes the API error ("insufficient storage resources available (10047)"),
# nats-py prints it ("err_code=10047") or placement reports it ("no suitable peers for
# placement, insufficient storage"). Never the bare codes: those five digits turn up in
# the microseconds of log timestamps (about 1 run in 100 has such a line) and as the
# [pid] of every line of a nats-server whose process id is 10028 or 10047.
JETSTREAM_REFUSAL = re.compile(
    r"insufficient (?:storage|memory|resources)|\(100(?:23|28|47)\)|err_code=100(?:23|28|47)", re.IGNORECASE
)

RESERVED = {
    (storage, stream)
    for storage, part in json.loads((CHART / "files" / "jetstream-reservations.json").read_text()).items()
    for stream in [*part["settings"].values(), *part["fixed"]]
}

needs_helm()


def jetstream_refusals(text: str) -> list[str]:
    """The lines of ``text`` in which JetStream refuses resources (shown when a check fails)."""
    return [line for line in text.splitlines() if JETSTREAM_REFUSAL.search(line)]


def camera_of_replica_zero(replicas: int) -> str:
    """A camera id that behavior replica 0 owns: the one replica run here."""
    return next(c for c in (f"lobby-{i}" for i in range(100)) if owner(c, replicas) == 0)


def with_camera(values: dict[str, Any], camera: str) -> dict[str, Any]:
    source = {"id": camera, "source": str(sample_video("carphone_pristine.mp4")), "fps": 5}
    return {**values, "cameras": [source]}


@contextlib.contextmanager
def nats_cluster(
    r: Rendered, root: Path, given: dict[str, dict[str, str]] | None = None
) -> Iterator[list[NatsNode]]:
    nodes = nats_nodes(r, root, given)
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def all_ready(nodes: list[NatsNode]) -> None:
    """Every node passes the rendered readiness probe (a JetStream leader, this node current);
    a failure quotes what each node's probe answered and the end of its log."""
    try:
        await wait_for(lambda: all(n.ready() for n in nodes), 60, "every NATS node ready")
    except BaseException:
        for node in nodes:
            print(node.pod, node.probe_answer(), node.log.read_text()[-1500:], sep="\n")
        raise


def token_of(values: dict[str, Any]) -> str:
    return str(values["apiTokens"]["tokens"][0]["token"])


def start(service: Workload, root: Path) -> ServiceProcess:
    assert service.args == ["serve", service.name, "--config", "/etc/camsight/config.yaml"]
    (root / service.name).mkdir(parents=True, exist_ok=True)
    config = service.config
    # The health port, the same in every pod, is one free loopback port per process here.
    assert config.pop("http") == {"host": "0.0.0.0", "port": 8080}
    if service.name == "query":
        # The gRPC port is the Service's in the cluster; here a free loopback port.
        assert config["services"]["query"]["port"] == 50051
        config["services"]["query"] |= {"host": "127.0.0.1", "port": free_port()}
        if "console" in config["services"]["query"]:  # the Service's console port, here a free one
            assert config["services"]["query"]["console"] == {
                "enabled": True,
                "host": "0.0.0.0",
                "port": 8090,
            }
            config["services"]["query"]["console"] |= {"host": "127.0.0.1", "port": free_port()}
    return ServiceProcess(service.name, root / service.name, config, env=service.env).start()


async def console_shows(port: int, values: dict[str, Any]) -> None:
    """The rendered console: a login with the rendered API token, then the camera's events."""
    jar = aiohttp.CookieJar(unsafe=True)  # the standard jar ignores 127.0.0.1's cookies
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=jar) as browser:
        async with browser.post(
            "/login", data={"token": token_of(values)}, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
        async with browser.get("/events") as response:
            assert response.status == 200 and values["cameras"][0]["id"] in await response.text()


@pytest.mark.parametrize("values_file", sorted(CI_VALUES))
async def test_the_rendered_install_becomes_ready_and_serves_events(values_file: str, tmp_path: Path) -> None:
    values = CI_VALUES[values_file]
    probe = await asyncio.to_thread(render, CHART, values)
    replicas = probe.one("StatefulSet", "-behavior")["spec"]["replicas"]
    values = with_camera(values, camera_of_replica_zero(replicas))
    r = await asyncio.to_thread(render, CHART, values)
    nats_replicas = r.one("StatefulSet", "-nats")["spec"]["replicas"]
    assert nats_replicas == 3  # the default: a JetStream cluster
    with nats_cluster(r, tmp_path / "nats") as nodes:
        await all_ready(nodes)
        job = workload(r, "Job", "topology", nodes, tmp_path)
        declared = await asyncio.to_thread(topology, job, tmp_path)
        output = declared.stdout + declared.stderr
        assert declared.returncode == 0, output[-3000:]
        assert "topology declared: FRAMES" in declared.stdout
        assert not jetstream_refusals(output), output[-3000:]
        # What the servers reserve is what the chart sized the stores against.
        limits = {k: v for n in nodes for k, v in n.byte_limits().items()}
        assert {(storage, s) for s, (storage, size) in limits.items() if size > 0} == RESERVED
        processes = [
            start(workload(r, kind, name, nodes, tmp_path), tmp_path) for name, kind in SERVICES.items()
        ]
        try:
            await wait_for(lambda: all(p.ready() for p in processes), 120, "every service ready")
            query = next(p for p in processes if p.name == "query")
            port = query.settings["services"]["query"]["port"]
            client = Client(f"127.0.0.1:{port}", token=token_of(values), timeout=5)

            read: list[Any] = []

            def events_read() -> bool:
                """The events as listed by the API (kept: a second call could time out under load)."""
                with contextlib.suppress(ClientError):
                    reply = client.call(client.events().ListEvents, event_service_pb2.ListEventsRequest())
                    read[:] = reply.events
                return bool(read)

            try:
                await wait_for(events_read, 120, "an event of the values' camera read back")
                assert {e.camera_id for e in read} == {values["cameras"][0]["id"]}
                # The API refuses a caller without the token.
                anonymous = Client(f"127.0.0.1:{port}", timeout=5)
                with pytest.raises(ClientError, match="UNAUTHENTICATED"):
                    anonymous.call(anonymous.events().ListEvents, event_service_pb2.ListEventsRequest())
                anonymous.close()
                if "console" in query.settings["services"]["query"]:
                    await console_shows(query.settings["services"]["query"]["console"]["port"], values)
            finally:
                client.close()
        finally:
            codes = {p.name: await p.stop() for p in processes}
        assert set(codes.values()) == {0}, codes
        logs = "".join(n.log.read_text() for n in nodes)
        assert "Violation" not in logs, [line for line in logs.splitlines() if "Violation" in line][:5]
        assert not jetstream_refusals(logs)
        # The rendered preStop puts a node in lame duck mode; the others keep a quorum.
        signal = await asyncio.to_thread(subprocess.run, nodes[0].pre_stop, capture_output=True, timeout=30)
        assert signal.returncode == 0, signal.stderr
        await wait_for(lambda: "lame duck mode" in nodes[0].log.read_text(), 10, "node 0 in lame duck mode")
        await wait_for(lambda: all(n.ready() for n in nodes[1:]), 30, "the other nodes still ready")


async def test_the_topology_job_waits_while_the_cluster_cannot_place_streams(tmp_path: Path) -> None:
    """With two of three nodes down, JetStream cannot answer stream requests, as while a fresh
    cluster settles (CI met 10005 "no suitable peers for placement" after every node was
    ready): the Job retries, and declares the topology once the nodes are back."""
    r = await asyncio.to_thread(render, CHART, CI_VALUES["minimal-values"])
    with nats_cluster(r, tmp_path / "nats") as nodes:
        await all_ready(nodes)
        for node in nodes[1:]:
            node.stop()
        job = workload(r, "Job", "topology", nodes[:1], tmp_path)
        out = tmp_path / "topology.log"
        proc = start_topology(job, tmp_path, out)
        try:
            await wait_for(
                lambda: "JetStream not ready" in out.read_text() or proc.poll() is not None, 120, "a retry"
            )
            assert proc.poll() is None, out.read_text()[-3000:]
            for node in nodes[1:]:
                node.start()
            code = await asyncio.to_thread(proc.wait, 180)
        finally:
            if proc.poll() is None:
                proc.kill()
        log = out.read_text()
        assert code == 0, log[-3000:]
        assert "JetStream not ready" in log and "topology declared: FRAMES" in log


def openssl(root: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True, timeout=60)


def sign(root: Path) -> str:
    """A certificate for the key and request in ``root`` from its CA (a new serial each time:
    what a cert-manager renewal writes)."""
    openssl(root, "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-out", "tls.crt", "-extfile", "ext.cnf")  # fmt: skip
    return (root / "tls.crt").read_text()


def certificates(root: Path) -> dict[str, str]:
    """A CA and a certificate for 127.0.0.1 good for servers and clients, as a
    kubernetes.io/tls Secret's keys (tls.crt, tls.key, ca.crt): what cert-manager would issue."""
    root.mkdir(parents=True)
    openssl(root, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=camsight-test-ca", "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    openssl(
        root,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=cs-nats",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
    )
    (root / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    sign(root)
    return {key: (root / key).read_text() for key in ("tls.crt", "tls.key", "ca.crt")}


def served_certificate(port: int, ca_file: Path) -> bytes:
    """The DER certificate a TLS NATS client port presents: its INFO comes in plaintext,
    then the client starts the TLS handshake (verified against ``ca_file``)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        info = b""
        while not info.endswith(b"\r\n"):
            info += sock.recv(4096)
        with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


async def test_the_rendered_install_runs_with_tls_for_clients_and_routes(tmp_path: Path) -> None:
    """nats.tls.client and nats.tls.routes from one Secret: the rendered cluster routes over
    verified TLS, refuses plaintext clients, and the topology Job and services connect with
    tls:// trusting the CA the chart mounts."""
    import nats
    import nats.errors

    needs("openssl", shutil.which("openssl") is not None, "apt-get install openssl", "CAMSIGHT_REQUIRE_CHART")
    given = {"nats-tls": certificates(tmp_path / "certs")}
    tls = {"enabled": True, "secretName": "nats-tls"}
    reload = {"periodSeconds": 1}  # the check's period: short here
    values = CI_VALUES["minimal-values"] | {
        "nats": {"tls": {"client": tls, "routes": tls, "reloader": reload}}
    }
    r = await asyncio.to_thread(render, CHART, values)
    with nats_cluster(r, tmp_path / "nats", given) as nodes:
        assert {n.scheme for n in nodes} == {"tls"}
        await all_ready(nodes)
        with pytest.raises((nats.errors.Error, OSError, TimeoutError)):
            await nats.connect(
                nodes[0].url.replace("tls://", "nats://"),
                connect_timeout=2,
                max_reconnect_attempts=0,
                allow_reconnect=False,
            )
        job = workload(r, "Job", "topology", nodes, tmp_path, given)
        assert job.config["nats"]["tls"]["ca_file"].startswith(str(tmp_path))
        declared = await asyncio.to_thread(topology, job, tmp_path)
        assert declared.returncode == 0, (declared.stdout + declared.stderr)[-3000:]
        processes = [start(workload(r, kind, name, nodes, tmp_path, given), tmp_path) for kind, name in (
            ("Deployment", "decoder"),
            ("Deployment", "query"),
        )]  # fmt: skip
        try:
            await wait_for(lambda: all(p.ready() for p in processes), 120, "decoder and query ready over TLS")
        finally:
            codes = {p.name: await p.stop() for p in processes}
        assert set(codes.values()) == {0}, codes
        # Routes (rid) all verified; the one handshake error is the plaintext client (cid).
        log = "".join(n.log.read_text() for n in nodes).splitlines()
        assert [line for line in log if "rid:" in line and "TLS" in line and "error" in line.lower()] == []
        assert sum("Route connection created" in line for line in log) >= 2
        # A renewal reaches the mounted Secret: the rendered tls-reloader sidecar has the
        # server reload it, and new connections get the new certificate, no restart.
        node = nodes[0]
        ca = tmp_path / "certs" / "ca.crt"
        served = await asyncio.to_thread(served_certificate, node.client_port, ca)
        assert served == ssl.PEM_cert_to_DER_cert(given["nats-tls"]["tls.crt"])
        out = tmp_path / "reloader.log"
        with out.open("wb") as sink:
            reloader = await asyncio.create_subprocess_exec(*node.reloader, stdout=sink, stderr=sink)
        try:
            await wait_for(lambda: "tls-reloader: checking" in out.read_text(), 10, "the reloader running")
            renewed = sign(tmp_path / "certs")
            for side in ("client", "routes"):
                (node.root / "etc" / "nats-tls" / side / "tls.crt").write_text(renewed)
            await wait_for(lambda: "Reloaded server configuration" in node.log.read_text(), 15, "a reload")
            assert "certificates changed" in out.read_text()
            served = await asyncio.to_thread(served_certificate, node.client_port, ca)
            assert served == ssl.PEM_cert_to_DER_cert(renewed)
            assert node.proc is not None and node.proc.poll() is None
        finally:
            reloader.kill()
            await reloader.wait()


async def test_per_service_users_from_an_existing_secret(tmp_path: Path) -> None:
    """natsAuth.usersExistingSecret: no password generated (stable `helm template` and Argo CD
    renders); the NATS pods read each role's password from that Secret through their
    environment, the workloads their own key, and the install runs as with generated ones."""
    import json

    roles = json.loads((CHART / "files" / "nats-permissions.json").read_text())
    given = {"my-nats-users": {role: f"Pw{role.replace('-', '')}{i}x7Q" for i, role in enumerate(roles)}}
    values = CI_VALUES["minimal-values"] | {"natsAuth": {"usersExistingSecret": "my-nats-users"}}
    r = await asyncio.to_thread(render, CHART, values)
    again = await asyncio.to_thread(render, CHART, values)
    assert not [s for s in r.of_kind("Secret") if s["metadata"]["name"] == "cs-camsight-nats-users"]
    conf = next(s for s in r.of_kind("Secret") if s["metadata"]["name"] == "cs-camsight-nats-conf")
    assert conf == next(
        s for s in again.of_kind("Secret") if s["metadata"]["name"] == "cs-camsight-nats-conf"
    )
    assert '"password":$CAMSIGHT_NATS_PASSWORD_EVENTS_READER' in conf["stringData"]["auth.conf"]
    with nats_cluster(r, tmp_path / "nats", given) as nodes:
        await all_ready(nodes)
        job = workload(r, "Job", "topology", nodes, tmp_path, given)
        assert job.env["CAMSIGHT_NATS__PASSWORD"] == given["my-nats-users"]["topology"]
        declared = await asyncio.to_thread(topology, job, tmp_path)
        assert declared.returncode == 0, (declared.stdout + declared.stderr)[-3000:]
        decoder = start(workload(r, "Deployment", "decoder", nodes, tmp_path, given), tmp_path)
        try:
            await wait_for(decoder.ready, 60, "the decoder ready as camsight-decoder")
        finally:
            assert await decoder.stop() == 0
        assert "Violation" not in "".join(n.log.read_text() for n in nodes)
