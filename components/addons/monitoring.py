"""Monitoring: kube-prometheus-stack with the annotation-driven scrape jobs the autoscaler depends on,
Grafana with a generated admin password, and the pixel-streaming dashboard."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ..constants import GRAFANA_DASHBOARD_LABEL, OKE_STORAGE_CLASS
from .alerts import (
    RECEIVER_SECRET,
    RECEIVER_SECRET_KEY,
    AlertReceiver,
    AlertThresholds,
    alert_rules,
    alertmanager_config,
)
from .charts import CHARTS, PART_OF, Chart, ReleaseArgs, namespace, release
from .dashboard import dashboard

NAMESPACE = "monitoring"
FULLNAME = "prometheus-stack"
PROMETHEUS_PORT = 9090
GRAFANA_ADMIN_SECRET = "grafana-admin"


def _annotation(kind: str, name: str) -> str:
    return f"__meta_kubernetes_{kind}_annotation_prometheus_io_{name}"


def _scrape_job(
    job: str, role: str, kind: str, identity: dict[str, str], filters: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A job that scrapes every `kind` (service or pod) annotated `prometheus.io/scrape: "true"`, honouring
    the `prometheus.io/scheme`, `/path` and `/port` annotations, labelling series with `identity`, after the
    relabelling rules `filters`."""
    relabel: list[dict[str, Any]] = [
        {"source_labels": [_annotation(kind, "scrape")], "action": "keep", "regex": "true"},
        {
            "source_labels": [_annotation(kind, "scheme")],
            "action": "replace",
            "target_label": "__scheme__",
            "regex": "(https?)",
        },
        {
            "source_labels": [_annotation(kind, "path")],
            "action": "replace",
            "target_label": "__metrics_path__",
            "regex": "(.+)",
        },
        {
            "source_labels": ["__address__", _annotation(kind, "port")],
            "action": "replace",
            "target_label": "__address__",
            "regex": r"([^:]+)(?::\d+)?;(\d+)",
            "replacement": "$1:$2",
        },
        {
            "action": "labelmap",
            "regex": f"__meta_kubernetes_{kind}_annotation_prometheus_io_param_(.+)",
            "replacement": "__param_$1",
        },
        {"action": "labelmap", "regex": f"__meta_kubernetes_{kind}_label_(.+)"},
    ]
    relabel += [
        {"source_labels": [meta], "action": "replace", "target_label": label} for label, meta in identity.items()
    ]
    relabel += filters
    return {
        "job_name": job,
        "scrape_interval": "10s",
        "scrape_timeout": "10s",
        "kubernetes_sd_configs": [{"role": role}],
        "relabel_configs": relabel,
    }


# Pod discovery yields one target per declared container port (and one per container without ports, init
# containers included), each rewritten to the annotated port: unless only the target of the declared metrics
# port is kept, a pod's metrics are scraped once per container under different `container` labels, and sums
# over them double.
ONE_TARGET_PER_POD: list[dict[str, Any]] = [
    # Pods that are not running have nothing to scrape.
    {"source_labels": ["__meta_kubernetes_pod_phase"], "action": "drop", "regex": "Pending|Succeeded|Failed|Completed"},
    {"source_labels": [_annotation("pod", "port")], "action": "replace", "target_label": "__tmp_metrics_port"},
    {
        "source_labels": ["__meta_kubernetes_pod_container_port_number"],
        "action": "keepequal",
        "target_label": "__tmp_metrics_port",
    },
]

# Equivalent to the reference's jobs: Services annotated for scraping give series with `namespace` and
# `service` (the session service's series, per build); annotated pods give `namespace`, `pod` and `node`
# (TURN pods use the host network: `node` names the TURN node). A pod's metrics port must be declared in its
# container's ports.
SCRAPE_CONFIGS: list[dict[str, Any]] = [
    _scrape_job(
        "kubernetes-service-endpoints",
        "endpointslice",
        "service",
        {
            "namespace": "__meta_kubernetes_namespace",
            "service": "__meta_kubernetes_service_name",
            "node": "__meta_kubernetes_pod_node_name",
        },
    ),
    _scrape_job(
        "kubernetes-pods",
        "pod",
        "pod",
        {
            "namespace": "__meta_kubernetes_namespace",
            "pod": "__meta_kubernetes_pod_name",
            "container": "__meta_kubernetes_pod_container_name",
            "node": "__meta_kubernetes_pod_node_name",
        },
        ONE_TARGET_PER_POD,
    ),
]

# OKE's managed control plane does not expose kube-controller-manager, kube-scheduler or etcd to the cluster,
# and kube-proxy serves its metrics on its default metricsBindAddress, 127.0.0.1:10249, out of Prometheus's
# reach: their monitors, dashboards and rules would scrape nothing and their "down" alerts would fire forever.
UNREACHABLE_COMPONENTS = ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy")


@dataclass(kw_only=True)
class MonitoringArgs(ReleaseArgs):
    retention: str = "15d"
    storage_gbs: int = 50
    """Prometheus volume size."""
    storage_class: str | None = OKE_STORAGE_CLASS
    """Its storage class: OKE's block volumes by default; None takes the cluster's default class."""
    alerts_namespace: str | None = None
    """Namespace of the streaming workload whose alerts to install (`alerts.alert_rules`); None: the GPU
    alerts only."""
    alert_thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    alert_receiver: AlertReceiver | None = None
    """Where Alertmanager sends alerts; None: nowhere (Alertmanager's UI only)."""
    chart: Chart = CHARTS["kube-prometheus-stack"]


class Monitoring(pulumi.ComponentResource):
    """Prometheus, Alertmanager, Grafana and the operator.

    Outputs: `prometheus_url` (in-cluster, without port), `prometheus_port`, `grafana_admin_password`
    (secret), `release` (what ServiceMonitor users wait for), `namespace`.
    """

    prometheus_url: str
    prometheus_port: int
    grafana_admin_password: pulumi.Output[str]
    release: k8s.helm.v3.Release
    namespace: str

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = namespace(NAMESPACE, self)
        password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False, opts=child)
        # Secret already through the provider's schema; wrapped again so no consumer can lose that marking.
        admin_password = pulumi.Output.secret(password.result)
        admin = k8s.core.v1.Secret(
            GRAFANA_ADMIN_SECRET,
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": ns.metadata["name"], "labels": PART_OF},
            string_data={"admin-user": "admin", "admin-password": admin_password},
            opts=child,
        )
        k8s.core.v1.ConfigMap(
            "pixelstream-dashboard",
            metadata={
                "name": "pixelstream-dashboard",
                "namespace": ns.metadata["name"],
                "labels": {**PART_OF, GRAFANA_DASHBOARD_LABEL[0]: GRAFANA_DASHBOARD_LABEL[1]},
            },
            data={"pixelstream.json": json.dumps(dashboard(), indent=2)},
            opts=child,
        )
        on_default_pool = {"nodeSelector": args.nodes.node_selector()}
        alertmanager: dict[str, Any] = {"alertmanagerSpec": on_default_pool}
        needs = [admin]
        if args.alert_receiver is not None:
            needs.append(self._receiver_secret(args.alert_receiver, ns))
            alertmanager = {
                "alertmanagerSpec": {**on_default_pool, "secrets": [RECEIVER_SECRET]},
                "config": alertmanager_config(args.alert_receiver),
            }
        values = _chart_values(args, alertmanager, on_default_pool)
        self.release = release(self, args, ns, values, depends_on=needs)
        self.namespace = NAMESPACE
        self.prometheus_url = f"http://{FULLNAME}-prometheus.{NAMESPACE}.svc"
        self.prometheus_port = PROMETHEUS_PORT
        self.grafana_admin_password = admin_password
        self.register_outputs(
            {"prometheus_url": self.prometheus_url, "grafana_admin_password": self.grafana_admin_password}
        )

    def _receiver_secret(self, receiver: AlertReceiver, ns: k8s.core.v1.Namespace) -> k8s.core.v1.Secret:
        """The receiver's URL as a Secret that Alertmanager mounts and reads as a file."""
        return k8s.core.v1.Secret(
            RECEIVER_SECRET,
            metadata={"name": RECEIVER_SECRET, "namespace": ns.metadata["name"], "labels": PART_OF},
            string_data={RECEIVER_SECRET_KEY: pulumi.Output.secret(receiver.url)},
            opts=pulumi.ResourceOptions(parent=self),
        )


def _chart_values(
    args: MonitoringArgs, alertmanager: dict[str, Any], on_default_pool: dict[str, Any]
) -> dict[str, Any]:
    """kube-prometheus-stack's values: everything on the default pool, every monitor and rule selected, the
    platform's alerts and scrape jobs, Prometheus on a block volume, Grafana with its admin Secret and dashboard."""
    return {
        "fullnameOverride": FULLNAME,
        "crds": {"enabled": True},
        **{component: {"enabled": False} for component in UNREACHABLE_COMPONENTS},
        "additionalPrometheusRulesMap": {
            "pixelstream": {"groups": alert_rules(args.alerts_namespace, args.alert_thresholds)}
        },
        # The operator, and the Jobs that create and patch its admission webhook's certificate.
        "prometheusOperator": {**on_default_pool, "admissionWebhooks": {"patch": on_default_pool}},
        "alertmanager": alertmanager,
        "prometheus": {
            "prometheusSpec": {
                **on_default_pool,
                # Select every ServiceMonitor/PodMonitor/rule in the cluster, not only this release's.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "retention": args.retention,
                "additionalScrapeConfigs": SCRAPE_CONFIGS,
                "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            **({"storageClassName": args.storage_class} if args.storage_class else {}),
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{args.storage_gbs}Gi"}},
                        }
                    }
                },
            }
        },
        "grafana": {
            **on_default_pool,
            "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": GRAFANA_DASHBOARD_LABEL[0],
                    "labelValue": GRAFANA_DASHBOARD_LABEL[1],
                    "searchNamespace": "ALL",
                }
            },
        },
        "kube-state-metrics": on_default_pool,
    }
