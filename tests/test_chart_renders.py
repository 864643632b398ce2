"""Every Helm release of both stacks, and of the variants that change values, rendered by Helm 3 through the
vendored chart packages with exactly the values the offline plan wrote: helm succeeds, every object passes
strict schemas (custom resources their CRD's), every values key is known to its chart, and each release does
what this project means it to.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_render import (
    Render,
    chart_defaults,
    crd_schemas,
    pod_specs,
    render_plan,
    schema_problems,
    template_references,
    unknown_keys,
)
from test_addons import ADDONS, plan_with
from test_gpu_jobs import JOBS_ON_OKE

from pixelstream.addons.alerts import RECEIVER_SECRET, RECEIVER_URL_FILE
from pixelstream.addons.charts import Chart
from pixelstream.addons.dashboard import queries
from pixelstream.constants import GPU_NODE_LABEL, GPU_TAINT, GRAFANA_DASHBOARD_LABEL
from pixelstream.tools.chart_packages import package_path
from pixelstream.tools.offline import SECRET_PLACEHOLDER, Plan
from pixelstream.workloads.images import IMAGES

pytestmark = pytest.mark.slow

# What must go with an add-on that is switched off, for the config to stay valid.
WITH_IT = {
    "ingressNginx": {"streaming": {"enabled": False}},
    "monitoring": {
        "addons": {"dcgmExporter": {"enabled": False}},
        "streaming": {"enabled": False},
    },
}
SECURE_URL = {"secure": "v1:offline-alert-receiver-url"}
# Players signing in with an OpenID Connect provider (oauth2-proxy), the site under a path prefix.
SIGN_IN = {
    "streaming": {
        "ingress": {"host": "play.example.com", "pathPrefix": "/pixel"},
        "players": {
            "auth": {
                "mode": "oidc",
                "oidc": {
                    "issuerUrl": "https://idcs-0123456789abcdef.identity.oraclecloud.com",
                    "clientId": "pixelstream-players",
                    "clientSecret": {"secure": "v1:offline-client-secret"},
                    "allowedGroups": ["players"],
                    # OCI IAM identity domains name this issuer in their discovery document and ID tokens.
                    "tokenIssuer": "https://identity.oraclecloud.com/",
                },
            }
        },
    }
}
ONPREM_STREAMING = {
    "cluster": {"existing": {"streamPodCidrs": ["10.244.128.0/20"]}},
    "addons": {
        "ingressNginx": {"enabled": True},
        "certManager": {"enabled": True},
    },
    "streaming": {"enabled": True},
}
JOB_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "ScaledJob", "ClusterTriggerAuthentication"}


def _switched_off(addon: str) -> dict[str, Any]:
    extra = WITH_IT.get(addon, {})
    return {**extra, "addons": {addon: {"enabled": False}, **extra.get("addons", {})}}


VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "time-sliced": (
        "dev",
        {"addons": {"gpuPlugin": {"streamsPerGpu": 4}}, "streaming": {"streamer": {"gpuMode": "timeSliced"}}},
    ),
    "network-load-balancer": ("prod", {"addons": {"ingressNginx": {"loadBalancer": "network"}}}),
    "slack-receiver": (
        "prod",
        {"addons": {"monitoring": {"alertReceiver": {"type": "slack", "url": SECURE_URL, "channel": "#pixel"}}}},
    ),
    "webhook-receiver": ("dev", {"addons": {"monitoring": {"alertReceiver": {"type": "webhook", "url": SECURE_URL}}}}),
    "oke-gpu-addon": ("dev", {"addons": {"gpuPlugin": {"owner": "okeAddon"}}}),
    "no-streaming": ("dev", {"streaming": {"enabled": False}}),
    **{f"without-{addon}": ("dev", _switched_off(addon)) for addon in ADDONS},
    # The existing-cluster stack with the GPU jobs, and with streaming on too; the hybrid stack; jobs on OKE.
    "onprem": ("onprem", {}),
    "onprem-streaming": ("onprem", ONPREM_STREAMING),
    "hybrid": ("hybrid", {}),
    "prod-jobs": ("prod", {"jobs": JOBS_ON_OKE}),
    "players-sign-in": ("prod", SIGN_IN),
    "turn-over-tls": (
        "prod",
        {"streaming": {"ingress": {"host": "play.example.com"}, "turn": {"tls": {"host": "turn.play.example.com"}}}},
    ),
}


@dataclass
class Variant:
    plan: Plan
    directory: Path
    renders: dict[str, Render]

    @property
    def kube_version(self) -> str:
        return self.plan.outputs["kubernetesVersion"].removeprefix("v")


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Variant]:
    """Each variant planned, written as `make plan` writes it, and every release rendered (once per module)."""
    built = {}
    for name, (stack, config) in VARIANTS.items():
        work = tmp_path_factory.mktemp(name)
        plan = plan_with(work, stack, **config)
        plan.write(work / stack)
        built[name] = Variant(plan, work / stack, render_plan(plan, work / stack, work))
    return built


@pytest.fixture(scope="module")
def checked(variants: dict[str, Variant]) -> dict[str, list[str]]:
    """Schema problems by variant; identical renders (most variants share most releases, and helm_render renders
    each once) are checked once against the same CRDs."""
    schemas: dict[tuple[int, ...], dict] = {}
    seen: dict[tuple[int, tuple[int, ...]], list[str]] = {}
    problems = {}
    for name, variant in variants.items():
        providers = tuple(id(r) for r in variant.renders.values() if r.of_kind("CustomResourceDefinition"))
        if providers not in schemas:
            schemas[providers] = crd_schemas(variant.renders.values())
        problems[name] = []
        for render in variant.renders.values():
            key = (id(render), providers)
            if key not in seen:
                seen[key] = schema_problems(render.objects, variant.kube_version, schemas[providers])
            problems[name] += [f"{render.name}: {p}" for p in seen[key]]
    return problems


def test_variants_plan_the_releases_they_change(variants: dict[str, Variant]) -> None:
    assert set(variants["dev"].renders) == {
        "ingress-nginx",
        "cert-manager",
        "metrics-server",
        "kube-prometheus-stack",
        "dcgm-exporter",
        "nvidia-device-plugin",
    }
    assert "nvidia-device-plugin" not in variants["oke-gpu-addon"].renders
    assert set(variants["without-monitoring"].renders) == {
        "ingress-nginx",
        "cert-manager",
        "metrics-server",
        "nvidia-device-plugin",
    }
    for addon, release in (("certManager", "cert-manager"), ("metricsServer", "metrics-server")):
        assert release not in variants[f"without-{addon}"].renders


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_renders_every_release(variants: dict[str, Variant], variant: str) -> None:
    renders = variants[variant].renders
    failed = {name: r.stderr for name, r in renders.items() if r.returncode != 0}
    assert not failed, failed
    for render in renders.values():
        assert render.objects, f"{render.name} rendered nothing"
        assert render.release["values"], f"{render.name}: the plan wrote no values"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_passes_strict_and_crd_schemas(checked: dict[str, list[str]], variant: str) -> None:
    assert not checked[variant], "\n".join(checked[variant][:20])


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_values_key_is_known_to_its_chart(variants: dict[str, Variant], variant: str) -> None:
    for render in variants[variant].renders.values():
        package = package_path(Chart(render.release["chart"], render.release["version"], ""))
        read = template_references(package)
        unknown = [k for k in unknown_keys(render.release["values"], chart_defaults(package)) if k not in read]
        assert not unknown, f"{render.name}: values keys the chart does not have: {unknown}"


def test_custom_resources_are_checked_against_their_crds(variants: dict[str, Variant]) -> None:
    dev = variants["dev"]
    crds = crd_schemas(dev.renders.values())
    kinds = {o["kind"] for r in dev.renders.values() for o in r.objects if (o["apiVersion"], o["kind"]) in crds}
    assert {"PrometheusRule", "ServiceMonitor", "Prometheus", "Alertmanager"} <= kinds
    rule = dev.renders["kube-prometheus-stack"].named("PrometheusRule", "prometheus-stack-pixelstream")
    assert not schema_problems([rule], dev.kube_version, crds)

    misspelled = json.loads(json.dumps(rule))
    misspelled["spec"]["groups"][0]["rules"][0]["fro"] = "5m"
    wrong_type = json.loads(json.dumps(rule))
    wrong_type["spec"]["groups"][0]["rules"] = "not a list"
    for broken, field in ((misspelled, "fro"), (wrong_type, "rules")):
        problems = schema_problems([broken], dev.kube_version, crds)
        assert problems and field in problems[0], problems


@pytest.mark.parametrize("variant", ["dev", "prod", "turn-over-tls"])
def test_the_plans_own_custom_resources_pass_the_rendered_crds(variants: dict[str, Variant], variant: str) -> None:
    built = variants[variant]
    crds = crd_schemas(built.renders.values())
    custom = [m for m in built.plan.manifests().values() if (m["apiVersion"], m["kind"]) in crds]
    names = {"letsencrypt-staging", "letsencrypt-prod"} | ({"turn-tls"} if variant == "turn-over-tls" else set())
    assert {m["metadata"]["name"] for m in custom} == names
    custom.sort(key=lambda m: m["kind"] != "ClusterIssuer")
    assert not schema_problems(custom, built.kube_version, crds)
    custom[0]["spec"]["acme"]["solvers"][0]["http01"]["ingres"] = custom[0]["spec"]["acme"]["solvers"][0]["http01"].pop(
        "ingress"
    )
    assert "ingres" in " ".join(schema_problems(custom, built.kube_version, crds))


def test_a_misspelled_values_key_is_caught(variants: dict[str, Variant]) -> None:
    release = variants["dev"].renders["ingress-nginx"].release
    defaults = chart_defaults(package_path(Chart("ingress-nginx", release["version"], "")))
    values = json.loads(json.dumps(release["values"]))
    assert not list(unknown_keys(values, defaults))
    values["controller"]["replicaCont"] = 3
    values["controller"]["service"]["externalTraficPolicy"] = "Local"
    values["controller"]["nodeSelector"]["any.label/is-fine"] = "yes"  # a free-form map
    assert set(unknown_keys(values, defaults)) == {
        "controller.replicaCont",
        "controller.service.externalTraficPolicy",
    }


def test_a_chart_version_without_a_vendored_package_fails(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, addons={"ingressNginx": {"version": "4.99.0"}})
    plan.write(tmp_path / "dev")
    with pytest.raises(FileNotFoundError, match=r"ingress-nginx-4\.99\.0\.tgz.*chart_packages rebuild ingress-nginx"):
        render_plan(plan, tmp_path / "dev", tmp_path)


# --- what each release is meant to do ---------------------------------------------------------------------


def default_pool_problems(render: Render) -> list[str]:
    """Every pod of a cluster add-on on the default pool, except DaemonSets meant for every node."""
    problems = []
    for what, spec in pod_specs(render.objects):
        if what.startswith("DaemonSet"):
            continue
        if (spec.get("nodeSelector") or {}).get("app.pixel/pool") != "default":
            problems.append(f"{render.name}: {what} has nodeSelector {spec.get('nodeSelector')}")
    return problems


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_system_pods_run_on_the_default_pool(variants: dict[str, Variant], variant: str) -> None:
    renders = variants[variant].renders
    problems = []
    for name in ("ingress-nginx", "cert-manager", "metrics-server", "kube-prometheus-stack"):
        problems += default_pool_problems(renders[name])
    assert not problems, problems
    node_exporter = renders["kube-prometheus-stack"].app("DaemonSet", "prometheus-node-exporter")
    assert {"effect": "NoSchedule", "operator": "Exists"} in node_exporter["spec"]["template"]["spec"]["tolerations"]


@pytest.mark.parametrize("variant", ["dev", "time-sliced"])
def test_gpu_daemonsets_run_only_on_gpu_nodes(variants: dict[str, Variant], variant: str) -> None:
    renders = variants[variant].renders
    for name in ("dcgm-exporter", "nvidia-device-plugin"):
        daemonsets = renders[name].of_kind("DaemonSet")
        assert daemonsets, name
        for daemonset in daemonsets:
            spec = daemonset["spec"]["template"]["spec"]
            # The device plugin's MPS daemon adds `nvidia.com/mps.capable`, which only MPS sharing sets.
            assert dict([GPU_NODE_LABEL]).items() <= spec["nodeSelector"].items(), (name, spec["nodeSelector"])
            assert GPU_TAINT.toleration() in spec["tolerations"], name


def test_time_slicing_reaches_the_device_plugin(variants: dict[str, Variant]) -> None:
    plugin = variants["time-sliced"].renders["nvidia-device-plugin"]
    [config_map] = [c for c in plugin.of_kind("ConfigMap") if "default" in c.get("data", {})]
    sharing = yaml.safe_load(config_map["data"]["default"])["sharing"]["timeSlicing"]
    assert sharing["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}] and sharing["renameByDefault"]
    assert not [
        c
        for c in variants["dev"].renders["nvidia-device-plugin"].of_kind("ConfigMap")
        if "default" in c.get("data", {})
    ]


# OCI cloud controller manager v1.34.2 (pkg/cloudprovider/providers/oci/load_balancer_spec.go, load_balancer.go).
LB_PREFIX = {"lb": "oci.oraclecloud.com/", "nlb": "oci-network-load-balancer.oraclecloud.com/"}


def ccm_problems(service: dict[str, Any]) -> list[str]:
    """Why OCI's cloud controller would refuse this Service, or pick the wrong backends."""
    annotations = service["metadata"].get("annotations", {})
    kind = annotations.get("oci.oraclecloud.com/load-balancer-type", "lb")
    problems = []
    preserve = "oci-network-load-balancer.oraclecloud.com/is-preserve-source"
    if (
        kind == "nlb"
        and service["spec"].get("externalTrafficPolicy", "Cluster") == "Cluster"
        and preserve in annotations
    ):
        problems.append(f"{preserve} cannot be set when externalTrafficPolicy is Cluster (getPreserveSource)")
    if f"{LB_PREFIX[kind]}node-label-selector" not in annotations:
        problems.append(f"no {LB_PREFIX[kind]}node-label-selector: every node becomes a backend (getNodeFilter)")
    return problems


@pytest.mark.parametrize(("variant", "kind"), [("dev", "lb"), ("prod", "lb"), ("network-load-balancer", "nlb")])
def test_the_controller_service_gets_a_working_oci_load_balancer(
    variants: dict[str, Variant], variant: str, kind: str
) -> None:
    render = variants[variant].renders["ingress-nginx"]
    [service] = [s for s in render.of_kind("Service") if s["spec"].get("type") == "LoadBalancer"]
    annotations = service["metadata"]["annotations"]
    assert annotations == render.release["values"]["controller"]["service"]["annotations"]
    assert annotations["oci.oraclecloud.com/load-balancer-type"] == kind
    assert annotations[f"{LB_PREFIX[kind]}node-label-selector"] == "app.pixel/pool=default"
    assert annotations[f"{LB_PREFIX[kind]}oci-network-security-groups"].endswith("-lb-nsg")
    assert annotations["oci.oraclecloud.com/security-rule-management-mode"] == "None"
    assert not ccm_problems(service)


def test_the_ccm_rules_catch_the_old_network_load_balancer_annotations(variants: dict[str, Variant]) -> None:
    [service] = [
        s
        for s in variants["network-load-balancer"].renders["ingress-nginx"].of_kind("Service")
        if s["spec"].get("type") == "LoadBalancer"
    ]
    old = json.loads(json.dumps(service))
    annotations = old["metadata"]["annotations"]
    annotations["oci-network-load-balancer.oraclecloud.com/is-preserve-source"] = "false"
    annotations["oci.oraclecloud.com/node-label-selector"] = annotations.pop(
        "oci-network-load-balancer.oraclecloud.com/node-label-selector"
    )
    assert [p.split(" ")[0] for p in ccm_problems(old)] == [
        "oci-network-load-balancer.oraclecloud.com/is-preserve-source",
        "no",
    ]


def grafana_containers(render: Render) -> dict[str, dict[str, Any]]:
    deployment = render.app("Deployment", "grafana")
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_grafana_reads_the_admin_secret_and_loads_our_dashboard(variants: dict[str, Variant], variant: str) -> None:
    plan = variants[variant].plan
    render = variants[variant].renders["kube-prometheus-stack"]
    containers = grafana_containers(render)
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in containers["grafana"]["env"]}
    secret = plan.manifests()["monitoring.secret.grafana-admin.yaml"]
    assert env["GF_SECURITY_ADMIN_USER"] == {"name": secret["metadata"]["name"], "key": "admin-user"}
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == {"name": secret["metadata"]["name"], "key": "admin-password"}
    assert {"admin-user", "admin-password"} == set(secret["stringData"])

    sidecar = {e["name"]: e.get("value") for e in containers["grafana-sc-dashboard"]["env"]}
    config_map = plan.manifests()["monitoring.configmap.pixelstream-dashboard.yaml"]
    assert (sidecar["LABEL"], sidecar["LABEL_VALUE"]) == GRAFANA_DASHBOARD_LABEL
    assert config_map["metadata"]["labels"][sidecar["LABEL"]] == sidecar["LABEL_VALUE"]
    assert sidecar["NAMESPACE"] == "ALL"


UNREACHABLE = ("kube-controller-manager", "kube-scheduler", "kube-etcd", "kube-proxy", "etcd")


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_nothing_watches_what_oke_does_not_expose(variants: dict[str, Variant], variant: str) -> None:
    render = variants[variant].renders["kube-prometheus-stack"]
    names = [f"{o['kind']} {o['metadata']['name']}" for o in render.objects]
    assert not [n for n in names if any(part in n for part in UNREACHABLE)]
    alerts = {
        r.get("alert") for rule in render.of_kind("PrometheusRule") for g in rule["spec"]["groups"] for r in g["rules"]
    }
    assert not {"KubeControllerManagerDown", "KubeSchedulerDown", "KubeProxyDown", "etcdMembersDown"} & alerts
    assert {"KubeAPIDown", "KubeletDown", "Watchdog"} <= alerts, "the rest of the default rules stay"


@pytest.mark.parametrize("variant", ["dev", "no-streaming"])
def test_the_platform_alerts_are_installed_as_planned(variants: dict[str, Variant], variant: str) -> None:
    render = variants[variant].renders["kube-prometheus-stack"]
    rule = render.named("PrometheusRule", "prometheus-stack-pixelstream")
    planned = render.release["values"]["additionalPrometheusRulesMap"]["pixelstream"]["groups"]
    assert rule["spec"]["groups"] == planned
    names = {r["alert"] for r in planned[0]["rules"]}
    assert ("PixelStreamPlayersQueued" in names) == (variant == "dev")
    assert {"PixelStreamGpuXidError", "PixelStreamGpuTemperatureHigh"} <= names


def alertmanager_yaml(render: Render) -> dict[str, Any]:
    secret = render.named("Secret", "alertmanager-prometheus-stack-alertmanager")
    return yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))


@pytest.mark.parametrize(
    ("variant", "setting"), [("slack-receiver", "slack_configs"), ("webhook-receiver", "webhook_configs")]
)
def test_alerts_reach_the_receiver_through_a_mounted_secret(
    variants: dict[str, Variant], variant: str, setting: str
) -> None:
    built = variants[variant]
    render = built.renders["kube-prometheus-stack"]
    alertmanager = render.named("Alertmanager", "prometheus-stack-alertmanager")
    assert alertmanager["spec"]["secrets"] == [RECEIVER_SECRET]
    config = alertmanager_yaml(render)
    [receiver] = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
    [target] = receiver[setting]
    assert target.get("url_file", target.get("api_url_file")) == RECEIVER_URL_FILE
    assert config["route"]["routes"][0] == {"receiver": "null", "matchers": ['alertname = "Watchdog"']}
    assert config["inhibit_rules"], "the chart's inhibit rules stay"
    secret = built.plan.manifests()[f"monitoring.secret.{RECEIVER_SECRET}.yaml"]
    assert secret["stringData"] == {"url": "[secret]"}
    written = "".join(p.read_text() for p in built.directory.rglob("*") if p.is_file())
    assert SECRET_PLACEHOLDER not in written, "the receiver URL never reaches build/"
    assert SECRET_PLACEHOLDER not in json.dumps(render.objects), "nor the rendered release"


def test_without_a_receiver_alertmanager_keeps_the_charts_routes(variants: dict[str, Variant]) -> None:
    render = variants["dev"].renders["kube-prometheus-stack"]
    assert "secrets" not in render.named("Alertmanager", "prometheus-stack-alertmanager")["spec"]
    assert alertmanager_yaml(render)["route"]["receiver"] == "null"


DCGM_METRICS_USED = {"DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_GPU_TEMP"}


def test_dcgm_exports_what_the_dashboard_and_alerts_read_unrelabelled(variants: dict[str, Variant]) -> None:
    render = variants["dev"].renders["dcgm-exporter"]
    [monitor] = render.of_kind("ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    # Labels reach Prometheus as the exporter writes them: `Hostname`, `gpu`, ...
    assert not endpoint.get("relabelings") and not endpoint.get("metricRelabelings")
    assert endpoint.get("honorLabels") is False
    [counters] = [c for c in render.of_kind("ConfigMap") if "metrics" in c.get("data", {})]
    enabled = {
        line.split(",")[0].strip()
        for line in counters["data"]["metrics"].splitlines()
        if line.strip().startswith("DCGM_")
    }
    used = {name for expr in queries() for name in re.findall(r"\bDCGM_\w+", expr)}
    assert used | DCGM_METRICS_USED <= enabled, sorted((used | DCGM_METRICS_USED) - enabled)


# --- the GPU jobs' engines and custom resources -------------------------------------------------------------


def test_the_job_variants_render_their_engines(variants: dict[str, Variant]) -> None:
    assert set(variants["onprem"].renders) == {
        "metrics-server",
        "kube-prometheus-stack",
        "dcgm-exporter",
        "nvidia-device-plugin",
        "strimzi-kafka-operator",
        "keda",
    }
    for name in ("onprem", "prod-jobs"):
        crds = {
            o["spec"]["names"]["kind"]
            for r in variants[name].renders.values()
            for o in r.of_kind("CustomResourceDefinition")
        }
        assert crds >= JOB_KINDS, name


@pytest.mark.parametrize("variant", ["onprem", "prod-jobs"])
def test_the_job_custom_resources_pass_the_pinned_crds_strictly(variants: dict[str, Variant], variant: str) -> None:
    built = variants[variant]
    crds = crd_schemas(built.renders.values())
    custom = [m for m in built.plan.manifests().values() if m["kind"] in JOB_KINDS]
    assert {m["kind"] for m in custom} == JOB_KINDS
    assert all((m["apiVersion"], m["kind"]) in crds for m in custom), "every one has its CRD in the renders"
    assert not schema_problems(custom, built.kube_version, crds)


def _broken(manifests: dict[str, dict], kind: str) -> dict:
    [obj] = [json.loads(json.dumps(m)) for m in manifests.values() if m["kind"] == kind][:1]
    return obj


def test_the_crd_check_refuses_misspelled_and_mistyped_job_fields(variants: dict[str, Variant]) -> None:
    built = variants["onprem"]
    crds = crd_schemas(built.renders.values())
    manifests = built.plan.manifests()
    cases = []
    job = _broken(manifests, "ScaledJob")
    job["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]["resorces"] = {}
    cases.append((job, "resorces"))
    job = _broken(manifests, "ScaledJob")
    job["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 1
    cases.append((job, "lagThreshold"))
    job = _broken(manifests, "ScaledJob")
    job["spec"]["maxReplicaCont"] = 3
    cases.append((job, "maxReplicaCont"))
    pool = _broken(manifests, "KafkaNodePool")
    pool["spec"]["storage"]["volumes"][0]["sise"] = "1Gi"
    cases.append((pool, "sise"))
    kafka = _broken(manifests, "Kafka")
    kafka["spec"]["zookeeper"] = {"replicas": 3}
    cases.append((kafka, "zookeeper"))
    topic = _broken(manifests, "KafkaTopic")
    topic["spec"]["partitions"] = "six"
    cases.append((topic, "partitions"))
    user = _broken(manifests, "KafkaUser")
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    cases.append((user, "Reed"))
    authentication = _broken(manifests, "ClusterTriggerAuthentication")
    authentication["spec"]["secretTargetRef"][0]["secretKey"] = "password"
    cases.append((authentication, "secretKey"))
    for broken, field in cases:
        problems = schema_problems([broken], built.kube_version, crds)
        assert problems and field in " ".join(problems), (field, problems)


@pytest.mark.parametrize("variant", ["prod-jobs", "onprem"])
def test_the_engines_run_on_the_system_nodes(variants: dict[str, Variant], variant: str) -> None:
    renders = variants[variant].renders
    selector = {"app.pixel/pool": "default"}
    for name in ("keda", "strimzi-kafka-operator"):
        specs = list(pod_specs(renders[name].objects))
        assert specs, name
        for what, spec in specs:
            assert selector.items() <= (spec.get("nodeSelector") or {}).items(), (name, what, spec.get("nodeSelector"))


# --- the players' sign-in ----------------------------------------------------------------------------------


def test_oauth2_proxy_runs_as_the_sign_in_needs(variants: dict[str, Variant]) -> None:
    """oauth2-proxy 10.7.0 renders with our flags (pkg/apis/options at v7.15.3), its secrets from our Secret, on the
    default pool, the pinned image, no Redis and no init container pulling alpine:latest."""
    built = variants["players-sign-in"]
    render = built.renders["oauth2-proxy"]
    assert render.release["namespace"] == "pixel"
    deployment = render.app("Deployment", "oauth2-proxy")
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["image"] == IMAGES["oauth2-proxy"]
    assert not spec.get("initContainers"), "no wait-for-redis"
    args = set(container["args"])
    assert {
        "--provider=oidc",
        "--oidc-issuer-url=https://idcs-0123456789abcdef.identity.oraclecloud.com",
        "--set-authorization-header=true",
        "--proxy-prefix=/pixel/oauth2",
        "--redirect-url=https://play.example.com/pixel/oauth2/callback",
        "--code-challenge-method=S256",
        "--cookie-secure=true",
        "--allowed-group=players",
        "--insecure-oidc-skip-issuer-verification=true",
        "--config=/etc/oauth2_proxy/oauth2_proxy.cfg",
    } <= args, sorted(args)
    [config] = [c for c in render.of_kind("ConfigMap") if "oauth2_proxy.cfg" in c.get("data", {})]
    assert 'upstreams = ["static://202"]' in config["data"]["oauth2_proxy.cfg"], "authentication only"
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert {ref["name"] for ref in secrets.values()} == {"oauth2-proxy-credentials"}
    assert {ref["key"] for ref in secrets.values()} == {"client-id", "client-secret", "cookie-secret"}
    assert not render.of_kind("Secret"), "the chart makes no Secret of its own: no secret in its values"
    assert spec["nodeSelector"] == {"app.pixel/pool": "default"}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert not [o for o in render.objects if "redis" in o["metadata"]["name"]]


def test_every_player_route_asks_the_sign_in_and_the_sign_in_pages_do_not(variants: dict[str, Variant]) -> None:
    manifests = variants["players-sign-in"].plan.manifests()
    for name in ("pixelstream", "pixelstream-join", "pixelstream-signalling"):
        annotations = manifests[f"pixel.ingress.{name}.yaml"]["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/auth-url"] == (
            "http://oauth2-proxy.pixel.svc.cluster.local/pixel/oauth2/auth"
        )
        assert annotations["nginx.ingress.kubernetes.io/auth-signin"] == (
            "https://$host/pixel/oauth2/start?rd=$escaped_request_uri"
        )
        assert annotations["nginx.ingress.kubernetes.io/auth-response-headers"] == "Authorization"
    sign_in = manifests["pixel.ingress.pixelstream-sign-in.yaml"]
    assert "nginx.ingress.kubernetes.io/auth-url" not in sign_in["metadata"]["annotations"]
    [path] = sign_in["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/pixel/(oauth2/.*)"
    assert sign_in["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"] == "/pixel/$1"
    assert path["backend"] == {"service": {"name": "oauth2-proxy", "port": {"number": 80}}}
    session = manifests["pixel.deployment.session.yaml"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in session["env"]}
    assert env["AUTH_MODE"] == "oidc" and env["OIDC_CLIENT_ID"] == "pixelstream-players"
    # The session service checks the tokens' own issuer, and finds the keys through the domain's discovery.
    assert env["OIDC_ISSUER"] == "https://identity.oraclecloud.com/"
    assert env["OIDC_DISCOVERY_URL"] == "https://idcs-0123456789abcdef.identity.oraclecloud.com"


def test_on_an_existing_cluster_no_oci_annotation_reaches_the_controller(variants: dict[str, Variant]) -> None:
    render = variants["onprem-streaming"].renders["ingress-nginx"]
    [service] = [s for s in render.of_kind("Service") if s["spec"].get("type") == "LoadBalancer"]
    assert not [k for k in service["metadata"].get("annotations") or {} if "oraclecloud" in k]


def test_gpu_daemonsets_follow_the_existing_clusters_labels(variants: dict[str, Variant]) -> None:
    renders = variants["onprem"].renders
    for name in ("dcgm-exporter", "nvidia-device-plugin"):
        for daemonset in renders[name].of_kind("DaemonSet"):
            spec = daemonset["spec"]["template"]["spec"]
            assert spec["nodeSelector"].get("nvidia.com/gpu.present") == "true", name
            assert "app.pixel/gpu" not in spec["nodeSelector"], name
