"""Building blocks of the streaming workload's pods: security contexts, resources, probes, helper scripts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ..addons.charts import PART_OF
from ..constants import INGRESS_CLASS
from ..placement import GPU_NODES, NodePlacement
from ..quantities import quantity

# Helper programs every workload's own programs may import (the Kubernetes API client).
SHARED_HELPERS = Path(__file__).parent / "app"
HELPERS_MOUNT = "/helpers"


def security_context(user: int = 10001, read_only: bool = True, add_capabilities: Sequence[str] = ()) -> dict[str, Any]:
    """Non-root, no privilege escalation, every capability dropped but those named."""
    capabilities: dict[str, Any] = {"drop": ["ALL"]}
    if add_capabilities:
        capabilities["add"] = list(add_capabilities)
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only,
        "capabilities": capabilities,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(fs_group: int | None = None, non_root: bool = True) -> dict[str, Any]:
    context: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if non_root:
        context["runAsNonRoot"] = True
    if fs_group is not None:
        # Give a volume the group once, not at every mount: a large one (Isaac Sim's caches) would be walked file
        # by file at each start otherwise.
        context |= {"fsGroup": fs_group, "fsGroupChangePolicy": "OnRootMismatch"}
    return context


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}


def cpu_millis(text: str) -> int:
    """A CPU quantity (`3750m`, `4`, `0.5`) in millicores, rounded up."""
    return math.ceil(quantity(text) * 1000)


def memory_bytes(text: str) -> int:
    """A memory quantity (`8Gi`, `512Mi`, `1G`, `1048576`) in bytes, rounded up."""
    return math.ceil(quantity(text))


def gpu_node_affinity(nodes: NodePlacement = GPU_NODES) -> dict[str, Any]:
    """Required node affinity for the GPU nodes (their labels), as every GPU workload here uses."""
    return nodes.required_affinity()


def http_probe(
    path: str, port: int | str, period: int = 10, failures: int = 3, initial_delay: int = 0
) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "initialDelaySeconds": initial_delay,
        "timeoutSeconds": 3,
    }


def image_pull_secrets(names: Sequence[str]) -> list[dict[str, str]]:
    """A pod's `imagePullSecrets` from Secret names."""
    return [{"name": name} for name in names]


def labels(component: str) -> dict[str, str]:
    return {**PART_OF, "app.kubernetes.io/name": component}


def helpers_config_map(
    name: str, namespace: pulumi.Input[str], scripts: Sequence[Path], parent: pulumi.Resource
) -> k8s.core.v1.ConfigMap:
    """A workload's helper programs (with the shared ones) as a ConfigMap, mounted at /helpers and run with the
    pinned Python image: no image of our own to build, scan and host."""
    programs = [SHARED_HELPERS / "kube.py", *scripts]
    return k8s.core.v1.ConfigMap(
        name,
        metadata={"name": name, "namespace": namespace, "labels": PART_OF},
        data={program.name: program.read_text() for program in programs},
        opts=pulumi.ResourceOptions(parent=parent),
    )


def helpers_volume(config_map: k8s.core.v1.ConfigMap) -> dict[str, Any]:
    return {"name": "helpers", "configMap": {"name": config_map.metadata["name"], "defaultMode": 0o444}}


def helpers_mount() -> dict[str, Any]:
    return {"name": "helpers", "mountPath": HELPERS_MOUNT, "readOnly": True}


def helper_command(script: str) -> list[str]:
    """Run one of the helper scripts with the Python image."""
    return ["python", f"{HELPERS_MOUNT}/{script}"]


def disruption_budget(
    name: str,
    namespace: pulumi.Input[str],
    selector: dict[str, str],
    parent: pulumi.Resource,
    aliases: Sequence[pulumi.Alias] = (),
) -> None:
    """At most one pod of `name` away at a time: node drains proceed one pod after another, never blocked."""
    k8s.policy.v1.PodDisruptionBudget(
        name,
        metadata={"name": name, "namespace": namespace, "labels": selector},
        spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        opts=pulumi.ResourceOptions(parent=parent, aliases=list(aliases)),
    )


@dataclass
class BasicAuth:
    """Generated basic-auth credentials: the Secret that holds them hashed, and both parts as Pulumi secrets."""

    secret_name: pulumi.Output[str]
    username: pulumi.Output[str]
    password: pulumi.Output[str]


def basic_auth(
    password_name: str, secret_name: str, namespace: pulumi.Input[str], user: str, key: str, parent: pulumi.Resource
) -> BasicAuth:
    """A random password (pulumi_random) for `user`, stored only as its bcrypt hash: one htpasswd line
    `user:hash` under `key` of Secret `secret_name`, the form both Traefik and ingress-nginx read."""
    child = pulumi.ResourceOptions(parent=parent)
    password = random.RandomPassword(password_name, length=32, special=False, opts=child)
    secret = k8s.core.v1.Secret(
        secret_name,
        metadata={"name": secret_name, "namespace": namespace, "labels": PART_OF},
        string_data={key: pulumi.Output.secret(password.bcrypt_hash).apply(lambda h: f"{user}:{h}\n")},
        opts=child,
    )
    return BasicAuth(secret.metadata["name"], pulumi.Output.secret(user), pulumi.Output.secret(password.result))


def account_with_role(
    account: str, role: str, namespace: pulumi.Input[str], rules: Sequence[Mapping[str, Any]], parent: pulumi.Resource
) -> pulumi.Output[str]:
    """A service account bound to a namespaced Role of exactly `rules`; returns the account's name."""
    child = pulumi.ResourceOptions(parent=parent)
    service_account = k8s.core.v1.ServiceAccount(
        account, metadata={"name": account, "namespace": namespace, "labels": PART_OF}, opts=child
    )
    granted = k8s.rbac.v1.Role(
        role, metadata={"name": role, "namespace": namespace, "labels": PART_OF}, rules=list(rules), opts=child
    )
    k8s.rbac.v1.RoleBinding(
        role,
        metadata={"name": role, "namespace": namespace, "labels": PART_OF},
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": granted.metadata["name"]},
        subjects=[{"kind": "ServiceAccount", "name": service_account.metadata["name"], "namespace": namespace}],
        opts=child,
    )
    return service_account.metadata["name"]


def node_reader(
    name: str,
    namespace: pulumi.Input[str],
    verbs: list[str],
    why: str,
    parent: pulumi.Resource,
    account: pulumi.Input[str] | None = None,
) -> pulumi.Input[str]:
    """Read-only access to Node objects (cluster-scoped, hence a ClusterRole) for a service account of the app
    namespace: `account`, or a new one named `name`. Returns the account's name."""
    child = pulumi.ResourceOptions(parent=parent)
    if account is None:
        created = k8s.core.v1.ServiceAccount(
            name, metadata={"name": name, "namespace": namespace, "labels": PART_OF}, opts=child
        )
        account = created.metadata["name"]
    role_name = pulumi.Output.concat("pixelstream-", namespace, f"-{name}-nodes")
    role = k8s.rbac.v1.ClusterRole(
        f"{name}-nodes",
        metadata={"name": role_name, "labels": PART_OF, "annotations": {"pixelstream/why": why}},
        rules=[{"apiGroups": [""], "resources": ["nodes"], "verbs": verbs}],
        opts=child,
    )
    k8s.rbac.v1.ClusterRoleBinding(
        f"{name}-nodes",
        metadata={"name": role_name, "labels": PART_OF},
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.metadata["name"]},
        subjects=[{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        opts=child,
    )
    return account


def regex_ingress(
    name: str,
    namespace: pulumi.Input[str],
    routes: Sequence[tuple[str, str, int]],
    annotations: Mapping[str, pulumi.Input[str]],
    host: str | None,
    cluster_issuer: str | None,
    opts: pulumi.ResourceOptions,
    certificate_of: str | None = None,
) -> str:
    """An Ingress of class nginx: each route (a path regex with one group, a Service, its port) rewritten to `/`
    plus the group; on `host` (every host without one), with a certificate from `cluster_issuer` (Secret
    `<name>-tls`; with `certificate_of`, the certificate of that Ingress of the same host, not one more) and HTTP
    always redirected to HTTPS when both are set. Returns the base URL players or operators use."""
    annotations = {
        "nginx.ingress.kubernetes.io/use-regex": "true",
        "nginx.ingress.kubernetes.io/rewrite-target": "/$1",
        **annotations,
    }
    paths = [
        {"path": path, "pathType": "ImplementationSpecific", "backend": {"service": {"name": s, "port": {"number": n}}}}
        for path, s, n in routes
    ]
    rule: dict[str, Any] = {"http": {"paths": paths}}
    spec: dict[str, Any] = {"ingressClassName": INGRESS_CLASS, "rules": [rule]}
    if host:
        rule["host"] = host
        if cluster_issuer:
            if certificate_of is None:
                annotations["cert-manager.io/cluster-issuer"] = cluster_issuer
            spec["tls"] = [{"hosts": [host], "secretName": f"{certificate_of or name}-tls"}]
            # ingress-nginx redirects to HTTPS only once the certificate exists (lua_ingress.lua, v1.15.1); until
            # cert-manager has it, a route behind basic auth would ask for the password over plain HTTP.
            annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] = "true"
    k8s.networking.v1.Ingress(
        name,
        metadata={"name": name, "namespace": namespace, "labels": labels("ingress"), "annotations": annotations},
        spec=spec,
        opts=opts,
    )
    scheme = "https" if host and cluster_issuer else "http"
    return f"{scheme}://{host or '<ingress-load-balancer-ip>'}"


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def api_access_volume() -> dict[str, Any]:
    """The service-account token, CA and namespace as a volume, for pods that switch off automounting so that
    only the one container that calls the API gets a token (mount it with `api_access_mount`)."""
    return {
        "name": "kube-api-access",
        "projected": {
            "defaultMode": 0o444,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ],
        },
    }


def api_access_mount() -> dict[str, Any]:
    return {"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}
