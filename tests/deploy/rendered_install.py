"""Run what the chart renders on this machine: the nearest thing to an install (issue 25).

The bundled NATS's nats.conf and auth.conf go to a real nats-server as rendered, one
process per StatefulSet replica; the topology Job and the services run as processes
with the rendered config file and the environment of their pod spec (Secret values
resolved from the rendered Secrets). Only what a cluster provides is rewritten:
hostnames and ports become loopback ports, and the mount paths of volumes become
temporary folders in the same relative layout (so nats.conf's ``include`` resolves as
it does in the pod). :func:`rewrite` fails when a rewritten string is not in the text,
so a rendered value can never be replaced silently by the test's own.
"""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from camsight.natsserver import find_nats_server
from helm_render import Rendered
from reliability.processes import free_port


def rewrite(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each key replaced by its value; every key must occur."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is not in the rendered text:\n{text}"
        text = text.replace(old, new)
    return text


def secret_values(r: Rendered) -> dict[tuple[str, str], str]:
    """(Secret name, key) -> value of every rendered Secret."""
    return {
        (s["metadata"]["name"], key): value
        for s in r.of_kind("Secret")
        for key, value in s.get("stringData", {}).items()
    }


def pod_env(
    r: Rendered, container: dict[str, Any], pod_name: str, given: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """The container's environment as the kubelet would set it (fieldRefs, rendered Secrets,
    and the Secrets the values name, ``given``)."""
    secrets = secret_values(r) | {(s, k): v for s, keys in (given or {}).items() for k, v in keys.items()}
    out: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            out[var["name"]] = var["value"]
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            out[var["name"]] = {
                "metadata.name": pod_name,
                "metadata.labels['apps.kubernetes.io/pod-index']": pod_name.rsplit("-", 1)[-1],
            }[path]
        else:
            ref = source["secretKeyRef"]
            if (ref["name"], ref["key"]) in secrets:
                out[var["name"]] = secrets[(ref["name"], ref["key"])]
            else:
                assert ref.get("optional"), f"{var['name']}: Secret {ref['name']}/{ref['key']} not rendered"
    return out


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class NatsNode:
    """One replica of the rendered NATS StatefulSet as a nats-server process."""

    pod: str
    root: Path
    conf: Path
    env: dict[str, str]
    client_port: int
    monitor_port: int
    readiness_path: str
    proc: subprocess.Popen[bytes] | None = None
    scheme: str = "nats"
    pre_stop: list[str] = field(default_factory=list)
    """The rendered preStop command, the pid file's path under ``root``."""
    reloader: list[str] = field(default_factory=list)
    """The rendered tls-reloader sidecar's command (with TLS), its paths under ``root``."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def log(self) -> Path:
        return self.root / "nats.log"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(find_nats_server()), "--config", str(self.conf)],
                stdout=out,
                stderr=out,
                env={"PATH": os.environ.get("PATH", "")} | self.env,
            )

    def ready(self) -> bool:
        """The rendered readiness probe (JetStream enabled and current), on the monitor port."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"nats-server {self.pod} exited: {self.log.read_text()[-3000:]}")
        return http_ok(f"http://127.0.0.1:{self.monitor_port}{self.readiness_path}")

    def probe_answer(self) -> str:
        """What the readiness probe's URL answers (for a failure's message)."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.monitor_port}{self.readiness_path}", timeout=1
            ) as resp:
                return f"{resp.status} {resp.read(300)!r}"
        except urllib.error.HTTPError as exc:
            return f"{exc.code} {exc.read(300)!r}"
        except (urllib.error.URLError, OSError) as exc:
            return str(exc)

    def byte_limits(self) -> dict[str, tuple[str, int]]:
        """Stream -> (storage, max_bytes) of every stream this node holds a copy of, as the
        server has it (the monitoring endpoint's /jsz)."""
        url = f"http://127.0.0.1:{self.monitor_port}/jsz?accounts=true&streams=true&config=true"
        with urllib.request.urlopen(url, timeout=5) as resp:
            jsz = json.load(resp)
        return {
            stream["name"]: (stream["config"]["storage"], int(stream["config"].get("max_bytes", -1)))
            for account in jsz.get("account_details", [])
            for stream in account.get("stream_detail", [])
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def mount_path(container: dict[str, Any], volume: str) -> str:
    (path,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
    return str(path)


def write_secret_volume(
    r: Rendered, volume: dict[str, Any], folder: Path, given: dict[str, dict[str, str]]
) -> None:
    """A Secret volume's files: a rendered Secret's keys, or a Secret the values name and
    the operator provides (``given``: name -> key -> content, as cert-manager would)."""
    secret = volume["secret"]["secretName"]
    files = {k: v for (name, k), v in secret_values(r).items() if name == secret} or given[secret]
    items = volume["secret"].get("items")
    for key, content in files.items():
        paths = [i["path"] for i in items if i["key"] == key] if items else [key]
        for path in paths:
            (folder / path).write_text(content)


def nats_nodes(r: Rendered, root: Path, given: dict[str, dict[str, str]] | None = None) -> list[NatsNode]:
    """The rendered NATS StatefulSet as nats-server processes (not started)."""
    sts = r.one("StatefulSet", "-nats")
    name = sts["metadata"]["name"]
    headless = sts["spec"]["serviceName"]
    namespace = "video"
    replicas = int(sts["spec"]["replicas"])
    pod = sts["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    container = containers["nats"]
    command = container["command"]
    conf_path = command[command.index("--config") + 1]
    config_dir = mount_path(container, "config")
    auth_dir = mount_path(container, "auth")
    data_dir = mount_path(container, "data")
    run_dir = mount_path(container, "run")
    assert posixpath.dirname(conf_path) == config_dir
    config_map = next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["name"]
    conf_text = r.one("ConfigMap", config_map)["data"][posixpath.basename(conf_path)]
    secret_volumes = {v["name"]: v for v in pod["volumes"] if "secret" in v}
    secret_mounts = {name: mount_path(container, name) for name in secret_volumes}
    routes = [free_port() for _ in range(replicas)]
    domain = "svc.cluster.local"
    nodes = []
    for i in range(replicas):
        node_root = root / f"{name}-{i}"
        # The pod's mounts, as folders of node_root with the same relative layout.
        mounts = (config_dir, data_dir, run_dir, *secret_mounts.values())
        local = {p: node_root / p.strip("/") for p in mounts}
        for path in local.values():
            path.mkdir(parents=True)
        for volume_name, volume in secret_volumes.items():
            write_secret_volume(r, volume, local[secret_mounts[volume_name]], given or {})
        client, monitor = free_port(), free_port()
        replacements = {
            '"0.0.0.0:4222"': f'"127.0.0.1:{client}"',
            '"0.0.0.0:8222"': f'"127.0.0.1:{monitor}"',
            f'"{data_dir}"': f'"{local[data_dir]}"',
            f'"{run_dir}/': f'"{local[run_dir]}/',
        }
        for volume_name, mount in secret_mounts.items():
            if volume_name != "auth":  # included relatively: the layout keeps its path
                replacements[f'"{mount}/'] = f'"{local[mount]}/'
        assert auth_dir == secret_mounts["auth"]
        if replicas > 1:
            replacements['"0.0.0.0:6222"'] = f'"127.0.0.1:{routes[i]}"'
            for j in range(replicas):
                host = f"{name}-{j}.{headless}.{namespace}.{domain}:6222"
                replacements[host] = f"127.0.0.1:{routes[j]}"
        conf = local[config_dir] / posixpath.basename(conf_path)
        conf.write_text(rewrite(conf_text, replacements))
        probe = container["readinessProbe"]["httpGet"]
        assert probe["port"] == "monitor"
        env = pod_env(r, container, f"{name}-{i}", given)
        scheme = "tls" if "tls {" in conf_text.split("cluster {")[0] else "nats"
        pre_stop = [
            str(find_nats_server()) if a == "nats-server" else a.replace(f"{run_dir}/", f"{local[run_dir]}/")
            for a in container["lifecycle"]["preStop"]["exec"]["command"]
        ]
        reloader = []
        if "tls-reloader" in containers:
            sidecar = containers["tls-reloader"]
            assert {m["mountPath"] for m in sidecar["volumeMounts"]} <= set(local)
            *shell, script = sidecar["command"]
            (tls_dir,) = {posixpath.dirname(mount_path(sidecar, v)) for v in secret_volumes if v != "auth"}
            script = rewrite(
                script,
                {
                    f"{tls_dir}/": f"{node_root / tls_dir.strip('/')}/",
                    f"{run_dir}/": f"{local[run_dir]}/",
                    "nats-server --signal": f"{find_nats_server()} --signal",
                },
            )
            reloader = [*shell, script]
        nodes.append(
            NatsNode(
                f"{name}-{i}",
                node_root,
                conf,
                env,
                client,
                monitor,
                probe["path"],
                None,
                scheme,
                pre_stop,
                reloader,
            )
        )
    return nodes


@dataclass
class Workload:
    """A rendered camsight pod (a service or the topology Job) as a local process's inputs."""

    name: str
    args: list[str]
    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)


def workload(
    r: Rendered,
    kind: str,
    component: str,
    nodes: list[NatsNode],
    root: Path,
    given: dict[str, dict[str, str]] | None = None,
) -> Workload:
    """The pod of ``component``: its args, its rendered config file with NATS servers and paths
    on loopback and under ``root`` (Secret volumes written there), and its environment."""
    (doc,) = [
        d
        for d in r.of_kind(kind)
        if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    config = yaml.safe_load(r.one("ConfigMap", "cs-camsight-config")["data"]["config.yaml"])
    servers = config["nats"]["servers"]
    assert servers == [f"{nodes[0].scheme}://cs-nats.video.svc:4222"], servers  # the client Service
    config["nats"]["servers"] = [n.url for n in nodes]
    # Secret volumes under /etc/camsight (the NATS CA, gRPC TLS) as folders of root.
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    text = yaml.safe_dump(config)
    for name, volume in volumes.items():
        folder = root / component / name
        folder.mkdir(parents=True, exist_ok=True)
        write_secret_volume(r, volume, folder, given or {})
        text = rewrite(text, {mount_path(container, name) + "/": f"{folder}/"})
    config = yaml.safe_load(text)
    config["data_dir"] = str(root / component / "data")
    config["instance"] = f"{component}-0"
    env = pod_env(r, container, f"cs-camsight-{component}-0", given)
    return Workload(component, list(container["args"]), config, env)


def topology_args(job: Workload, root: Path) -> list[str]:
    """The topology Job's container command, its config file written under ``root``."""
    config = root / "topology.yaml"
    config.write_text(yaml.safe_dump(job.config))
    args = [str(config) if a == "/etc/camsight/config.yaml" else a for a in job.args]
    assert args[0] == "topology" and str(config) in args
    return [sys.executable, "-m", "camsight", *args]


def start_topology(job: Workload, root: Path, out: Path) -> subprocess.Popen[bytes]:
    """The topology Job's container started, its output going to ``out``."""
    with out.open("wb") as sink:
        return subprocess.Popen(
            topology_args(job, root), stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **job.env}
        )


def topology(job: Workload, root: Path) -> subprocess.CompletedProcess[str]:
    """The topology Job's container, run to its end."""
    return subprocess.run(
        topology_args(job, root),
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **job.env},
    )
