"""Cluster add-ons in the offline plan: pinned charts, values, placement, ordering, toggles and secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from pixelstream.addons.charts import CHARTS, ENGINE_NAMESPACES, WORKLOAD_CHARTS, deep_merge
from pixelstream.addons.gpu_device_plugin import (
    GpuDevicePlugin,
    GpuDevicePluginArgs,
    time_slicing_config,
)
from pixelstream.tools.offline import OFFLINE_PASSWORD_PREFIX, Plan, plan_stack

RELEASE = "kubernetes:helm.sh/v3:Release"
# The add-ons' charts; the workloads' engines (the GPU jobs' Kafka operator and KEDA) come with their workload.
ADDON_CHARTS = set(CHARTS) - set(ENGINE_NAMESPACES) - set(WORKLOAD_CHARTS)
ADDON = "oci:ContainerEngine/addon:Addon"
GPU_SELECTOR = {"app.pixel/gpu": "true"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
ADDONS = (
    "ingressNginx",
    "certManager",
    "metricsServer",
    "monitoring",
    "dcgmExporter",
    "gpuPlugin",
)


def stack_with(tmp_path: Path, stack: str = "dev", **config: object) -> Path:
    """A copy of the stack's file in `tmp_path` with extra `pixelstream:<key>` values merged over it."""
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    for key, value in config.items():
        full = f"pixelstream:{key}"
        document["config"][full] = deep_merge(document["config"].get(full, {}), value)
    stack_file = tmp_path / f"Pulumi.{stack}.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    return stack_file


def plan_with(tmp_path: Path, stack: str = "dev", **config: object) -> Plan:
    """The stack's plan with extra `pixelstream:<key>` values merged over its stack file."""
    return plan_stack(stack, ROOT, stack_with(tmp_path, stack, **config))[0]


@pytest.fixture(scope="module")
def dev() -> Plan:
    return plan_stack("dev", ROOT)[0]


def releases(plan: Plan) -> dict[str, dict]:
    return {name.removesuffix(".yaml"): release for name, release in plan.helm_releases().items()}


def test_every_release_is_pinned_from_the_chart_table(dev: Plan) -> None:
    installed = releases(dev)
    assert set(installed) == ADDON_CHARTS
    for name, release in installed.items():
        chart = CHARTS[name]
        assert (release["chart"], release["version"], release["repository"]) == (
            chart.name,
            chart.version,
            chart.repository,
        )
    namespaces = {release["namespace"] for release in installed.values()}
    assert len(namespaces) == len(installed), "each add-on in its own namespace"


def test_stack_overrides_version_repository_and_deep_merges_values(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        addons={
            "ingressNginx": {
                "version": "4.15.0",
                "repository": "https://charts.mirror.example/ingress-nginx",
                "values": {"controller": {"replicaCount": 5, "service": {"annotations": {"team": "media"}}}},
            }
        },
    )
    release = releases(plan)["ingress-nginx"]
    assert (release["version"], release["repository"]) == ("4.15.0", "https://charts.mirror.example/ingress-nginx")
    controller = release["values"]["controller"]
    assert controller["replicaCount"] == 5
    annotations = controller["service"]["annotations"]
    assert annotations["team"] == "media"
    assert annotations["oci.oraclecloud.com/load-balancer-type"] == "lb", "our values survive the merge"
    assert controller["ingressClassResource"]["name"] == "nginx"


def test_ingress_load_balancer_uses_the_platform_nsg_and_default_pool(dev: Plan) -> None:
    annotations = releases(dev)["ingress-nginx"]["values"]["controller"]["service"]["annotations"]
    assert annotations == {
        "oci.oraclecloud.com/security-rule-management-mode": "None",
        "oci.oraclecloud.com/node-label-selector": "app.pixel/pool=default",
        "oci.oraclecloud.com/load-balancer-type": "lb",
        "oci.oraclecloud.com/oci-network-security-groups": "ocid1.networksecuritygroup.offline..pixelstream-dev-lb-nsg",
        "service.beta.kubernetes.io/oci-load-balancer-shape": "flexible",
        "service.beta.kubernetes.io/oci-load-balancer-shape-flex-min": "10",
        "service.beta.kubernetes.io/oci-load-balancer-connection-proxy-protocol-version": "2",
        "oci.oraclecloud.com/ingress-ip-mode": "proxy",
        "service.beta.kubernetes.io/oci-load-balancer-shape-flex-max": "100",
    }


def test_network_load_balancer_option(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, addons={"ingressNginx": {"loadBalancer": "network"}})
    annotations = releases(plan)["ingress-nginx"]["values"]["controller"]["service"]["annotations"]
    assert annotations["oci.oraclecloud.com/load-balancer-type"] == "nlb"
    assert annotations["oci-network-load-balancer.oraclecloud.com/oci-network-security-groups"].endswith("-lb-nsg")
    assert annotations["oci-network-load-balancer.oraclecloud.com/node-label-selector"] == "app.pixel/pool=default"
    assert "oci.oraclecloud.com/node-label-selector" not in annotations, "a network LB does not read it"
    assert "oci-network-load-balancer.oraclecloud.com/is-preserve-source" not in annotations
    assert not [k for k in annotations if "shape" in k]
    # The client's address travels in a PROXY v2 header from this kind too, and in-cluster traffic to it as well.
    assert annotations["oci-network-load-balancer.oraclecloud.com/is-ppv2-enabled"] == "true"
    assert annotations["oci.oraclecloud.com/ingress-ip-mode"] == "proxy"
    assert "service.beta.kubernetes.io/oci-load-balancer-connection-proxy-protocol-version" not in annotations


def test_the_controller_counts_clients_by_the_load_balancers_proxy_header_never_by_a_header_they_set(
    dev: Plan,
) -> None:
    config = releases(dev)["ingress-nginx"]["values"]["controller"]["config"]
    assert config == {
        "use-proxy-protocol": "true",
        "use-forwarded-headers": "false",
        "limit-req-status-code": "429",
        "limit-conn-status-code": "429",
    }


def test_cert_manager_crds_then_acme_cluster_issuers(dev: Plan) -> None:
    values = releases(dev)["cert-manager"]["values"]
    assert values["crds"] == {"enabled": True, "keep": True}
    chart = dev.named(RELEASE, "cert-manager")
    manifests = dev.manifests()
    for issuer, server in (
        ("letsencrypt-staging", "https://acme-staging-v02.api.letsencrypt.org/directory"),
        ("letsencrypt-prod", "https://acme-v02.api.letsencrypt.org/directory"),
    ):
        resource = dev.named("kubernetes:cert-manager.io/v1:ClusterIssuer", issuer)
        assert chart.urn in resource.dependencies, "issuers wait for cert-manager's CRDs and webhook"
        obj = manifests[f"clusterissuer.{issuer}.yaml"]
        assert obj["apiVersion"] == "cert-manager.io/v1"
        assert obj["spec"]["acme"]["server"] == server
        assert obj["spec"]["acme"]["solvers"] == [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]
        assert "email" not in obj["spec"]["acme"]


def test_acme_email_from_config(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, addons={"certManager": {"email": "ops@pixel.example.org"}})
    issuer = plan.manifests()["clusterissuer.letsencrypt-prod.yaml"]
    assert issuer["spec"]["acme"]["email"] == "ops@pixel.example.org"


def test_gpu_daemonsets_run_only_on_gpu_nodes(dev: Plan) -> None:
    installed = releases(dev)
    dcgm = installed["dcgm-exporter"]["values"]
    assert dcgm["nodeSelector"] == GPU_SELECTOR
    assert dcgm["tolerations"] == [GPU_TOLERATION]
    assert dcgm["serviceMonitor"]["enabled"] is True
    plugin = installed["nvidia-device-plugin"]["values"]
    assert plugin["nodeSelector"] == GPU_SELECTOR
    assert plugin["tolerations"] == [GPU_TOLERATION]
    terms = plugin["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "app.pixel/gpu", "operator": "In", "values": ["true"]}]}]
    assert "config" not in plugin, "whole GPUs unless time-slicing is asked for"


def test_chart_owns_the_gpu_plugin_and_the_oke_addon_is_parked(dev: Plan) -> None:
    addon = dev.named(ADDON, "gpu-device-plugin-oke-addon").inputs
    assert addon["addonName"] == "NvidiaGpuPlugin" and addon["overrideExisting"] is True
    configuration = {c["key"]: json.loads(c["value"]) for c in addon["configurations"]}
    assert configuration["nodeSelectors"] == {"app.pixel/oke-gpu-plugin": "disabled"}
    assert dev.outputs["gpuResource"] == "nvidia.com/gpu"


def test_oke_addon_can_own_the_gpu_plugin_instead(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, addons={"gpuPlugin": {"owner": "okeAddon", "addonVersion": "v0.17.1"}})
    assert "nvidia-device-plugin" not in releases(plan)
    addon = plan.named(ADDON, "gpu-device-plugin-oke-addon").inputs
    configuration = {c["key"]: json.loads(c["value"]) for c in addon["configurations"]}
    assert configuration == {"nodeSelectors": GPU_SELECTOR, "tolerations": [GPU_TOLERATION]}
    assert addon["version"] == "v0.17.1"


def test_time_slicing_shares_gpus_under_their_own_resource_name(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path, addons={"gpuPlugin": {"streamsPerGpu": 4}}, streaming={"streamer": {"gpuMode": "timeSliced"}}
    )
    config = releases(plan)["nvidia-device-plugin"]["values"]["config"]
    assert config["default"] == "default"
    sharing = yaml.safe_load(config["map"]["default"])["sharing"]["timeSlicing"]
    assert sharing == {
        "renameByDefault": True,
        "failRequestsGreaterThanOne": True,
        "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
    }
    assert plan.outputs["gpuResource"] == "nvidia.com/gpu.shared"
    assert yaml.safe_load(time_slicing_config(2))["version"] == "v1"


def test_gpu_plugin_args_refuse_time_slicing_with_the_oke_addon(pulumi_runtime) -> None:
    with pytest.raises(ValueError, match="time-slicing"):
        GpuDevicePlugin("gpu", GpuDevicePluginArgs(cluster_id="c", owner="okeAddon", streams_per_gpu=2))


def test_ordering_follows_real_dependencies_only(dev: Plan) -> None:
    urn = {r.name: r.urn for r in dev.of_type(RELEASE)}
    depends = {r.name: set(r.dependencies) for r in dev.of_type(RELEASE)}
    default_pool = dev.named("oci:ContainerEngine/nodePool:NodePool", "default").urn
    for name in ("ingress-nginx", "cert-manager", "metrics-server", "kube-prometheus-stack"):
        assert default_pool in depends[name], f"{name}'s pods need the default pool"
    assert urn["kube-prometheus-stack"] in depends["dcgm-exporter"], "its ServiceMonitor needs the operator's CRDs"
    other_releases = set(urn.values())
    assert not depends["nvidia-device-plugin"] & other_releases, "the GPU plugin waits for no other add-on"
    grafana_secret = dev.named("kubernetes:core/v1:Secret", "grafana-admin").urn
    assert grafana_secret not in depends["nvidia-device-plugin"]


def test_prometheus_is_named_and_placed_as_the_stack_outputs_say(dev: Plan) -> None:
    installed = releases(dev)
    assert dev.outputs["prometheusUrl"] == "http://prometheus-stack-prometheus.monitoring.svc:9090"
    assert installed["kube-prometheus-stack"]["values"]["fullnameOverride"] == "prometheus-stack"
    assert installed["kube-prometheus-stack"]["namespace"] == "monitoring"


def test_grafana_password_is_generated_and_never_in_plain_text(dev: Plan, tmp_path: Path) -> None:
    password = dev.named("random:index/randomPassword:RandomPassword", "monitoring-grafana-admin")
    assert password.inputs["length"] == 32
    grafana = releases(dev)["kube-prometheus-stack"]["values"]["grafana"]
    assert grafana["admin"] == {
        "existingSecret": "grafana-admin",
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }
    assert "adminPassword" not in grafana
    assert dev.outputs["grafanaAdminPassword"] == "[secret]"
    secret = dev.manifests()["monitoring.secret.grafana-admin.yaml"]
    assert secret["stringData"] == {"admin-user": "[secret]", "admin-password": "[secret]"}
    dev.write(tmp_path / "dev")
    written = "".join(p.read_text() for p in (tmp_path / "dev").rglob("*") if p.is_file())
    assert OFFLINE_PASSWORD_PREFIX not in written


def test_dashboard_is_loaded_by_the_grafana_sidecar(dev: Plan) -> None:
    config_map = dev.manifests()["monitoring.configmap.pixelstream-dashboard.yaml"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["pixelstream.json"])
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("players", "ready streams", "wanted", "queued", "gpu utilisation", "encoder", "turn"):
        assert topic in titles, topic
    sidecar = releases(dev)["kube-prometheus-stack"]["values"]["grafana"]["sidecar"]["dashboards"]
    assert (sidecar["label"], sidecar["labelValue"], sidecar["enabled"]) == ("grafana_dashboard", "1", True)
    positions = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in dashboard["panels"]]
    assert len(set(positions)) == len(positions), "no two panels on the same spot"


def test_prometheus_selects_every_servicemonitor(dev: Plan) -> None:
    spec = releases(dev)["kube-prometheus-stack"]["values"]["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "50Gi"


def test_each_addon_can_be_switched_off(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        addons={key: {"enabled": False} for key in ADDONS},
        streaming={"enabled": False},
    )
    assert plan.helm_releases() == {}
    assert not plan.of_type(ADDON)
    assert not [r for r in plan.resources if r.type.startswith("kubernetes:")]
    assert "grafanaAdminPassword" not in plan.outputs


def test_monitoring_can_go_without_the_gpu_exporter(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, addons={"dcgmExporter": {"enabled": False}})
    assert set(releases(plan)) == ADDON_CHARTS - {"dcgm-exporter"}


def test_in_cluster_resources_go_through_the_clusters_provider(dev: Plan) -> None:
    provider = dev.named("pulumi:providers:kubernetes", "pixelstream-dev-k8s").urn
    in_cluster = [r for r in dev.resources if r.custom and r.type.startswith("kubernetes:")]
    assert len(in_cluster) >= 15
    for resource in in_cluster:
        assert resource.provider and resource.provider.startswith(provider + "::"), resource.name
