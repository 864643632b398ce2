"""FleetOrchestrator: the orchestration service of the simulation fleet (its REST API and dashboard), run by the
pinned Python image from a ConfigMap, with a namespaced Role that allows exactly what its API does."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ...addons.charts import PART_OF
from ..kubernetes import (
    account_with_role,
    api_access_mount,
    api_access_volume,
    helper_command,
    helpers_config_map,
    helpers_mount,
    helpers_volume,
    http_probe,
    image_pull_secrets,
    labels,
    pod_security_context,
    resources,
    security_context,
)
from .fleet import instance_name, pod_name

ORCHESTRATOR = "sim-orchestrator"
ORCHESTRATOR_PORT = 8080
ORCHESTRATOR_UID = 65534
HELPERS = Path(__file__).parent / "app"
# The operator's password as the service checks it: its SHA-256 only, in a Secret no other pod mounts.
OPERATOR_DIGEST = "sim-operator-digest"
DIGEST_DIR = "/var/run/pixelstream/operator"
# The realm of the service's own basic auth.
REALM = "pixelstream simulation fleet"


def orchestrator_rules(instances: int) -> list[dict[str, Any]]:
    """What the service's API needs, and no more: list pods and StatefulSets (state), scale the instances'
    StatefulSets (start, stop, remove, cleanup), delete their pods (restart), read their logs."""
    statefulsets = [instance_name(i) for i in range(instances)]
    pods = [pod_name(i) for i in range(instances)]
    return [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"], "resourceNames": pods},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"], "resourceNames": pods},
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["list"]},
        {"apiGroups": ["apps"], "resources": ["statefulsets/scale"], "verbs": ["patch"], "resourceNames": statefulsets},
    ]


@dataclass(kw_only=True)
class FleetOrchestratorArgs:
    namespace: pulumi.Input[str]
    python_image: str
    instances: int
    streams: pulumi.Input[str]
    """Each instance's published stream, in order (JSON: host, ports, viewer URL; null when not published)."""
    fleet_config: Mapping[str, Any]
    """What /api/config reports."""
    operator: str
    """The user name the service accepts (basic auth, checked by the service itself)."""
    operator_password: pulumi.Input[str]
    """That user's password (a Pulumi secret); the service gets only its SHA-256."""
    image_pull_secrets: Sequence[pulumi.Input[str]] = ()


def password_digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


class FleetOrchestrator(pulumi.ComponentResource):
    """Outputs: `service`, the name of its Service (port 80), and `deployment`, what a route to it waits for (the
    service checks the operator's credential itself: no route may reach an older version that does not)."""

    service: str
    deployment: k8s.apps.v1.Deployment

    def __init__(self, name: str, args: FleetOrchestratorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:FleetOrchestrator", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        programs = [HELPERS / "sim_orchestrator.py", HELPERS / "dashboard.html"]
        helpers = helpers_config_map("sim-helpers", ns, programs, self)
        account = account_with_role(ORCHESTRATOR, ORCHESTRATOR, ns, orchestrator_rules(args.instances), self)
        digest = k8s.core.v1.Secret(
            OPERATOR_DIGEST,
            metadata={"name": OPERATOR_DIGEST, "namespace": ns, "labels": PART_OF},
            string_data={"sha256": pulumi.Output.secret(args.operator_password).apply(password_digest)},
            opts=child,
        )
        orchestrator_labels = labels(ORCHESTRATOR)
        self.deployment = k8s.apps.v1.Deployment(
            ORCHESTRATOR,
            metadata={"name": ORCHESTRATOR, "namespace": ns, "labels": orchestrator_labels},
            spec={
                # Its state is the cluster's: one replica, replaced on update, is enough for an operator's page.
                "replicas": 1,
                "selector": {"matchLabels": orchestrator_labels},
                "template": {
                    "metadata": {"labels": orchestrator_labels},
                    "spec": {
                        "serviceAccountName": account,
                        "automountServiceAccountToken": False,
                        "imagePullSecrets": image_pull_secrets(args.image_pull_secrets),
                        "securityContext": pod_security_context(fs_group=ORCHESTRATOR_UID),
                        "containers": [_container(args)],
                        "volumes": [
                            helpers_volume(helpers),
                            api_access_volume(),
                            {
                                "name": "operator",
                                "secret": {"secretName": digest.metadata["name"], "defaultMode": 0o440},
                            },
                        ],
                    },
                },
            },
            opts=child,
        )
        k8s.core.v1.Service(
            ORCHESTRATOR,
            metadata={"name": ORCHESTRATOR, "namespace": ns, "labels": orchestrator_labels},
            spec={"selector": orchestrator_labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            opts=child,
        )
        self.service = ORCHESTRATOR
        self.register_outputs({"service": self.service})


def _container(args: FleetOrchestratorArgs) -> dict[str, Any]:
    return {
        "name": ORCHESTRATOR,
        "image": args.python_image,
        "command": helper_command("sim_orchestrator.py"),
        "env": [
            {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "INSTANCES", "value": str(args.instances)},
            {"name": "STREAMS", "value": args.streams},
            {"name": "FLEET_CONFIG", "value": json.dumps(dict(args.fleet_config), sort_keys=True)},
            {"name": "PORT", "value": str(ORCHESTRATOR_PORT)},
            {"name": "AUTH_USER", "value": args.operator},
            {"name": "AUTH_SHA256_FILE", "value": f"{DIGEST_DIR}/sha256"},
            {"name": "AUTH_REALM", "value": REALM},
        ],
        "ports": [{"name": "http", "containerPort": ORCHESTRATOR_PORT}],
        # Health of the process only: while the API is down the page still loads and says so.
        "readinessProbe": http_probe("/healthz", "http", period=10),
        "livenessProbe": http_probe("/healthz", "http", period=20),
        "volumeMounts": [
            helpers_mount(),
            api_access_mount(),
            {"name": "operator", "mountPath": DIGEST_DIR, "readOnly": True},
        ],
        "securityContext": security_context(ORCHESTRATOR_UID),
        "resources": resources("20m", "48Mi", "200m", "128Mi"),
    }
