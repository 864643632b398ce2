"""Sessions: the session service (session/app.py) in the workload's namespace: the player page, the queue, one
stream per authenticated player, the signalling relay and each session's TURN credentials.

It runs as one pod (the queue and the sessions are in its memory; a second replica would hand a stream out
twice), replaced rather than doubled on an update. It may read the stream pods and mark the busy ones (a
namespaced Role: pods, get/list/patch; the one ConfigMap of the builds, get), scale the stream Deployments (their
scale subresource, get/patch, by name) and list the TURN nodes (nodes, list: they are cluster-scoped). It reads the
builds, their weights and their scaling from that ConfigMap every few seconds: a new weight or buffer reaches it
without replacing its pod, which would end every session (the Kubernetes provider replaces a ConfigMap whose data
changes, deleting it first, unless `enableConfigMapMutable`: pulumi-kubernetes#1567, #1926; while it is gone, the
service keeps the builds it has).

RBAC cannot say which fields a patch may touch, and `patch` on pods could swap a container's image: an admission
policy holds the service (the one workload the internet talks to) to the two annotations it writes, on stream
pods only, so that a compromised session service cannot run code of its choice on a GPU node. A second one holds
its scale writes to each build's maxReplicas: no more GPUs than the stack allows, whatever it is made to write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ...addons.charts import PART_OF
from ...constants import BUILD_LABEL, SESSION_SERVICE, STREAM_DEPLOYMENT, TURN_DAEMONSET
from ...placement import TURN_NODES, NodePlacement
from ..kubernetes import (
    account_with_role,
    api_access_mount,
    api_access_volume,
    disruption_budget,
    http_probe,
    image_pull_secrets,
    labels,
    node_reader,
    pod_security_context,
    resources,
    security_context,
)
from .session.schedule import CapacitySchedule
from .streaming import SIGNALLING_PLAYER_PORT, StreamBuild

SESSION_HTTP_PORT = 8080
SESSION_METRICS_PORT = 9000
SESSION_UID = 10001
# The player page bundles of the image (session/Dockerfile copies player/dist/ue<version> there).
PLAYER_ROOT = "/app/player"
LINK_SECRET = "launch-link-secret"
LINK_SECRET_KEY = "hs256-secret"
BUILDS_CONFIG = "session-builds"
BUILDS_KEY = "builds.json"
# The players' state (sessions, the queue, the launch links spent), which the service writes and the next
# instance of it reads: an update or a drain of the service keeps the players (session/app.py, state).
STATE_SECRET = "session-state"
STATE_KEY = "state"

AuthMode = Literal["oidc", "signedLinks", "none"]

# What the session service writes on a stream pod while a player holds it (session/streams.py busy_annotations).
BUSY_ANNOTATIONS = ("controller.kubernetes.io/pod-deletion-cost", "cluster-autoscaler.kubernetes.io/safe-to-evict")


@dataclass
class SignedLinkSettings:
    audience: str = "pixelstream"
    max_lifetime_seconds: int = 300
    jwks_url: str | None = None
    """RS256/ES256 links signed by the portal's keys at this URL; None: HS256 with a secret this stack makes."""
    issuer: str | None = None


@dataclass
class OidcSettings:
    issuer_url: str
    client_id: str
    client_secret: pulumi.Input[str]
    scopes: Sequence[str] = ("openid", "email", "profile")
    email_domains: Sequence[str] = ("*",)
    """Players whose (verified) e-mail address is in one of these domains may sign in; `*`: any."""
    allowed_groups: Sequence[str] = ()
    jwks_url: str | None = None
    """Where the ID tokens' signing keys are; None: the issuer's discovery document says."""
    token_issuer: str | None = None
    """The ID tokens' `iss` when the provider's discovery document at `issuer_url` names another issuer than its
    own URL (OCI IAM identity domains: `https://identity.oraclecloud.com/`)."""


@dataclass
class PlayerAuth:
    mode: AuthMode = "none"
    signed_links: SignedLinkSettings = field(default_factory=SignedLinkSettings)
    oidc: OidcSettings | None = None


@dataclass
class QueueSettings:
    max_players: int = 500
    claim_seconds: int = 30
    reconnect_seconds: int = 20
    max_session_seconds: int = 0
    cold_start_seconds: int = 120


@dataclass(kw_only=True)
class SessionsArgs:
    namespace: pulumi.Input[str]
    image: str
    builds: Sequence[StreamBuild]
    auth: PlayerAuth
    queue: QueueSettings = field(default_factory=QueueSettings)
    scale_down_seconds: int = 30
    """How long a build must have wanted fewer streams before the service scales it down."""
    schedules: Sequence[CapacitySchedule] = ()
    turn_secret_name: pulumi.Input[str]
    turn_secret_key: str
    turn_ttl_seconds: int = 300
    turn_tls_url: str | None = None
    cookie_secure: bool = True
    path_prefix: str = ""
    image_pull_secrets: Sequence[str] = ()
    turn_nodes: NodePlacement = TURN_NODES
    depends_on: Sequence[pulumi.Resource] = ()
    """What the session service's Deployment waits for: the pool it runs on."""


class Sessions(pulumi.ComponentResource):
    """Outputs: `service` (its name), `launch_link_secret` (secret; HS256 signed links only) for the portal."""

    service: str
    launch_link_secret: pulumi.Output[str] | None

    def __init__(self, name: str, args: SessionsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:Sessions", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        deployments = sorted(build.deployment for build in args.builds)
        rules = [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "patch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [BUILDS_CONFIG], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [STATE_SECRET], "verbs": ["get", "patch"]},
            {
                "apiGroups": ["apps"],
                "resources": ["deployments/scale"],
                "resourceNames": deployments,
                "verbs": ["get", "patch"],
            },
        ]
        account = account_with_role(SESSION_SERVICE, "session-streams", ns, rules, self)
        user = pulumi.Output.concat("system:serviceaccount:", ns, f":{SESSION_SERVICE}")
        pod_rule = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods"]}
        _session_policy("pod-patches", ns, user, pod_rule, pod_patch_policy_rules(), self)
        scale_rule = {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "operations": ["UPDATE"],
            "resources": ["deployments/scale"],
        }
        _session_policy("scale-bounds", ns, user, scale_rule, scale_policy_rules(args.builds), self)
        node_reader(SESSION_SERVICE, ns, ["list"], "the session service lists the TURN nodes", self, account)
        k8s.core.v1.ConfigMap(
            BUILDS_CONFIG,
            metadata={"name": BUILDS_CONFIG, "namespace": ns, "labels": PART_OF},
            data={BUILDS_KEY: builds_document(args.builds, args.scale_down_seconds, args.schedules)},
            opts=child,
        )
        # Declared empty, written by the service alone: Pulumi leaves its data to the service.
        k8s.core.v1.Secret(
            STATE_SECRET,
            metadata={"name": STATE_SECRET, "namespace": ns, "labels": PART_OF},
            type="Opaque",
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["data", "stringData"]),
        )
        volumes = [
            api_access_volume(),
            _secret_volume("turn", args.turn_secret_name),
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        ]
        self.launch_link_secret = None
        if args.auth.mode == "signedLinks" and args.auth.signed_links.jwks_url is None:
            secret = random.RandomPassword(f"{name}-launch-link-secret", length=64, special=False, opts=child)
            k8s.core.v1.Secret(
                LINK_SECRET,
                metadata={"name": LINK_SECRET, "namespace": ns, "labels": PART_OF},
                string_data={LINK_SECRET_KEY: pulumi.Output.secret(secret.result)},
                opts=child,
            )
            volumes.append(_secret_volume("link", LINK_SECRET))
            self.launch_link_secret = pulumi.Output.secret(secret.result)
        session_labels = labels(SESSION_SERVICE)
        k8s.apps.v1.Deployment(
            SESSION_SERVICE,
            metadata={"name": SESSION_SERVICE, "namespace": ns, "labels": session_labels},
            spec={
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": session_labels},
                "template": {
                    "metadata": {"labels": session_labels},
                    "spec": {
                        "serviceAccountName": account,
                        # The projected token volume below is the one way in: mounted into this container only.
                        "automountServiceAccountToken": False,
                        "imagePullSecrets": image_pull_secrets(args.image_pull_secrets),
                        "securityContext": pod_security_context(fs_group=SESSION_UID),
                        "containers": [_session_container(args, with_link_secret=self.launch_link_secret is not None)],
                        "volumes": volumes,
                    },
                },
            },
            # Pulumi waits for its rollout: the nodes it runs on first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        k8s.core.v1.Service(
            SESSION_SERVICE,
            metadata={
                "name": SESSION_SERVICE,
                "namespace": ns,
                "labels": session_labels,
                # Scraped through the Service: its series carry the `service` label, as the dashboard's queries expect.
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(SESSION_METRICS_PORT)},
            },
            spec={
                "selector": session_labels,
                "ports": [
                    {"name": "http", "port": 80, "targetPort": "http"},
                    {"name": "metrics", "port": SESSION_METRICS_PORT, "targetPort": "metrics"},
                ],
            },
            opts=child,
        )
        disruption_budget(SESSION_SERVICE, ns, session_labels, self)
        self.service = SESSION_SERVICE
        self.register_outputs({"service": SESSION_SERVICE})


def pod_patch_policy_rules() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(variables, validations) of the admission policy on the session service's pod updates: CEL, as the API
    server evaluates it (ValidatingAdmissionPolicy, admissionregistration.k8s.io/v1, GA in Kubernetes 1.30)."""
    allowed = "[" + ", ".join(f"'{a}'" for a in BUSY_ANNOTATIONS) + "]"
    stream = f"'{STREAM_DEPLOYMENT}'"

    def or_empty(path: str, empty: str) -> str:
        return f"(has({path}) ? {path} : {empty})"

    unchanged = [("labels", "{}"), ("ownerReferences", "[]"), ("finalizers", "[]")]
    variables = [
        {"name": "before", "expression": or_empty("oldObject.metadata.annotations", "{}")},
        {"name": "after", "expression": or_empty("object.metadata.annotations", "{}")},
        {"name": "allowed", "expression": allowed},
    ]
    validations = [
        {
            "expression": f"has(oldObject.metadata.labels) && 'app.kubernetes.io/name' in oldObject.metadata.labels "
            f"&& oldObject.metadata.labels['app.kubernetes.io/name'] == {stream}",
            "message": "the session service may change stream pods only",
        },
        {"expression": "object.spec == oldObject.spec", "message": "the session service may not change a pod's spec"},
        *(
            {
                "expression": f"{or_empty(f'object.metadata.{name}', empty)} == "
                f"{or_empty(f'oldObject.metadata.{name}', empty)}",
                "message": f"the session service may not change a pod's {name}",
            }
            for name, empty in unchanged
        ),
        {
            "expression": "variables.after.all(k, k in variables.allowed || (k in variables.before && "
            "variables.before[k] == variables.after[k])) && "
            "variables.before.all(k, k in variables.allowed || k in variables.after)",
            "message": f"the session service may change only the annotations {', '.join(BUSY_ANNOTATIONS)}",
        },
    ]
    return variables, validations


def scale_policy_rules(builds: Sequence[StreamBuild]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(variables, validations) of the admission policy on the session service's scale writes (the Scale object
    of autoscaling/v1 the API server hands it for deployments/scale): a stream Deployment, at most its build's
    maxReplicas."""
    bounds = "{" + ", ".join(f"'{b.deployment}': {b.max_replicas}" for b in sorted(builds, key=lambda b: b.name)) + "}"
    variables = [{"name": "maxReplicas", "expression": bounds}]
    validations = [
        {
            "expression": "object.metadata.name in variables.maxReplicas",
            "message": "the session service may scale the stream Deployments only",
        },
        {
            "expression": "!(object.metadata.name in variables.maxReplicas) || (has(object.spec.replicas) ? "
            "object.spec.replicas : 0) <= variables.maxReplicas[object.metadata.name]",
            "message": "the session service may not scale a build beyond its maxReplicas",
        },
    ]
    return variables, validations


def _session_policy(
    name: str,
    namespace: pulumi.Input[str],
    user: pulumi.Output[str],
    rule: dict[str, Any],
    rules: tuple[list[dict[str, str]], list[dict[str, str]]],
    parent: pulumi.Resource,
) -> None:
    """An admission policy on the session service's own requests (`rule`) in its namespace, denying what fails."""
    child = pulumi.ResourceOptions(parent=parent)
    variables, validations = rules
    # Cluster-scoped: named after the namespace, like the node readers, so that two workloads do not collide.
    policy_name = pulumi.Output.concat("pixelstream-", namespace, f"-{SESSION_SERVICE}-{name}")
    policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
        f"{SESSION_SERVICE}-{name}",
        metadata={"name": policy_name, "labels": PART_OF},
        spec={
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [rule]},
            "matchConditions": [
                {
                    "name": "by-the-session-service",
                    "expression": user.apply(lambda name: f"request.userInfo.username == '{name}'"),
                }
            ],
            "variables": variables,
            "validations": validations,
        },
        opts=child,
    )
    k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
        f"{SESSION_SERVICE}-{name}",
        metadata={"name": policy_name, "labels": PART_OF},
        spec={
            "policyName": policy.metadata["name"],
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            },
        },
        opts=child,
    )


def builds_document(
    builds: Sequence[StreamBuild], scale_down_seconds: int, schedules: Sequence[CapacitySchedule] = ()
) -> str:
    """What the session service reads from the ConfigMap (session/app.py read_builds)."""
    entries = [
        {
            "name": b.name,
            "weight": b.weight,
            "unrealVersion": b.unreal_version,
            "deployment": b.deployment,
            "bufferStreams": b.buffer_streams,
            "minReplicas": b.min_replicas,
            "maxReplicas": b.max_replicas,
        }
        for b in builds
    ]
    document = {
        "scaleDownSeconds": scale_down_seconds,
        "builds": entries,
        "schedules": [schedule.document() for schedule in schedules],
    }
    return json.dumps(document, indent=2) + "\n"


def _secret_volume(name: str, secret: pulumi.Input[str]) -> dict[str, Any]:
    return {"name": f"{name}-secret", "secret": {"secretName": secret, "defaultMode": 0o440}}


def session_environment(args: SessionsArgs, with_link_secret: bool) -> list[dict[str, str]]:
    """The session service's settings (session/app.py reads each)."""
    queue, links, oidc = args.queue, args.auth.signed_links, args.auth.oidc
    values: dict[str, str | int | None] = {
        "STREAM_SELECTOR": f"app.kubernetes.io/name={STREAM_DEPLOYMENT},{BUILD_LABEL}",
        "BUILDS_CONFIG_MAP": f"{BUILDS_CONFIG}/{BUILDS_KEY}",
        "STATE_SECRET": f"{STATE_SECRET}/{STATE_KEY}",
        "SIGNALLING_PORT": SIGNALLING_PLAYER_PORT,
        "TURN_SECRET_FILE": f"/secrets/turn/{args.turn_secret_key}",
        "TURN_TTL_SECONDS": args.turn_ttl_seconds,
        "TURN_NODE_SELECTOR": args.turn_nodes.label_selector(),
        "TURN_POD_SELECTOR": f"app.kubernetes.io/name={TURN_DAEMONSET}",
        "TURN_TLS_URL": args.turn_tls_url,
        "AUTH_MODE": args.auth.mode,
        "CLAIM_SECONDS": queue.claim_seconds,
        "RECONNECT_SECONDS": queue.reconnect_seconds,
        "MAX_SESSION_SECONDS": queue.max_session_seconds,
        "MAX_QUEUE": queue.max_players,
        "COLD_START_SECONDS": queue.cold_start_seconds,
        "COOKIE_SECURE": "true" if args.cookie_secure else "false",
        "COOKIE_PATH": f"{args.path_prefix}/",
        "PLAYER_ROOT": PLAYER_ROOT,
        "PORT": SESSION_HTTP_PORT,
        "METRICS_PORT": SESSION_METRICS_PORT,
    }
    if args.auth.mode == "signedLinks":
        values |= {
            "LINK_AUDIENCE": links.audience,
            "LINK_MAX_LIFETIME_SECONDS": links.max_lifetime_seconds,
            "LINK_ISSUER": links.issuer,
            "LINK_JWKS_URL": links.jwks_url,
            "LINK_SECRET_FILE": f"/secrets/link/{LINK_SECRET_KEY}" if with_link_secret else None,
        }
    if args.auth.mode == "oidc" and oidc is not None:
        values |= {
            "OIDC_ISSUER": oidc.token_issuer or oidc.issuer_url,
            "OIDC_DISCOVERY_URL": oidc.issuer_url if oidc.token_issuer else None,
            "OIDC_CLIENT_ID": oidc.client_id,
            "OIDC_JWKS_URL": oidc.jwks_url,
        }
    env = [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    env += [{"name": k, "value": str(v)} for k, v in values.items() if v is not None]
    return env


def _session_container(args: SessionsArgs, with_link_secret: bool) -> dict[str, Any]:
    mounts = [
        api_access_mount(),
        {"name": "turn-secret", "mountPath": "/secrets/turn", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if with_link_secret:
        mounts.append({"name": "link-secret", "mountPath": "/secrets/link", "readOnly": True})
    return {
        "name": SESSION_SERVICE,
        "image": args.image,
        "env": session_environment(args, with_link_secret),
        "ports": [
            {"name": "http", "containerPort": SESSION_HTTP_PORT},
            {"name": "metrics", "containerPort": SESSION_METRICS_PORT},
        ],
        "readinessProbe": http_probe("/healthz", "http", period=5),
        "livenessProbe": http_probe("/livez", "http", period=20),
        "volumeMounts": mounts,
        "securityContext": security_context(SESSION_UID),
        "resources": resources("100m", "128Mi", "1", "512Mi"),
    }
