"""The Helm chart, rendered by the real Helm engine and validated against Kubernetes' schemas.

Rendering goes through helm-sdkpy's Install against a local API stand-in
(helm_render.py): the same code path as ``helm install``. Each rendered
document is validated with kubernetes-validate for Kubernetes 1.33 in strict
mode (unknown fields are errors). KEDA's ScaledObject and the Prometheus
operator's ServiceMonitor have no schema there and are checked by the
assertions below instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from camsight.config import ConfigError, load_settings, service_section
from camsight.controller.config import ControllerConfig
from helm_render import Rendered, render
from helpers import needs_helm

CHART = Path(__file__).resolve().parents[2] / "helm" / "camsight"
KUBE_VERSION = "1.33.0"
NO_SCHEMA = {"ScaledObject", "ServiceMonitor"}
SERVICES = ("decoder", "detector", "face", "behavior", "query", "controller")
GPU_KEDA = yaml.safe_load((CHART / "ci" / "gpu-keda-values.yaml").read_text())
# The defaults plus the one required value (an API token): ci/minimal-values.yaml.
MINIMAL = yaml.safe_load((CHART / "ci" / "minimal-values.yaml").read_text())
# The services' own section models: the chart's sections must validate with them.
SECTION_MODELS = {
    "decoder": ("camsight.decoder.settings", "DecoderSettings"),
    "behavior": ("camsight.behavior.settings", "BehaviorSettings"),
    "query": ("camsight.query.settings", "QuerySettings"),
}
SECRET_VALUES = ("change-me-nats-password", "cam-secret-pw", "dashboard-token-0123456789")

needs_helm()  # the Helm v4 engine; on 3.11 see docs/deploy.md
helm_sdkpy = importlib.import_module("helm_sdkpy")
InstallError = helm_sdkpy.exceptions.InstallError


@pytest.fixture(scope="module")
def default() -> Rendered:
    """The chart's defaults plus the one value they require (ci/minimal-values.yaml)."""
    return render(CHART, MINIMAL)


@pytest.fixture(scope="module")
def gpu() -> Rendered:
    return render(CHART, GPU_KEDA)


@pytest.fixture(params=["default", "gpu"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return request.getfixturevalue(request.param)


def pods(r: Rendered) -> dict[str, dict[str, Any]]:
    """component -> pod spec of every camsight workload (not the bundled NATS)."""
    out = {}
    for doc in r.of_kind("Deployment") + r.of_kind("StatefulSet"):
        if doc["metadata"]["labels"]["app.kubernetes.io/name"] != "camsight":
            continue
        out[doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]] = doc["spec"][
            "template"
        ]
    return out


def test_every_document_is_valid_kubernetes(rendered: Rendered) -> None:
    skipped = set()
    for doc in rendered.manifest:
        if doc["kind"] in NO_SCHEMA:
            skipped.add(doc["kind"])
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    assert skipped <= NO_SCHEMA


def test_what_helm_sent_is_what_it_rendered(rendered: Rendered) -> None:
    created = {(d["kind"], d["metadata"]["name"]) for d in rendered.stand_in.created}
    assert {(d["kind"], d["metadata"]["name"]) for d in rendered.manifest} <= created
    release = [q for q in rendered.stand_in.requests if q.method == "POST" and q.path.endswith("/secrets")]
    assert release and release[0].content_type == "application/vnd.kubernetes.protobuf"


def test_one_workload_per_service_and_behavior_is_a_statefulset(rendered: Rendered) -> None:
    assert set(pods(rendered)) == set(SERVICES)
    sts = rendered.one("StatefulSet", "-behavior")
    assert sts["spec"]["replicas"] == 3 and sts["spec"]["podManagementPolicy"] == "Parallel"
    env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CAMSIGHT_SERVICES__BEHAVIOR__REPLICA_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    for name, pod in pods(rendered).items():
        container = pod["spec"]["containers"][0]
        assert container["args"][:2] == ["serve", name]
        assert container["resources"]["requests"] and container["resources"]["limits"]


def test_restricted_security_context(rendered: Rendered) -> None:
    for name, pod in pods(rendered).items():
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is (name == "controller")
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
            assert sc["seccompProfile"]["type"] == "RuntimeDefault"
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts["/tmp"] == "tmp"
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"]


def test_probes(rendered: Rendered) -> None:
    """Startup on /healthz (the process answers), readiness on /readyz (NATS and the
    topology): a late NATS or topology leaves pods unready, never restarted (issue 25)."""
    for name, pod in pods(rendered).items():
        c = pod["spec"]["containers"][0]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        budget = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
        # Analyzers get ten minutes to load and warm up models before liveness counts.
        assert budget >= (600 if name in ("detector", "face") else 120), name
        assert {p["name"]: p["containerPort"] for p in c["ports"]}["http"] == 8080


def test_replicas_prefer_distinct_nodes_and_zones(rendered: Rendered) -> None:
    for name, pod in pods(rendered).items():
        spec = pod["spec"]
        (term,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        assert term["podAffinityTerm"]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == name
        (spread,) = spec["topologySpreadConstraints"]
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway"  # soft: never blocks scheduling
    own = render(CHART, MINIMAL | {"services": {"decoder": {"affinity": {"nodeAffinity": {}}}}})
    assert pods(own)["decoder"]["spec"]["affinity"] == {"nodeAffinity": {}}


def test_gpu_rollouts_need_no_spare_gpu(default: Rendered, gpu: Rendered) -> None:
    for name in ("detector", "face"):
        strategy = gpu.one("Deployment", f"-{name}")["spec"]["strategy"]
        assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
        assert default.one("Deployment", f"-{name}")["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1
    mine = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    r = render(CHART, GPU_KEDA | {"services": {"detector": {"gpu": {"enabled": True, "strategy": mine}}}})
    assert r.one("Deployment", "-detector")["spec"]["strategy"] == mine


def test_default_has_no_gpu_and_gpu_values_schedule_on_gpu_nodes(default: Rendered, gpu: Rendered) -> None:
    for pod in pods(default).values():
        assert "nvidia.com/gpu" not in json.dumps(pod)
        assert "runtimeClassName" not in pod["spec"]
    gpu_pods = pods(gpu)
    for name in ("detector", "face"):
        spec = gpu_pods[name]["spec"]
        c = spec["containers"][0]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert c["image"].endswith(":0.1.0-cuda")
        assert spec["runtimeClassName"] == "nvidia"
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert mounts["models"]["readOnly"] is True and mounts["models"]["mountPath"] == "/models"
    for name in ("decoder", "behavior", "query", "controller"):
        assert "nvidia.com/gpu" not in json.dumps(gpu_pods[name])
        assert gpu_pods[name]["spec"]["containers"][0]["image"].endswith(":0.1.0-core")


def test_a_gpu_decoder_runs_nvdec_and_nvjpeg_on_the_cuda_image_on_a_gpu_node() -> None:
    """services.decoder.gpu (decisions 0077, 0078): the CUDA image, a GPU, GPU nodes, the NVIDIA
    runtime's video capability for NVDEC; nvJPEG without a GPU is refused at install."""
    on_gpu = {"decoder": {"gpu": {"enabled": True}, "config": {"encode": "nvjpeg"}}}
    r = render(CHART, MINIMAL | {"services": on_gpu})
    decoders = pods(r)
    spec = decoders["decoder"]["spec"]
    c = spec["containers"][0]
    assert c["image"] == "ghcr.io/camsight/camsight:0.1.0-cuda"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility,video"
    strategy = r.one("Deployment", "-decoder")["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    config = yaml.safe_load(r.one("ConfigMap", "-config")["data"]["config.yaml"])
    assert config["services"]["decoder"]["encode"] == "nvjpeg"
    for doc in r.of_kind("Deployment"):
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    # The GPU is the decoder's alone: the analyzers keep their CPU images.
    assert "nvidia.com/gpu" not in json.dumps(decoders["detector"])
    assert decoders["detector"]["spec"]["containers"][0]["image"].endswith(":0.1.0")
    with pytest.raises(InstallError, match=r"encode: nvjpeg needs services\.decoder\.gpu\.enabled"):
        render(CHART, MINIMAL | {"services": {"decoder": {"config": {"encode": "nvjpeg"}}}})


def test_each_service_runs_its_roles_image(default: Rendered) -> None:
    """One image per Dockerfile target (docs/deploy.md, section 10): a service pulls only
    what its role imports."""
    images = {name: pod["spec"]["containers"][0]["image"] for name, pod in pods(default).items()}
    repo = "ghcr.io/camsight/camsight"
    assert images == {
        "decoder": f"{repo}:0.1.0-core",
        "detector": f"{repo}:0.1.0",
        "face": f"{repo}:0.1.0-faces",
        "behavior": f"{repo}:0.1.0-core",
        "query": f"{repo}:0.1.0-core",
        "controller": f"{repo}:0.1.0-core",
    }
    (job,) = default.of_kind("Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"{repo}:0.1.0-core"
    moved = render(
        CHART, MINIMAL | {"services": {"detector": {"imageTarget": "core"}}, "image": {"tag": "9"}}
    )
    assert pods(moved)["detector"]["spec"]["containers"][0]["image"] == f"{repo}:9-core"
    with pytest.raises(Exception, match="imageTarget"):
        render(CHART, MINIMAL | {"services": {"detector": {"imageTarget": "gpu"}}})


def test_keda_scales_analyzers_on_consumer_lag(gpu: Rendered) -> None:
    for name in ("detector", "face"):
        so = gpu.one("ScaledObject", f"-{name}")
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        assert so["spec"]["scaleTargetRef"]["name"] == gpu.one("Deployment", f"-{name}")["metadata"]["name"]
        (trigger,) = so["spec"]["triggers"]
        assert trigger["type"] == "nats-jetstream"
        assert trigger["metadata"]["stream"] == "FRAMES" and trigger["metadata"]["consumer"] == name
        assert trigger["metadata"]["natsServerMonitoringEndpoint"] == "cs-nats-headless.video.svc:8222"
        assert "replicas" not in gpu.one("Deployment", f"-{name}")["spec"]  # KEDA owns the count
    assert so["spec"]["maxReplicaCount"] == 4
    assert gpu.of_kind("HorizontalPodAutoscaler") == []
    monitor = gpu.one("ServiceMonitor", "cs-camsight")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_hpa_without_keda() -> None:
    values = {"services": {"detector": {"autoscaling": {"enabled": True, "maxReplicas": 5}}}}
    r = render(CHART, MINIMAL | values)
    hpa = r.one("HorizontalPodAutoscaler", "-detector")
    assert hpa["spec"]["maxReplicas"] == 5 and r.of_kind("ScaledObject") == []
    kubernetes_validate.validate(hpa, KUBE_VERSION, strict=True)


def test_pod_disruption_budgets(rendered: Rendered) -> None:
    """A PDB only where it can hold a replica through a drain: more than one runs (the
    detector and face run one, or scale from one); the 3-node NATS keeps a quorum."""
    pdbs = {
        p["metadata"]["name"].removeprefix("cs-camsight-"): p for p in rendered.of_kind("PodDisruptionBudget")
    }
    assert set(pdbs) == {"decoder", "behavior", "query", "cs-nats"}
    assert pdbs.pop("cs-nats")["spec"]["maxUnavailable"] == 1
    for name, pdb in pdbs.items():
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == name
    scaled = render(
        CHART, MINIMAL | {"services": {"face": {"autoscaling": {"enabled": True, "minReplicas": 2}}}}
    )
    assert "cs-camsight-face" in {p["metadata"]["name"] for p in scaled.of_kind("PodDisruptionBudget")}
    assert pdbs["query"]["spec"]["minAvailable"] == 1


def test_network_policies(rendered: Rendered) -> None:
    policies = {
        p["metadata"]["name"].removeprefix("cs-camsight-"): p["spec"]
        for p in rendered.of_kind("NetworkPolicy")
    }
    assert set(SERVICES) <= set(policies)
    for name in SERVICES:
        spec = policies[name]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        egress_ports = [p.get("port") for rule in spec["egress"] for p in rule.get("ports", [])]
        assert 53 in egress_ports and 4222 in egress_ports
        ingress_ports = {p["port"] for rule in spec["ingress"] for p in rule["ports"]}
        assert ingress_ports == ({"http", "grpc"} if name == "query" else {"http"}) | (
            {"console"}
            if name == "query" and rendered.of_kind("Ingress")
            else set()  # the GPU values' console
        )
    # Only the decoder reaches camera sources; only the controller the API server.
    open_egress = {n for n in SERVICES if any("ipBlock" in json.dumps(r) for r in policies[n]["egress"])}
    assert open_egress == {"decoder", "controller"}
    # The decoder reaches cameras on their ports only, never cloud metadata.
    (sources,) = [r for r in policies["decoder"]["egress"] if "ipBlock" in json.dumps(r)]
    assert sources["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}]
    assert {p["port"] for p in sources["ports"]} == {554, 8554, 80, 443}
    # The query API admits the release's pods and labelled clients, not the whole namespace.
    (grpc_rule,) = [r for r in policies["query"]["ingress"] if r["ports"][0]["port"] == "grpc"]
    assert grpc_rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "cs"}}},
        {"podSelector": {"matchLabels": {"camsight.io/query-client": "true"}}},
    ]
    nats = policies["nats"]
    monitoring = [r for r in nats["ingress"] if {p["port"] for p in r["ports"]} == {8222}]
    assert len(monitoring) == 1 and "namespaceSelector" in monitoring[0]["from"][0]
    assert all("namespaceSelector" not in json.dumps(r) for r in nats["ingress"] if r not in monitoring)


def test_secrets_never_in_configmaps(gpu: Rendered) -> None:
    for cm in gpu.of_kind("ConfigMap"):
        text = json.dumps(cm)
        for secret in SECRET_VALUES:
            assert secret not in text
        assert "password" not in text and "token" not in text.lower()
    secrets = "".join(json.dumps(s) for s in gpu.of_kind("Secret"))
    for secret in SECRET_VALUES:
        assert secret in secrets
    # Each secret reaches only the pods that need it.
    envs = {n: {e["name"] for e in p["spec"]["containers"][0]["env"]} for n, p in pods(gpu).items()}
    assert all("CAMSIGHT_NATS__PASSWORD" in e for e in envs.values())
    assert {n for n, e in envs.items() if "CAMSIGHT_CAMERAS" in e} == {"decoder"}
    assert {n for n, e in envs.items() if "CAMSIGHT_SERVICES__QUERY" in e} == {"query"}


def test_config_and_secrets_load_as_camsight_settings(
    gpu: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the pods get (config file + Secret env) is a valid camsight configuration."""
    config = tmp_path / "config.yaml"
    config.write_text(gpu.one("ConfigMap", "-config")["data"]["config.yaml"])
    secret_env: dict[tuple[str, str], str] = {}
    for s in gpu.of_kind("Secret"):
        for key, value in s.get("stringData", {}).items():
            secret_env[(s["metadata"]["name"], key)] = value
    for name, pod in pods(gpu).items():
        with monkeypatch.context() as m:
            for env in pod["spec"]["containers"][0]["env"]:
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and (ref["name"], ref["key"]) in secret_env:
                    m.setenv(env["name"], secret_env[(ref["name"], ref["key"])])
            if name == "behavior":
                m.setenv("CAMSIGHT_SERVICES__BEHAVIOR__REPLICA_INDEX", "2")
            settings = load_settings(config)
        assert settings.nats.servers == ["nats://cs-nats.video.svc:4222"]
        assert settings.nats.password is not None and settings.http.port == 8080
        if name == "decoder":
            assert [c.id for c in settings.cameras] == ["lobby"]
        if name == "query":
            assert settings.services["query"]["tokens"][0]["name"] == "dashboard"
        if name == "behavior":
            assert settings.services["behavior"] == {"replicas": 3, "replica_index": "2"}
        if name == "controller":
            assert service_section(settings, "controller", ControllerConfig).namespace == "video"
        if name in SECTION_MODELS:
            module, model = SECTION_MODELS[name]
            service_section(settings, name, getattr(pytest.importorskip(module), model))


def test_controller_rbac_is_minimal(gpu: Rendered) -> None:
    role = gpu.one("Role", "-controller")
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r for r in role["rules"]}
    assert set(rules[(("camsight.io",), ("cameras",))]["verbs"]) == {"get", "list", "watch"}
    assert set(rules[(("camsight.io",), ("cameras/status",))]["verbs"]) == {"get", "patch"}
    secrets = rules[(("",), ("secrets",))]
    assert secrets["verbs"] == ["get"] and secrets["resourceNames"] == ["yard-camera"]
    assert gpu.of_kind("ClusterRole") == []
    binding = gpu.one("RoleBinding", "-controller")
    assert binding["subjects"][0]["name"] == pods(gpu)["controller"]["spec"]["serviceAccountName"]


def test_camera_crd(default: Rendered) -> None:
    crd = default.one("CustomResourceDefinition", "cameras.camsight.io")
    assert crd["spec"]["group"] == "camsight.io" and crd["spec"]["names"]["kind"] == "Camera"
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    from camsight.cameras import CameraConfig

    # Same keys as the camera config, plus source_from (a Secret reference).
    assert set(spec) == set(CameraConfig.model_fields) | {"source_from"}
    rules = spec["rules"]["items"]["properties"]
    from camsight.cameras import Rule, RuleType

    assert set(rules) == set(Rule.model_fields)
    # A built-in or a plugin's rule type (the behavior service checks which): an id.
    assert rules["type"]["pattern"] == spec["id"]["pattern"]
    assert all(t.value in rules["type"]["description"] for t in RuleType)
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"state", "fps", "lastFrameTime", "message"} <= set(status)


def test_external_nats() -> None:
    external = {"nats": {"enabled": False}, "externalNats": {"servers": ["nats://nats.infra.svc:4222"]}}
    r = render(CHART, MINIMAL | external)
    config = yaml.safe_load(r.one("ConfigMap", "-config")["data"]["config.yaml"])
    assert config["nats"]["servers"] == ["nats://nats.infra.svc:4222"]
    assert "cs-camsight-nats" not in {p["metadata"]["name"] for p in r.of_kind("NetworkPolicy")}
    # No bundled NATS to configure: no generated users; the topology Job still runs.
    assert not [s for s in r.of_kind("Secret") if "nats" in s["metadata"]["name"]]
    assert nats_env(job_pod(r)) == {}


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"nats": {"enabled": False}}, r"externalNats\.servers is required"),
        # values.schema.json: no secret in the config ConfigMap, no negative replicas, no typos.
        ({"config": {"nats": {"password": "in-a-configmap"}}}, "at '/config': 'not' failed"),
        ({"config": {"cameras": []}}, "at '/config': 'not' failed"),
        ({"services": {"detector": {"replicas": -1}}}, "at '/services/detector/replicas'"),
        ({"services": {"detecter": {}}}, "'detecter' not allowed"),
        ({"models": {"accessModes": ["ReadOnly"]}}, "at '/models/accessModes/0'"),
        ({"models": {"accessModes": []}}, "at '/models/accessModes'"),
        # No secret-looking key in a service's config section, however deep (it lands in
        # the ConfigMap): tokens go to apiTokens, credentials to Secrets.
        ({"services": {"query": {"config": {"tokens": []}}}}, "invalid propertyName 'tokens'"),
        (
            {"services": {"decoder": {"config": {"source": {"api_key": "k"}}}}},
            "invalid propertyName 'api_key'",
        ),
        (
            {"services": {"face": {"config": {"gallery": [{"Password": "x"}]}}}},
            "invalid propertyName 'Password'",
        ),
    ],
)
def test_bad_values_fail_the_install(values: dict[str, Any], error: str) -> None:
    with pytest.raises(InstallError, match=error):
        render(CHART, MINIMAL | values)


def test_models_volume_access_mode_is_configurable() -> None:
    """ReadOnlyMany by default; ReadWriteOnce where the storage class has nothing else."""
    claim = render(CHART, MINIMAL | {"models": {"enabled": True}}).one("PersistentVolumeClaim", "-models")
    assert claim["spec"]["accessModes"] == ["ReadOnlyMany"]
    values = MINIMAL | {"models": {"enabled": True, "accessModes": ["ReadWriteOnce"]}}
    claim = render(CHART, values).one("PersistentVolumeClaim", "-models")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    kubernetes_validate.validate(claim, KUBE_VERSION, strict=True)


def test_the_query_api_never_runs_open_by_accident(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No tokens: a render error naming the value, unless allowAnonymous says so on purpose."""
    with pytest.raises(InstallError, match=r"apiTokens\.tokens \(or apiTokens\.existingSecret\) is required"):
        render(CHART, {})
    open_api = render(CHART, {"apiTokens": {"allowAnonymous": True}})
    env = {e["name"] for e in pods(open_api)["query"]["spec"]["containers"][0]["env"]}
    assert "CAMSIGHT_SERVICES__QUERY" not in env
    kept = render(CHART, {"apiTokens": {"existingSecret": "query-tokens"}})
    (ref,) = [
        e["valueFrom"]["secretKeyRef"]
        for e in pods(kept)["query"]["spec"]["containers"][0]["env"]
        if e["name"] == "CAMSIGHT_SERVICES__QUERY"
    ]
    assert ref == {"name": "query-tokens", "key": "CAMSIGHT_SERVICES__QUERY"}
    # The Secret is the operator's: one holding no tokens stops query with one line
    # (services.query.allow_anonymous: false in the ConfigMap) instead of opening the API.
    from camsight.query.settings import QuerySettings

    for r, tokens_env, anonymous in ((kept, '{"tokens": []}', False), (open_api, None, True)):
        config = tmp_path / "config.yaml"
        config.write_text(r.one("ConfigMap", "-config")["data"]["config.yaml"])
        with monkeypatch.context() as m:
            if tokens_env is not None:
                m.setenv("CAMSIGHT_SERVICES__QUERY", tokens_env)
            settings = load_settings(config)
        assert settings.services["query"]["allow_anonymous"] is anonymous
        if anonymous:
            assert service_section(settings, "query", QuerySettings).tokens == []
        else:
            with pytest.raises(
                ConfigError, match=r"^invalid configuration: services\.query: .*allow_anonymous"
            ):
                service_section(settings, "query", QuerySettings)


def test_query_grpc_tls_from_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """services.query.tls.secretName: the certificate at /etc/camsight/tls (docs/api.md), named
    in the query section, which validates with the query service's own settings."""
    from camsight.query.settings import QuerySettings

    r = render(CHART, MINIMAL | {"services": {"query": {"tls": {"secretName": "query-grpc"}}}})
    pod = pods(r)["query"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "grpc-tls"]
    assert mount == {"name": "grpc-tls", "mountPath": "/etc/camsight/tls", "readOnly": True}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "grpc-tls"]
    assert volume["secret"]["secretName"] == "query-grpc"
    config = yaml.safe_load(r.one("ConfigMap", "cs-camsight-config")["data"]["config.yaml"])
    section = config["services"]["query"]
    assert (section["tls_cert_file"], section["tls_key_file"]) == (
        "/etc/camsight/tls/tls.crt",
        "/etc/camsight/tls/tls.key",
    )
    # The tokens come from their Secret as environment (CAMSIGHT_SERVICES__QUERY).
    QuerySettings.model_validate(section | {"tokens": MINIMAL["apiTokens"]["tokens"]})
    # The probes are HTTP: kubelet's gRPC probe cannot speak TLS.
    assert "grpc" not in pod["containers"][0]["readinessProbe"]


CONSOLE = {
    "enabled": True,
    "port": 8443,
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "host": "cams.example",
        "tlsSecretName": "cams-tls",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"},
    },
}


def test_the_console_port_service_and_ingress() -> None:
    """services.query.console: the query container's console port, a port of the query
    Service, the query section's console (valid for the query service's own settings), the
    NetworkPolicy admitting it from the gRPC API's peers, and an Ingress to it."""
    from camsight.query.settings import QuerySettings

    r = render(CHART, MINIMAL | {"services": {"query": {"console": CONSOLE}}})
    container = pods(r)["query"]["spec"]["containers"][0]
    assert {"name": "console", "containerPort": 8443, "protocol": "TCP"} in container["ports"]
    service = r.one("Service", "cs-camsight-query")
    assert [p for p in service["spec"]["ports"] if p["name"] == "console"] == [
        {"name": "console", "port": 8443, "targetPort": "console", "protocol": "TCP", "appProtocol": "http"}
    ]
    section = yaml.safe_load(r.one("ConfigMap", "cs-camsight-config")["data"]["config.yaml"])["services"][
        "query"
    ]
    assert section["console"] == {"enabled": True, "host": "0.0.0.0", "port": 8443}
    console = QuerySettings.model_validate(section | {"tokens": MINIMAL["apiTokens"]["tokens"]}).console
    assert (console.enabled, console.port, console.read_only) == (True, 8443, False)
    policy = r.one("NetworkPolicy", "cs-camsight-query")["spec"]
    (api_rule,) = [rule for rule in policy["ingress"] if rule["ports"][0]["port"] == "grpc"]
    assert [p["port"] for p in api_rule["ports"]] == ["grpc", "console"]
    assert {"podSelector": {"matchLabels": {"camsight.io/query-client": "true"}}} in api_rule["from"]
    ingress = r.one("Ingress", "cs-camsight-console")
    assert ingress["metadata"]["annotations"] == CONSOLE["ingress"]["annotations"]
    assert ingress["spec"] == {
        "ingressClassName": "nginx",
        "tls": [{"secretName": "cams-tls", "hosts": ["cams.example"]}],
        "rules": [
            {
                "host": "cams.example",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {"name": "cs-camsight-query", "port": {"name": "console"}}
                            },
                        }
                    ]
                },
            }
        ],
    }
    kubernetes_validate.validate(ingress, KUBE_VERSION, strict=True)
    assert "https://cams.example/" in r.notes
    assert "add its pods to networkPolicy.queryFrom" in r.notes


def test_the_console_is_off_by_default(default: Rendered) -> None:
    assert not default.of_kind("Ingress")
    assert [p["name"] for p in default.one("Service", "cs-camsight-query")["spec"]["ports"]] == ["grpc"]
    assert "console" not in {p["name"] for p in pods(default)["query"]["spec"]["containers"][0]["ports"]}
    config = yaml.safe_load(default.one("ConfigMap", "cs-camsight-config")["data"]["config.yaml"])
    assert "console" not in config["services"]["query"]
    assert "operator console" not in default.notes
    port_forward = render(CHART, MINIMAL | {"services": {"query": {"console": {"enabled": True}}}})
    assert not port_forward.of_kind("Ingress")
    assert "port-forward svc/cs-camsight-query 8090" in port_forward.notes


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (
            {"console": {"ingress": {"enabled": True}}},
            r"services\.query\.console\.ingress\.enabled needs .*services\.query\.console\.enabled",
        ),
        (
            {"console": {"enabled": True}, "tls": {"secretName": "query-grpc"}},
            r"the console cannot yet call a TLS gRPC server",
        ),
        ({"console": {"enabled": True, "port": 0}}, r"port"),
    ],
)
def test_console_values_that_cannot_work_fail_the_render(query: dict[str, Any], error: str) -> None:
    with pytest.raises(InstallError, match=error):
        render(CHART, MINIMAL | {"services": {"query": query}})


def test_readme_documents_every_value() -> None:
    """Every key of values.yaml appears in the chart README's values table."""
    readme = (CHART / "README.md").read_text()
    opaque = {"resources", "nodeSelector", "podSecurityContext", "securityContext", "config"}
    opaque |= {"monitoringNamespaceSelector", "dns", "startupProbe", "pdb", "strategy", "queryClientLabels"}

    def keys(node: Any) -> set[str]:
        if not isinstance(node, dict):
            return set()
        found = set(node)
        for key, value in node.items():
            if key not in opaque:
                found |= keys(value)
        return found

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    services = set(values["services"])
    missing = {k for k in keys(values) - services if not re.search(rf"[`.]{re.escape(k)}\b", readme)}
    assert not missing, f"values not in README.md: {sorted(missing)}"


def test_readme_camera_passes_the_crd_schema_and_the_controller(default: Rendered) -> None:
    """The chart README's Camera example is accepted by the CRD schema (as the API
    server would check it) and by the controller's validation."""
    from camsight.controller.resources import desired_camera
    from jsonschema import Draft4Validator  # OpenAPI v3.0 keeps draft-4's boolean exclusiveMinimum

    readme = (CHART / "README.md").read_text()
    example = yaml.safe_load(readme.split("## The Camera resource")[1].split("```yaml")[1].split("```")[0])
    crd = default.one("CustomResourceDefinition", "cameras.camsight.io")
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    Draft4Validator(schema).validate(example)
    bad = example | {"spec": example["spec"] | {"fps": 500, "pacing": "fast"}}
    assert len(list(Draft4Validator(schema).iter_errors(bad))) == 2

    example["metadata"]["namespace"] = "video"
    desired = desired_camera(example, lambda name, key: "rtsp://u:p@10.0.0.9/s")
    assert desired.camera is not None, desired.error
    assert desired.camera.id == "lobby" and desired.camera.rules[0].zone == "door"


def test_helm_lint_finds_no_error() -> None:
    """helm lint (the engine loses the messages' text offline: severities only): no error.
    The chart has no dependency to vendor (decision 0064)."""
    from helm_sdkpy.chart import Lint

    config = helm_sdkpy.Configuration(namespace="video", kubeconfig="apiVersion: v1\nkind: Config\n")
    result = asyncio.run(Lint(config).run(str(CHART)))
    assert not result["Errors"]
    assert max(m["Severity"] for m in result["Messages"]) < 3  # 3 = error


# -- NATS users (decision 0081) -------------------------------------------------------


def job_pod(r: Rendered) -> dict[str, Any]:
    (job,) = r.of_kind("Job")
    assert job["metadata"]["name"] == "cs-camsight-topology-1"
    return dict(job["spec"]["template"])


def nats_env(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        e["name"]: e
        for e in pod["spec"]["containers"][0].get("env", [])
        if e["name"].startswith("CAMSIGHT_NATS__")
    }


def string_data(r: Rendered, name: str) -> dict[str, str]:
    return dict(r.one("Secret", name)["stringData"])


def test_permissions_file_is_not_stale() -> None:
    """helm/camsight/files/nats-permissions.json is generated from camsight.natsauth.NEEDS;
    regenerate with `python -m camsight.natsauth helm/camsight/files/nats-permissions.json`."""
    from camsight.natsauth import permissions_document

    assert (CHART / "files" / "nats-permissions.json").read_text() == permissions_document()


def test_each_workload_connects_as_its_own_nats_user(
    default: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = string_data(default, "cs-camsight-nats-users")
    assert set(passwords) == {*SERVICES, "topology", "events-reader"}
    assert len(set(passwords.values())) == len(passwords) and all(len(p) == 32 for p in passwords.values())
    generated = json.loads((CHART / "files" / "nats-permissions.json").read_text())
    config = tmp_path / "config.yaml"
    config.write_text(default.one("ConfigMap", "-config")["data"]["config.yaml"])
    for role, pod in [*pods(default).items(), ("topology", job_pod(default))]:
        env = nats_env(pod)
        assert set(env) == {
            "CAMSIGHT_NATS__USER",
            "CAMSIGHT_NATS__PASSWORD",
            "CAMSIGHT_NATS__INBOX_PREFIX",
        }, role
        assert env["CAMSIGHT_NATS__USER"]["value"] == f"camsight-{role}"
        ref = env["CAMSIGHT_NATS__PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "cs-camsight-nats-users", "key": role}  # its own key, no other
        inbox = env["CAMSIGHT_NATS__INBOX_PREFIX"]["value"]
        assert inbox == f"_INBOX.camsight-{role}"
        # Its own inboxes are the only ones its permissions let it subscribe to.
        inboxes = [s for s in generated[role]["subscribe"]["allow"] if s.startswith("_INBOX")]
        assert inboxes == [f"{inbox}.>"], role
        with monkeypatch.context() as m:
            for name, var in env.items():
                m.setenv(
                    name, passwords[role] if "secretKeyRef" in var.get("valueFrom", {}) else var["value"]
                )
            settings = load_settings(config)
        assert settings.nats.user == f"camsight-{role}" and settings.nats.password is not None
        assert settings.nats.inbox_prefix == inbox
        assert settings.nats.declare_topology is False  # only the Job declares (`camsight topology`)
    assert job_pod(default)["spec"]["containers"][0]["args"][:1] == ["topology"]
    assert "cs-camsight-topology" in {p["metadata"]["name"] for p in default.of_kind("NetworkPolicy")}


def test_the_rendered_nats_users_enforce_the_generated_permissions(default: Rendered, tmp_path: Path) -> None:
    """auth.conf (what the bundled NATS includes) run by a real nats-server: the users and
    passwords of the Secret, each with exactly the permissions of the generated file.
    (Synchronous: the module's renders run their own event loop.)"""
    import nats
    import nats.errors
    from camsight.bus import connect, subjects
    from camsight.bus.rpc import NoResponderError, request, serve_requests
    from camsight.config import NatsSettings, StreamSettings
    from camsight.natsserver import EmbeddedNats
    from camsight.v1 import event_pb2
    from helpers import wait_for

    passwords = string_data(default, "cs-camsight-nats-users")
    conf = json.loads(string_data(default, "cs-camsight-nats-conf")["auth.conf"])
    generated = json.loads((CHART / "files" / "nats-permissions.json").read_text())
    users = {u["user"]: u for u in conf["authorization"]["users"]}
    assert set(users) == {f"camsight-{role}" for role in generated}
    for role, permissions in generated.items():
        assert users[f"camsight-{role}"]["permissions"] == permissions
        assert users[f"camsight-{role}"]["password"] == passwords[role]
    # No user may publish or subscribe to every inbox (only its own: `_INBOX.camsight-<role>.>`).
    grants = [
        s for u in users.values() for d in ("publish", "subscribe") for s in u["permissions"][d]["allow"]
    ]
    assert "_INBOX.>" not in grants and not [
        g for g in grants if g.startswith("_INBOX") and "camsight-" not in g
    ]
    assert users["camsight-face"]["permissions"]["allow_responses"] == {"max": 1, "expires": "1m"}

    async def check(server: EmbeddedNats) -> None:
        def as_role(role: str, password: str | None = None) -> NatsSettings:
            secret = password or passwords[role]
            return NatsSettings(
                servers=[server.url],
                user=f"camsight-{role}",
                password=secret,
                inbox_prefix=f"_INBOX.camsight-{role}",
                connect_timeout_s=2,
            )

        topology = await connect(as_role("topology"), StreamSettings(), name="job")
        await topology.ensure_topology()
        await topology.close()
        decoder = await connect(as_role("decoder"), StreamSettings(), name="decoder")
        try:
            await decoder.check_topology()
            await decoder.publish(subjects.frames("cam"), b"frame")  # allowed: the default timeout
            forged = event_pb2.Event(id="f", type=event_pb2.EVENT_TYPE_FACE_RECOGNIZED, camera_id="cam")
            with pytest.raises((nats.errors.Error, TimeoutError)):
                await decoder.publish_event(forged, timeout=1)
        finally:
            await decoder.close()
        # The face service answers the query service's requests (allow_responses) ...
        face = await connect(as_role("face"), StreamSettings(), name="face")
        query = await connect(as_role("query"), StreamSettings(), name="query")
        try:

            async def pong(data: bytes) -> bytes:
                return b"re:" + data

            await serve_requests(face, subjects.FACE_ENROLL_SUBJECT, "face", pong)
            await face.nc.flush()  # the server knows the endpoint before the request

            async def answered() -> bool:
                # Once in ~450 CI tests the first request still found no responder after the
                # flush (cause not established); a refused subscription never answers, so
                # asking until a deadline still fails where the permissions are wrong.
                with contextlib.suppress(NoResponderError):
                    return (
                        await request(query, subjects.FACE_ENROLL_SUBJECT, b"enroll", timeout=5)
                        == b"re:enroll"
                    )
                return False

            await wait_for(answered, 10, "the face service to answer the query service's request")
        finally:
            await face.close()
            await query.close()
        # ... and nobody may listen on the inboxes of others.
        refusals: list[str] = []

        async def refused(exc: Exception) -> None:
            refusals.append(str(exc))

        snoop = await nats.connect(
            server.url, user="camsight-decoder", password=passwords["decoder"], error_cb=refused
        )
        try:
            await snoop.subscribe("_INBOX.camsight-face.>")
            await snoop.flush()
            await wait_for(lambda: refusals, 5, "the subscription to be refused")
            assert (
                "permissions violation" in refusals[0].lower()
                and "_inbox.camsight-face" in refusals[0].lower()
            )
        finally:
            await snoop.close()
        # A wrong password is refused (nats-py keeps retrying: collect its errors meanwhile).
        errors: list[str] = []

        async def record(exc: Exception) -> None:
            errors.append(str(exc))

        intruder = asyncio.create_task(
            nats.connect(server.url, user="camsight-face", password="wrong", error_cb=record)
        )
        try:
            # (on a condition: under load the first refusal could take longer than a fixed wait)
            await wait_for(
                lambda: any("Authorization Violation" in e for e in errors), 30, "the wrong password refused"
            )
        finally:
            intruder.cancel()
        with pytest.raises((asyncio.CancelledError, nats.errors.Error)):
            await intruder  # never connected

    with EmbeddedNats(store_dir=tmp_path / "js", authorization=conf["authorization"]) as server:
        asyncio.run(check(server))


def test_the_bundled_nats_includes_the_generated_authorization(default: Rendered) -> None:
    """The NATS StatefulSet mounts the auth.conf Secret where the rendered nats.conf's
    include (relative to the config file) finds it. test_rendered_install.py runs it."""
    import posixpath

    sts = default.one("StatefulSet", "cs-nats")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    conf_path = container["command"][container["command"].index("--config") + 1]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    conf = default.one("ConfigMap", volumes["config"]["configMap"]["name"])["data"]["nats.conf"]
    (include,) = re.findall(r"^include (\S+)$", conf, re.M)
    target = posixpath.normpath(posixpath.join(posixpath.dirname(conf_path), include))
    assert target == f"{mounts['auth']['mountPath']}/auth.conf" and mounts["auth"]["readOnly"] is True
    assert "auth.conf" in string_data(default, volumes["auth"]["secret"]["secretName"])


def test_nats_passwords_come_from_the_existing_secret() -> None:
    """As on `helm upgrade`: the template's lookup finds the Secret the install wrote and
    keeps its passwords (rendered here by an Install against a stand-in holding it)."""
    import base64

    def upgrade(prefix: str) -> Rendered:
        kept = {role: f"{prefix}-{role}-password" for role in (*SERVICES, "topology", "events-reader")}
        existing = {
            "/api/v1/namespaces/video/secrets/cs-camsight-nats-users": {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "cs-camsight-nats-users",
                    "namespace": "video",
                    # What Helm wrote at install: it adopts the Secret on this render.
                    "labels": {"app.kubernetes.io/managed-by": "Helm"},
                    "annotations": {
                        "meta.helm.sh/release-name": "cs",
                        "meta.helm.sh/release-namespace": "video",
                    },
                },
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in kept.items()},
            }
        }
        r = render(CHART, MINIMAL, existing=existing)
        assert string_data(r, "cs-camsight-nats-users") == kept
        conf = json.loads(string_data(r, "cs-camsight-nats-conf")["auth.conf"])
        assert {u["user"]: u["password"] for u in conf["authorization"]["users"]} == {
            f"camsight-{role}": password for role, password in kept.items()
        }
        return r

    def checksums(r: Rendered) -> dict[str, str]:
        """The annotations that roll NATS and each workload when the passwords change."""
        nats = r.one("StatefulSet", "cs-nats")["spec"]["template"]["metadata"]["annotations"]
        found = {"nats": nats["checksum/auth"]}
        for name, pod in pods(r).items():
            found[name] = pod["metadata"]["annotations"]["checksum/nats-users"]
        return found

    kept = checksums(upgrade("kept"))
    assert checksums(upgrade("kept")) == kept  # an upgrade that keeps them rolls nothing
    rotated = checksums(upgrade("rotated"))
    assert all(rotated[name] != kept[name] for name in kept), (kept, rotated)


def test_shared_nats_credentials_keep_the_single_user_layout(gpu: Rendered) -> None:
    """natsAuth.perServiceUsers false with shared credentials: no generated users; every pod
    and the Job use the shared Secret, and the bundled NATS requires exactly that user."""
    assert not [s for s in gpu.of_kind("Secret") if s["metadata"]["name"] == "cs-camsight-nats-users"]
    assert json.loads(string_data(gpu, "cs-camsight-nats-conf")["auth.conf"]) == {
        "authorization": {"user": "camsight", "password": "change-me-nats-password"}
    }
    for pod in [*pods(gpu).values(), job_pod(gpu)]:
        env = nats_env(pod)
        assert env["CAMSIGHT_NATS__USER"]["valueFrom"]["secretKeyRef"]["name"] == "cs-camsight-nats-auth"
        assert env["CAMSIGHT_NATS__PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "password"


# -- the bundled NATS (decision 0064) -------------------------------------------------


def test_jetstream_is_sized_from_camsights_own_stream_settings() -> None:
    """The reservations the chart sizes JetStream against are the topology's own:
    files/jetstream-reservations.json is what camsight.bus.sizing derives from it
    (regenerate with `python -m camsight.bus.sizing
    helm/camsight/files/jetstream-reservations.json`), every setting it names is in
    values.yaml's config.streams with camsight.config's default, and the payload limit
    fits the frames."""
    from camsight.bus.sizing import reservations_document
    from camsight.config import StreamSettings
    from camsight.natsserver import DEFAULT_MAX_PAYLOAD

    document = (CHART / "files" / "jetstream-reservations.json").read_text()
    assert document == reservations_document()
    reservations = json.loads(document)
    assert reservations["memory"]["settings"] == {"frames_max_bytes": "FRAMES"}
    assert reservations["file"]["settings"] == {"snapshots_max_bytes": "OBJ_snapshots"}
    assert reservations["file"]["fixed"] == {"DEADLETTER": 256 * 1024**2}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    defaults = StreamSettings()
    for key, value in values["config"]["streams"].items():
        if key != "events_replicas":  # the chart's choice: three copies on three nodes
            assert value == getattr(defaults, key), key
    for part in reservations.values():
        assert set(part["settings"]) <= set(values["config"]["streams"])
    assert values["nats"]["maxPayload"] == DEFAULT_MAX_PAYLOAD


def test_a_new_byte_limit_in_the_topology_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket given a byte limit, fixed or from a setting, lands in the reservations
    without a hand list: what a KV bucket for behavior state would do."""
    from camsight.bus import sizing
    from nats.js.api import KeyValueConfig, StorageType

    def with_state_bucket(cfg: Any) -> list[KeyValueConfig]:
        return [
            KeyValueConfig(bucket="state", storage=StorageType.FILE, max_bytes=64 * 1024**2),
            KeyValueConfig(bucket="memo", storage=StorageType.MEMORY, max_bytes=cfg.frames_per_camera),
        ]

    monkeypatch.setattr(sizing, "kv_configs", with_state_bucket)
    document = json.loads(sizing.reservations_document())
    assert document["file"]["fixed"] == {"DEADLETTER": 256 * 1024**2, "KV_state": 64 * 1024**2}
    assert document["memory"]["settings"] == {"frames_max_bytes": "FRAMES", "frames_per_camera": "KV_memo"}


def test_the_nats_statefulset_is_hardened(rendered: Rendered) -> None:
    sts = rendered.one("StatefulSet", "cs-nats")
    spec = sts["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert sts["spec"]["replicas"] == 3 and sts["spec"]["podManagementPolicy"] == "Parallel"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"] == "2Gi"
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    spread = {t["topologyKey"]: t["whenUnsatisfiable"] for t in spec["topologySpreadConstraints"]}
    assert spread == {
        "kubernetes.io/hostname": "DoNotSchedule",
        "topology.kubernetes.io/zone": "ScheduleAnyway",
    }
    conf = rendered.one("ConfigMap", "cs-nats-conf")["data"]["nats.conf"]
    assert "max_memory_store: 1073741824" in conf and "max_file_store: 17179869184" in conf
    assert conf.count("cs-nats-headless.video.svc.cluster.local:6222") == 3
    # Nothing runs that was not asked for: no nats-box, no test Pod.
    assert rendered.of_kind("Pod") == []
    assert {
        d["metadata"]["labels"].get("app.kubernetes.io/name") for d in rendered.of_kind("Deployment")
    } == {"camsight"}
    one = render(CHART, MINIMAL | {"nats": {"replicas": 1}, "config": {"streams": {"events_replicas": 1}}})
    assert "cluster {" not in one.one("ConfigMap", "cs-nats-conf")["data"]["nats.conf"]
    assert "cs-nats" not in {p["metadata"]["name"] for p in one.of_kind("PodDisruptionBudget")}
    classed = render(
        CHART, MINIMAL | {"nats": {"jetstream": {"fileStore": {"pvc": {"storageClass": "fast"}}}}}
    )
    (claim,) = classed.one("StatefulSet", "cs-nats")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast"


def test_nats_tls_for_clients_and_routes() -> None:
    """TLS from a Secret: the server's tls blocks point at the mounted certificate, routes
    verify their peers, and camsight connects with tls:// trusting the CA."""
    values = MINIMAL | {
        "nats": {
            "tls": {"client": {"enabled": True, "secretName": "nats-client"}, "routes": {"enabled": True}}
        }
    }
    with pytest.raises(InstallError, match=r"nats\.tls\.routes\.secretName"):
        render(CHART, values)
    values["nats"]["tls"]["certManager"] = {
        "enabled": True,
        "issuerRef": {"name": "ca", "kind": "ClusterIssuer"},
    }
    r = render(CHART, values)
    conf = r.one("ConfigMap", "cs-nats-conf")["data"]["nats.conf"]
    assert 'cert_file: "/etc/nats-tls/client/tls.crt"' in conf and "verify: true" in conf
    pod = r.one("StatefulSet", "cs-nats")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls-client"]["secret"]["secretName"] == "nats-client"
    # Renewed certificates are reloaded by a sidecar as restricted as NATS itself (the
    # rendered-install test runs its command), signalling through the shared pid file.
    nats, reloader = pod["containers"]
    assert reloader["name"] == "tls-reloader" and pod["shareProcessNamespace"] is True
    assert reloader["securityContext"] == nats["securityContext"] and reloader["resources"]["limits"]
    assert {m["mountPath"] for m in reloader["volumeMounts"]} == {
        "/var/run/nats",
        "/etc/nats-tls/client",
        "/etc/nats-tls/routes",
    }
    assert volumes["tls-routes"]["secret"]["secretName"] == "cs-nats-routes-tls"
    (cert,) = r.of_kind("Certificate")
    assert cert["spec"]["secretName"] == "cs-nats-routes-tls" and "client auth" in cert["spec"]["usages"]
    config = yaml.safe_load(r.one("ConfigMap", "cs-camsight-config")["data"]["config.yaml"])
    assert config["nats"]["servers"] == ["tls://cs-nats.video.svc:4222"]
    assert config["nats"]["tls"] == {"ca_file": "/etc/camsight/nats-ca/ca.crt"}
    for name, pod in pods(r).items():
        mounts = {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        assert "/etc/camsight/nats-ca" in mounts, name


OLD_SIZES = {"nats": {"jetstream": {"fileStore": {"maxSize": "10Gi", "pvc": {"size": "10Gi"}}}}}


@pytest.mark.parametrize(
    ("values", "error"),
    [
        # The sizes of the official chart's defaults (issue 25): each store too small.
        (
            {"nats": {"jetstream": {"memoryStore": {"maxSize": "0"}}}},
            r"nats\.jetstream\.memoryStore\.maxSize \(0 MiB\) is smaller than "
            r"config\.streams\.frames_max_bytes \(512 MiB: FRAMES\).*10028",
        ),
        (
            OLD_SIZES,
            r"nats\.jetstream\.fileStore\.maxSize \(10240 MiB\) must hold "
            r"config\.streams\.snapshots_max_bytes \(10240 MiB: OBJ_snapshots\) \+ DEADLETTER \(256 MiB\) "
            r"\+ nats\.jetstream\.fileStore\.minUnreserved \(4096 MiB\) = 14592 MiB.*10047",
        ),
        (
            {"config": {"streams": {"snapshots_max_bytes": 20 * 1024**3}}},
            r"nats\.jetstream\.fileStore\.maxSize .* config\.streams\.snapshots_max_bytes \(20480 MiB",
        ),
        (
            {"nats": {"jetstream": {"fileStore": {"pvc": {"size": "8Gi"}}}}},
            r"nats\.jetstream\.fileStore\.pvc\.size \(8192 MiB\) is smaller than "
            r"nats\.jetstream\.fileStore\.maxSize",
        ),
        (
            {"nats": {"resources": {"limits": {"memory": "1Gi"}}}},
            r"nats\.resources\.limits\.memory \(1Gi\) must exceed nats\.jetstream\.memoryStore\.maxSize",
        ),
        ({"nats": {"replicas": 1}}, r"config\.streams\.events_replicas \(3\) exceeds nats\.replicas \(1\)"),
        ({"nats": {"jetstream": {"memoryStore": {"maxSize": "1GB"}}}}, "memoryStore/maxSize"),
        # NATS credentials that the bundled NATS would not authorize.
        (
            {"natsAuth": {"user": "cs", "password": "pw"}},
            r"natsAuth\.user/password/token/existingSecret are shared",
        ),
        ({"natsAuth": {"perServiceUsers": False}}, r"natsAuth\.allowAnonymous: true"),
        (
            {"natsAuth": {"perServiceUsers": False, "existingSecret": "mine"}},
            r"natsAuth\.existingSecret with the bundled NATS",
        ),
        (
            {"natsAuth": {"perServiceUsers": False, "usersExistingSecret": "mine", "token": "t" * 20}},
            r"natsAuth\.usersExistingSecret holds per-service passwords",
        ),
    ],
)
def test_nats_values_that_cannot_work_fail_the_render(values: dict[str, Any], error: str) -> None:
    with pytest.raises(InstallError, match=error):
        render(CHART, MINIMAL | values)


def test_the_notes_warn_of_what_stays_open(default: Rendered) -> None:
    """Where the defaults cannot close something (the cluster's own ranges are unknown to
    the chart) or the values open it on purpose, the install's notes say so."""
    assert "set networkPolicy.clusterCidrs" in default.notes
    assert "allowAnonymous" not in default.notes
    values = {"apiTokens": {"allowAnonymous": True}, "networkPolicy": {"clusterCidrs": ["10.0.0.0/8"]}}
    r = render(CHART, values)
    assert "clusterCidrs" not in r.notes
    assert "WARNING: apiTokens.allowAnonymous: the query API serves every caller" in r.notes


def test_config_and_secret_changes_roll_the_workloads(default: Rendered) -> None:
    """checksum/config and checksum/secrets follow the ConfigMap and the Secrets."""

    def annotations(r: Rendered) -> dict[str, dict[str, str]]:
        return {name: pod["metadata"]["annotations"] for name, pod in pods(r).items()}

    before = annotations(default)
    changed = annotations(
        render(
            CHART,
            MINIMAL
            | {
                "config": {"log": {"level": "DEBUG"}},
                "apiTokens": {
                    "tokens": [{"name": "admin", "token": "another-admin-token-0123", "scope": "admin"}]
                },
            },
        )
    )
    for name in before:
        for key in ("checksum/config", "checksum/secrets"):
            assert changed[name][key] != before[name][key], (name, key)


def test_what_upgrades_and_uninstalls_rely_on(gpu: Rendered) -> None:
    """docs/deploy.md section 5: the CRD and the models claim are kept on uninstall, the
    controller never overlaps itself, pods get their drain's grace, and a NATS node's lame
    duck period fits in its own."""
    for kind, name in (
        ("CustomResourceDefinition", "cameras.camsight.io"),
        ("PersistentVolumeClaim", "-models"),
    ):
        assert gpu.one(kind, name)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert gpu.one("Deployment", "-controller")["spec"]["strategy"] == {"type": "Recreate"}
    assert {pod["spec"]["terminationGracePeriodSeconds"] for pod in pods(gpu).values()} == {45}
    nats = gpu.one("StatefulSet", "cs-nats")["spec"]["template"]["spec"]
    conf = gpu.one("ConfigMap", "cs-nats-conf")["data"]["nats.conf"]
    assert 'lame_duck_duration: "30s"' in conf and 'lame_duck_grace_period: "10s"' in conf
    assert nats["terminationGracePeriodSeconds"] > 30 + 10


def test_network_policy_options() -> None:
    values = MINIMAL | {
        "networkPolicy": {
            "clusterCidrs": ["10.96.0.0/12", "fd00:10:96::/108"],
            "queryFrom": [{"namespaceSelector": {"matchLabels": {"team": "apps"}}}],
            "dns": {"podSelector": {"matchLabels": {"k8s-app": "coredns"}}, "cidrs": ["169.254.20.10/32"]},
        },
        "services": {"decoder": {"sourceCidrs": ["0.0.0.0/0", "::/0", "192.168.10.0/24"]}},
    }
    r = render(CHART, values)
    policies = {p["metadata"]["name"]: p["spec"] for p in r.of_kind("NetworkPolicy")}
    (sources,) = [
        e for e in policies["cs-camsight-decoder"]["egress"] if {"port": 554, "protocol": "TCP"} in e["ports"]
    ]
    assert sources["to"] == [
        # Dual stack: each family's cluster ranges in its own block's except.
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16", "10.96.0.0/12"]}},
        {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10", "fd00:ec2::254/128", "fd00:10:96::/108"]}},
        {"ipBlock": {"cidr": "192.168.10.0/24"}},
    ]
    (grpc_rule,) = [e for e in policies["cs-camsight-query"]["ingress"] if e["ports"][0]["port"] == "grpc"]
    assert grpc_rule["from"][-1] == {"namespaceSelector": {"matchLabels": {"team": "apps"}}}
    # DNS: the cluster DNS pods the selectors pick (not only kube-dns) and NodeLocal DNSCache.
    for policy in policies.values():
        if policy["policyTypes"] == ["Ingress"]:
            continue  # the NATS policy: ingress only
        (dns,) = [e for e in policy["egress"] if {"port": 53, "protocol": "UDP"} in e["ports"]]
        assert dns["to"] == [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "coredns"}},
            },
            {"ipBlock": {"cidr": "169.254.20.10/32"}},
        ]
    for doc in r.of_kind("NetworkPolicy"):
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
