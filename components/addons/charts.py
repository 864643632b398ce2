"""The one table of Helm charts this platform installs, pinned, and the helper that installs one of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..placement import SYSTEM_NODES, NodePlacement

PART_OF = {"app.kubernetes.io/part-of": "pixelstream"}


@dataclass(frozen=True)
class Chart:
    """A Helm chart pinned to one version, from a repository a stack may point at a mirror."""

    name: str
    version: str
    repository: str

    def overridden(self, version: str | None = None, repository: str | None = None) -> Chart:
        return replace(self, version=version or self.version, repository=repository or self.repository)


CHARTS: dict[str, Chart] = {
    chart.name: chart
    for chart in (
        Chart("ingress-nginx", "4.15.1", "https://kubernetes.github.io/ingress-nginx"),
        Chart("cert-manager", "v1.21.1", "https://charts.jetstack.io"),
        Chart("metrics-server", "3.13.1", "https://kubernetes-sigs.github.io/metrics-server/"),
        Chart("kube-prometheus-stack", "88.5.3", "https://prometheus-community.github.io/helm-charts"),
        Chart("dcgm-exporter", "4.8.2", "https://nvidia.github.io/dcgm-exporter/helm-charts"),
        Chart("nvidia-device-plugin", "0.20.0", "https://nvidia.github.io/k8s-device-plugin"),
        # The queue-driven GPU jobs' engines (workloads/gpu_jobs): Kafka through its operator, and KEDA.
        Chart("strimzi-kafka-operator", "1.2.0", "https://strimzi.io/charts/"),
        Chart("keda", "2.20.2", "https://kedacore.github.io/charts"),
        # Players' sign-in with an OpenID Connect provider (workloads/pixel_streaming/sign_in.py).
        Chart("oauth2-proxy", "10.7.0", "https://oauth2-proxy.github.io/manifests"),
    )
}


# The namespace of each add-on's release (tests check the components declare exactly these).
ADDON_NAMESPACES: dict[str, str] = {
    "ingress-nginx": "ingress-nginx",
    "cert-manager": "cert-manager",
    "metrics-server": "metrics-server",
    "kube-prometheus-stack": "monitoring",
    "dcgm-exporter": "dcgm-exporter",
    "nvidia-device-plugin": "nvidia-device-plugin",
}
# The namespaces of the engines a workload installs from the chart table (the GPU jobs' Kafka operator and KEDA):
# reserved like the add-ons' (no workload may take one).
ENGINE_NAMESPACES: dict[str, str] = {"strimzi-kafka-operator": "strimzi", "keda": "keda"}
# The charts a workload installs into its own namespace (the streaming workload's players' sign-in).
WORKLOAD_CHARTS = ("oauth2-proxy",)


@dataclass(kw_only=True)
class ReleaseArgs:
    """What every Helm-based component takes: its chart, the stack's value overrides, what it waits for."""

    chart: Chart
    values: Mapping[str, Any] = field(default_factory=dict)
    """Deep-merged over the component's own chart values."""
    depends_on: Sequence[pulumi.Resource] = ()
    """Resources the release needs first, e.g. the node pool its pods run on."""
    nodes: NodePlacement = SYSTEM_NODES
    """The nodes its pods run on (the system nodes, or the GPU nodes for the GPU add-ons)."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`, in a new mapping: mappings merge key by key, anything else (lists included) is
    replaced. Neither argument is modified."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def namespace(name: str, parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource] = ()) -> k8s.core.v1.Namespace:
    return k8s.core.v1.Namespace(
        name,
        metadata={"name": name, "labels": PART_OF},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def release(
    parent: pulumi.Resource,
    args: ReleaseArgs,
    namespace: k8s.core.v1.Namespace,
    values: Mapping[str, Any],
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.helm.v3.Release:
    """Install `args.chart` into `namespace` with our values and the stack's overrides deep-merged over them."""
    chart = args.chart
    return k8s.helm.v3.Release(
        chart.name,
        name=chart.name,
        chart=chart.name,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository),
        namespace=namespace.metadata["name"],
        values=deep_merge(values, args.values),
        # Helm waits for the release's workloads, so whatever depends on it finds it serving.
        skip_await=False,
        timeout=600,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[*args.depends_on, *depends_on]),
    )
