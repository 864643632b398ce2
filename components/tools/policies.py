"""The platform's policies, for `pulumi preview --policy-pack policy/` and for the offline plan.

They protect stacks that import the components as much as this one: no world-open ingress beyond TURN and
the load-balancer listeners, NVENC on the streaming GPU pool, pinned Helm charts, requests and limits on
every container, no plain-text secrets in Kubernetes Secrets or stack outputs, and a TURN relay that denies
private and link-local peers.

Values Pulumi marks secret reach a policy as `pulumi_policy.Secret` (see `preserve_secret_markers`) or, in
the offline plan, as "[secret]"; anything else is plain text.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)

from ..config_base import world_wide
from ..constants import (
    AI_ORCHESTRATOR,
    AI_ORCHESTRATOR_FILES,
    DEFAULT_RELAY_PORT_RANGE,
    ENVIRONMENTS,
    GPU_NODE_LABEL,
    ISAAC_MEDIA_PORT,
    ISAAC_SIGNAL_PORT,
    LOAD_BALANCER_LISTENER_PORTS,
    PATH_DISCOVERY_ICMP,
    TURN_LISTENING_PORT,
)
from ..oci.shapes import GPU_SHAPES
from .address_set import AddressSet

if TYPE_CHECKING:
    from ..config import StackConfig

REDACTED = "[secret]"
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "CronJob", "Pod", "ScaledJob")
SECRET_OUTPUT = re.compile(r"(password|secret|token|kubeconfig|credential|private.?key)", re.IGNORECASE)


def is_marked_secret(value: Any) -> bool:
    return isinstance(value, Secret) or value == REDACTED


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def plain(value: Any) -> Any:
    """`value` as plain dicts and lists (policy props arrive as read-only proxies), secret markers unwrapped."""
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if _is_list(value):
        return [plain(v) for v in value]
    return value


# -- no world-open ingress ------------------------------------------------------------------------------


def _world(cidr: Any) -> bool:
    try:
        return ipaddress.ip_network(plain(cidr)).prefixlen == 0
    except (TypeError, ValueError):
        return False


def _ports(options: Any) -> tuple[int, int] | None:
    options = plain(options) or {}
    port_range = options.get("destinationPortRange") or options  # NSG rules nest, security lists are flat
    if "min" not in port_range:
        return None
    return int(port_range["min"]), int(port_range["max"])


def world_ingress_problem(
    protocol: str,
    ports: tuple[int, int] | None,
    icmp: Any,
    relay: tuple[int, int],
    allow_api: bool,
    allow_viewers: bool = False,
) -> str | None:
    """Why ingress from 0.0.0.0/0 with this protocol and destination ports is not allowed, or None."""
    icmp = plain(icmp) or {}
    if protocol == "1" and (icmp.get("type"), icmp.get("code")) == PATH_DISCOVERY_ICMP:
        return None
    turn_ports = {(TURN_LISTENING_PORT, TURN_LISTENING_PORT), relay}
    if protocol in ("6", "17") and ports in turn_ports:
        return None
    if protocol == "6" and ports in {(p, p) for p in LOAD_BALANCER_LISTENER_PORTS}:
        return None
    if protocol == "6" and ports == (6443, 6443) and allow_api:
        return None
    streams = {("6", (ISAAC_SIGNAL_PORT, ISAAC_SIGNAL_PORT)), ("17", (ISAAC_MEDIA_PORT, ISAAC_MEDIA_PORT))}
    if (protocol, ports) in streams and allow_viewers:
        return None
    what = f"protocol {protocol}" + (f" ports {ports[0]}-{ports[1]}" if ports else " all ports")
    return (
        f"ingress from 0.0.0.0/0 on {what}; only TURN ({TURN_LISTENING_PORT} and the relay range "
        f"{relay[0]}-{relay[1]}), listeners 80/443 and ICMP path discovery may be open to the world"
    )


def _no_world_ingress(args: ResourceValidationArgs, report: ReportViolation) -> None:
    config = args.get_config() or {}
    relay = (
        int(config.get("relayMin", DEFAULT_RELAY_PORT_RANGE[0])),
        int(config.get("relayMax", DEFAULT_RELAY_PORT_RANGE[1])),
    )
    allow_api = bool(config.get("allowWorldApi", False))
    allow_viewers = bool(config.get("allowWorldViewers", False))
    props = args.props
    rules: list[tuple[Any, Any]] = []
    if args.resource_type == "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule":
        if plain(props.get("direction")) == "INGRESS":
            rules.append((props.get("source"), props))
    elif args.resource_type in (
        "oci:Core/securityList:SecurityList",
        "oci:Core/defaultSecurityList:DefaultSecurityList",
    ):
        rules += [(r.get("source"), r) for r in plain(props.get("ingressSecurityRules") or [])]
    for source, rule in rules:
        if not _world(source):
            continue
        protocol = str(plain(rule.get("protocol")))
        ports = _ports(rule.get("tcpOptions") or rule.get("udpOptions"))
        problem = world_ingress_problem(protocol, ports, rule.get("icmpOptions"), relay, allow_api, allow_viewers)
        if problem:
            report(problem, None)


# -- the streaming GPU pool has NVENC ------------------------------------------------------------------


def _streaming_gpu_has_nvenc(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "oci:ContainerEngine/nodePool:NodePool":
        return
    labels = {label.get("key"): label.get("value") for label in plain(args.props.get("initialNodeLabels") or [])}
    if labels.get(GPU_NODE_LABEL[0]) != GPU_NODE_LABEL[1]:
        return
    shape = plain(args.props.get("nodeShape"))
    gpu = GPU_SHAPES.get(shape)
    if gpu is None:
        report(f"{shape} carries the streaming GPU label but is not a known GPU shape", None)
    elif not gpu.nvenc:
        report(f"{shape} ({gpu.gpu_model}) has no hardware video encoder (NVENC); streams cannot encode on it", None)


# -- Helm charts pinned -------------------------------------------------------------------------------

_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


def _helm_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"):
        return
    version = plain(args.props.get("version"))
    if not version:
        report(f"chart {plain(args.props.get('chart'))} has no version: every release pins one", None)
    elif not _EXACT_VERSION.match(str(version)):
        report(f"chart {plain(args.props.get('chart'))} version {version!r} is a range, not a pinned version", None)


# -- requests and limits ------------------------------------------------------------------------------


def _pod_spec(kind: str, spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind == "ScaledJob":
        # KEDA's: the Job each pending message becomes.
        return spec.get("jobTargetRef", {}).get("template", {}).get("spec")
    return spec.get("template", {}).get("spec")


def container_resource_problems(kind: str, spec: Mapping[str, Any]) -> list[str]:
    pod = _pod_spec(kind, spec) or {}
    problems = []
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(section) or {})
            if missing:
                problems.append(f"container {container.get('name')} has no {section} for {', '.join(sorted(missing))}")
    return problems


def _containers_have_limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not args.resource_type.startswith("kubernetes:"):
        return
    kind = args.resource_type.rsplit(":", 1)[-1]
    if kind not in WORKLOAD_KINDS:
        return
    for problem in container_resource_problems(kind, plain(args.props.get("spec") or {})):
        report(problem, None)


# -- no plain-text secrets ----------------------------------------------------------------------------


def _plaintext_leaves(value: Any) -> bool:
    if is_marked_secret(value):
        return False
    if isinstance(value, Mapping):
        return any(_plaintext_leaves(v) for v in value.values())
    if _is_list(value):
        return any(_plaintext_leaves(v) for v in value)
    return value is not None


def _secret_inputs_are_secret(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "kubernetes:core/v1:Secret":
        return
    for field in ("data", "stringData"):
        value = args.props.get(field)
        if value is not None and _plaintext_leaves(value):
            report(
                f"Secret {field} holds plain text: pass Pulumi secrets (pulumi.Output.secret, secret config, random)",
                None,
            )


def _outputs_are_secret(args: StackValidationArgs, report: ReportViolation) -> None:
    for resource in args.resources:
        if resource.resource_type != "pulumi:pulumi:Stack":
            continue
        for name, value in resource.props.items():
            if SECRET_OUTPUT.search(name) and _plaintext_leaves(value):
                report(f"stack output {name} is not a secret: export it with pulumi.Output.secret", resource.urn)


# -- TURN relay denies private and link-local peers ---------------------------------------------------

# What every relay must deny: private networks, metadata, loopback, and IPv6 forms of IPv4 addresses. Written
# out here rather than taken from the Turn component's list, so a mistake there is caught here.
MUST_DENY = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "::ffff:0:0/96",
    "fc00::/7",
    "fe80::/10",
)
# ... and what no allowed-peer-ip may reopen: the node itself and the metadata service.
NEVER_ALLOW = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "::1/128", "::ffff:0:0/96")
ROLE_TAG = "pixelstream-role"
STREAM_PODS_ROLE = "stream-pods"


def _option(conf: str, name: str) -> list[str]:
    values = []
    for line in conf.splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == name and value.strip():
            values.append(value.strip())
    return values


def _peers(conf: str, option: str) -> AddressSet:
    return AddressSet.of_ranges(_option(conf, option))


def turn_config_problems(conf: str) -> list[str]:
    denied, allowed = _peers(conf, "denied-peer-ip"), _peers(conf, "allowed-peer-ip")
    problems = []
    for cidr in MUST_DENY:
        open_part = AddressSet.of_cidrs([cidr]) - denied
        if open_part:
            problems.append(f"the relay can reach {', '.join(open_part.describe()[:3])} ({cidr}): deny it")
    for cidr in NEVER_ALLOW:
        reopened = AddressSet.of_cidrs([cidr]) & allowed
        if reopened:
            problems.append(f"allowed-peer-ip reopens {', '.join(reopened.describe()[:3])} ({cidr})")
    if re.search(r"^\s*allow-loopback-peers", conf, re.M):
        problems.append("allow-loopback-peers lets the relay reach the server's own services")
    return problems


def _turn_denies_private_peers(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for key, conf in _turn_configs(args.resource_type, args.props):
        for problem in turn_config_problems(conf):
            report(f"{key}: {problem}", None)


def _turn_configs(resource_type: str, props: Mapping[str, Any]) -> list[tuple[str, str]]:
    if resource_type != "kubernetes:core/v1:ConfigMap":
        return []
    data = plain(props.get("data")) or {}
    return [(key, str(conf)) for key, conf in data.items() if key.endswith("turnserver.conf")]


# -- TURN relay reaches only the stream pods ----------------------------------------------------------


@dataclass
class StackNetworks:
    """What a stack declares about its own networks, as the relay policy needs it."""

    stream_pods: AddressSet
    forbidden: dict[str, AddressSet]
    """Every other subnet and the services CIDR, by what they are."""
    pod_overlays: AddressSet


def stack_networks(resources: Iterable[Any], config: Mapping[str, Any]) -> StackNetworks:
    stream, forbidden, overlays = [], {}, []
    for resource in resources:
        props = plain(resource.props)
        if resource.resource_type == "oci:Core/subnet:Subnet" and props.get("cidrBlock"):
            role = (props.get("freeformTags") or {}).get(ROLE_TAG, "subnet")
            if role == STREAM_PODS_ROLE:
                stream.append(props["cidrBlock"])
            else:
                forbidden[f"{role} subnet {props['cidrBlock']}"] = AddressSet.of_cidrs([props["cidrBlock"]])
        elif resource.resource_type == "oci:ContainerEngine/cluster:Cluster":
            network = (props.get("options") or {}).get("kubernetesNetworkConfig") or {}
            if network.get("servicesCidr"):
                forbidden[f"services CIDR {network['servicesCidr']}"] = AddressSet.of_cidrs([network["servicesCidr"]])
            if network.get("podsCidr"):
                overlays.append(network["podsCidr"])
    for cidr in config.get("forbiddenCidrs") or []:
        forbidden[f"forbidden CIDR {cidr}"] = AddressSet.of_cidrs([cidr])
    return StackNetworks(
        AddressSet.of_cidrs(config.get("streamPodCidrs") or stream), forbidden, AddressSet.of_cidrs(overlays)
    )


def relay_reach_problems(conf: str, networks: StackNetworks, allow_all_pods: bool = False) -> list[str]:
    """Where the relay reaches beyond the stream pods, and a TCP relay left on."""
    allowed = _peers(conf, "allowed-peer-ip")
    target = networks.pod_overlays if allow_all_pods else networks.stream_pods
    problems = []
    if allowed and not target:
        problems.append(
            "allowed-peer-ip is set but the stack has no stream pod subnet (a subnet tagged "
            f"{ROLE_TAG}={STREAM_PODS_ROLE}, or policy config streamPodCidrs) to hold it to"
        )
    elif allowed - target:
        problems.append(
            f"the relay reaches beyond the stream pods ({', '.join(target.describe())}): "
            f"{', '.join((allowed - target).describe()[:4])}"
        )
    for what, addresses in sorted(networks.forbidden.items()):
        if allowed & addresses:
            problems.append(f"the relay reaches the {what}")
    if "no-tcp-relay" not in (line.strip() for line in conf.splitlines()):
        problems.append("no-tcp-relay is missing: a TURN client could open TCP connections to every allowed peer")
    return problems


def _turn_relays_only_to_stream_pods(args: StackValidationArgs, report: ReportViolation) -> None:
    config = args.get_config() or {}
    networks = stack_networks(args.resources, config)
    for resource in args.resources:
        for key, conf in _turn_configs(resource.resource_type, resource.props):
            for problem in relay_reach_problems(conf, networks, bool(config.get("allowRelayToAllPods"))):
                report(f"{resource.name} {key}: {problem}", resource.urn)


# -- players authenticate in production ---------------------------------------------------------------

SESSION_AUTH_ENV = "AUTH_MODE"


def anonymous_player_containers(kind: str, spec: Mapping[str, Any]) -> list[str]:
    """The containers of a workload that hand GPUs to anonymous players: a session service (a container with
    an AUTH_MODE variable) whose AUTH_MODE is `none`."""
    pod = _pod_spec(kind, spec)
    found = []
    for container in (pod or {}).get("containers", []):
        env = {e.get("name"): e.get("value") for e in container.get("env", []) if isinstance(e, Mapping)}
        if env.get(SESSION_AUTH_ENV) == "none":
            found.append(container.get("name", "?"))
    return found


def _players_authenticated_in_production(args: ResourceValidationArgs, report: ReportViolation) -> None:
    config = args.get_config() or {}
    if config.get("environment") != "production" or not args.resource_type.startswith("kubernetes:"):
        return
    kind = args.resource_type.rsplit(":", 1)[-1]
    for container in anonymous_player_containers(kind, plain(args.props.get("spec")) or {}):
        report(
            f"{kind} {args.name} container {container} gives GPUs to anonymous players (AUTH_MODE none) in a "
            "production stack: set streaming.players.auth.mode to oidc or signedLinks"
        )


# -- the AI orchestrator answers only its gateways and workers -------------------------------------------

NGINX_ALLOWLIST = "nginx.ingress.kubernetes.io/allowlist-source-range"
NGINX_DENYLIST = "nginx.ingress.kubernetes.io/denylist-source-range"


def _cidr_list(value: Any) -> list[str]:
    return [cidr.strip() for cidr in str(plain(value) or "").split(",") if cidr.strip()]


def orchestrator_route_problems(metadata: Mapping[str, Any], spec: Mapping[str, Any], allow_world: bool) -> list[str]:
    """Paths to the AI orchestrator, other than its randomly named files, that the internet reaches: no source
    allow-list (nor a denylist of everyone, IPv4 and IPv6), or an allow-list wider than a /8. A default backend
    counts as the path `/`; a files path that regexes or rewrites counts as any other."""
    annotations = metadata.get("annotations") or {}
    denied = {_network(cidr) for cidr in _cidr_list(annotations.get(NGINX_DENYLIST))}
    closed = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")} <= denied
    allowed = _cidr_list(annotations.get(NGINX_ALLOWLIST))
    rewrites = any(annotations.get(f"nginx.ingress.kubernetes.io/{key}") for key in ("use-regex", "rewrite-target"))
    routes = [
        (path.get("path", "/"), path.get("backend"))
        for rule in spec.get("rules") or []
        for path in (rule.get("http") or {}).get("paths") or []
    ]
    routes.append(("/", spec.get("defaultBackend")))
    problems = []
    for route, backend in routes:
        service = ((backend or {}).get("service") or {}).get("name")
        if service != AI_ORCHESTRATOR or (route == AI_ORCHESTRATOR_FILES and not rewrites) or closed:
            continue
        if not allowed:
            problems.append(f"{route} has no source allow-list: anyone on the internet reaches it")
        elif not allow_world and any(_network(cidr) is None or world_wide(cidr) for cidr in allowed):
            problems.append(f"{route} is open to {', '.join(allowed)}, wider than any network a person names")
    return problems


def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network an nginx source list names, or None for what nginx would not take."""
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def _orchestrator_answers_its_callers(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "kubernetes:networking.k8s.io/v1:Ingress":
        return
    allow_world = bool((args.get_config() or {}).get("allowWorldAccess"))
    metadata, spec = plain(args.props.get("metadata")) or {}, plain(args.props.get("spec")) or {}
    for problem in orchestrator_route_problems(metadata, spec, allow_world):
        report(
            f"Ingress {args.name}: the AI orchestrator's {problem}; gateway and worker paths need "
            "aiWorkers.orchestrator.gatewayCidrs / workerCidrs"
        )


# -- every Kafka client signs in ---------------------------------------------------------------------------


def kafka_problems(kind: str, spec: Mapping[str, Any]) -> list[str]:
    """What lets a client of a Kafka cluster in without signing in: a Strimzi listener without authentication, a
    cluster without an authorizer, or a KEDA kafka trigger without SASL credentials."""
    if kind == "Kafka":
        kafka = spec.get("kafka") or {}
        problems = [
            f"listener {listener.get('name', '?')} (port {listener.get('port', '?')}) takes clients without "
            "authentication"
            for listener in kafka.get("listeners") or []
            if not (listener.get("authentication") or {}).get("type")
        ]
        if not (kafka.get("authorization") or {}).get("type"):
            problems.append("no authorization: every authenticated user may do anything")
        return problems
    if kind == "ScaledJob":
        return [problem for trigger in spec.get("triggers") or [] for problem in _trigger_problems(trigger)]
    return []


def _trigger_problems(trigger: Mapping[str, Any]) -> list[str]:
    """A KEDA kafka trigger signs in through its authentication (which may also carry `sasl`), never with
    `sasl: none`, and never sends a PLAIN password without TLS (kafka_scaler.go, v2.20.2)."""
    if trigger.get("type") != "kafka":
        return []
    metadata = trigger.get("metadata") or {}
    topic = metadata.get("topic", "?")
    if not trigger.get("authenticationRef") or metadata.get("sasl") == "none":
        return [f"kafka trigger on {topic} signs in with nothing"]
    if metadata.get("sasl") == "plaintext" and metadata.get("tls", "disable") != "enable":
        return [f"kafka trigger on {topic} sends a PLAIN password without TLS"]
    return []


def _kafka_clients_sign_in(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not args.resource_type.startswith("kubernetes:"):
        return
    kind = args.resource_type.rsplit(":", 1)[-1]
    for problem in kafka_problems(kind, plain(args.props.get("spec")) or {}):
        report(f"{kind} {args.name}: {problem}")


# -- every workload namespace denies by default -----------------------------------------------------

# What makes pods, declared directly (pods a Helm chart makes are the chart's: its add-on's namespace is not a
# workload's).
POD_WORKLOADS = (
    "kubernetes:core/v1:Pod",
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:ReplicaSet",
    "kubernetes:batch/v1:Job",
    "kubernetes:batch/v1:CronJob",
    "kubernetes:keda.sh/v1alpha1:ScaledJob",
)
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def _denies_ingress(spec: Mapping[str, Any]) -> bool:
    """A policy that selects every pod of its namespace for ingress and allows nothing."""
    return (
        spec.get("podSelector") in ({}, None)
        and "Ingress" in (spec.get("policyTypes") or [])
        and not spec.get("ingress")
    )


def undefended_namespaces(resources: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The namespaces where the stack declares pods itself and no NetworkPolicy denies what the others do not
    allow."""
    running, denying = set(), set()
    for resource_type, props in resources:
        namespace = (props.get("metadata") or {}).get("namespace")
        if not isinstance(namespace, str):
            continue  # not known yet (a preview): nothing to judge
        if resource_type in POD_WORKLOADS:
            running.add(namespace)
        elif resource_type == NETWORK_POLICY and _denies_ingress(props.get("spec") or {}):
            denying.add(namespace)
    return sorted(running - denying)


def _workload_namespaces_deny_by_default(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = [(r.resource_type, plain(r.props) or {}) for r in args.resources]
    for namespace in undefended_namespaces(resources):
        report(
            f"namespace {namespace} runs the stack's pods but no NetworkPolicy denies them every connection no "
            "other policy allows (podSelector {}, policyTypes [Ingress], no rules): any pod of the cluster reaches "
            "them",
            None,
        )


# -- a stack's own settings ---------------------------------------------------------------------------


def policy_config(config: StackConfig) -> dict[str, dict[str, Any]]:
    """The policy configuration that matches a stack's settings (for `--policy-pack-config` and `make check`).

    On OKE the relay's reach is judged against the stack's own subnets and cluster; the networks no resource
    declares (an existing cluster's, the on-premises ones) come from the stack's config."""
    from ..media_path import media_path

    relay: dict[str, Any] = {"allowRelayToAllPods": config.streaming.turn.allow_relay_to_all_pods}
    path = media_path(config)
    if not config.cluster.oke:
        # No subnet or cluster resource says where the stream pods are: the config names them.
        relay = {"allowRelayToAllPods": False, "streamPodCidrs": list(path.stream_peers)}
        relay["forbiddenCidrs"] = list(path.forbidden_cidrs())
    elif config.network.on_premises.enabled:
        relay["forbiddenCidrs"] = list(config.network.on_premises.cidrs)
    return {
        "no-world-open-ingress": {
            "relayMin": config.network.relay_ports.min,
            "relayMax": config.network.relay_ports.max,
            "allowWorldApi": config.cluster.endpoint.allow_world_access,
            "allowWorldViewers": config.simulation.streams.allow_world_access,
        },
        "turn-relays-only-to-stream-pods": relay,
        "players-authenticated-in-production": {"environment": config.environment},
        "ai-orchestrator-answers-its-callers": {"allowWorldAccess": config.ai_workers.orchestrator.allow_world_access},
    }


# -- the pack -----------------------------------------------------------------------------------------

RELAY_CONFIG = PolicyConfigSchema(
    {
        "relayMin": {"type": "integer", "default": DEFAULT_RELAY_PORT_RANGE[0]},
        "relayMax": {"type": "integer", "default": DEFAULT_RELAY_PORT_RANGE[1]},
        "allowWorldApi": {"type": "boolean", "default": False},
        "allowWorldViewers": {"type": "boolean", "default": False},
    }
)

RESOURCE_POLICIES = [
    ResourceValidationPolicy(
        name="no-world-open-ingress",
        description="No ingress from 0.0.0.0/0 except TURN, load-balancer listeners and ICMP path discovery.",
        validate=_no_world_ingress,
        config_schema=RELAY_CONFIG,
    ),
    ResourceValidationPolicy(
        name="streaming-gpu-pool-has-nvenc",
        description="A node pool labelled for streams uses a GPU shape with a hardware video encoder.",
        validate=_streaming_gpu_has_nvenc,
    ),
    ResourceValidationPolicy(
        name="helm-release-pins-version",
        description="Every Helm release pins an exact chart version.",
        validate=_helm_pinned,
    ),
    ResourceValidationPolicy(
        name="containers-have-requests-and-limits",
        description="Every container and init container sets cpu and memory requests and limits.",
        validate=_containers_have_limits,
    ),
    ResourceValidationPolicy(
        name="no-plaintext-kubernetes-secrets",
        description="A Kubernetes Secret's data and stringData are Pulumi secrets.",
        validate=_secret_inputs_are_secret,
    ),
    ResourceValidationPolicy(
        name="turn-denies-private-peers",
        description="coturn's configuration denies private, link-local and loopback peers.",
        validate=_turn_denies_private_peers,
    ),
    ResourceValidationPolicy(
        name="players-authenticated-in-production",
        description="In a stack that declares itself production, the session service authenticates players.",
        validate=_players_authenticated_in_production,
        config_schema=PolicyConfigSchema(
            {"environment": {"type": "string", "enum": list(ENVIRONMENTS), "default": "development"}}
        ),
    ),
    ResourceValidationPolicy(
        name="ai-orchestrator-answers-its-callers",
        description="Every path to the AI orchestrator but its randomly named files answers only listed networks.",
        validate=_orchestrator_answers_its_callers,
        config_schema=PolicyConfigSchema({"allowWorldAccess": {"type": "boolean", "default": False}}),
    ),
    ResourceValidationPolicy(
        name="kafka-clients-sign-in",
        description="Every Kafka listener authenticates its clients and authorizes them; KEDA's triggers sign in.",
        validate=_kafka_clients_sign_in,
    ),
]
STACK_POLICIES = [
    StackValidationPolicy(
        name="no-plaintext-secret-outputs",
        description="Stack outputs that look like credentials are Pulumi secrets.",
        validate=_outputs_are_secret,
    ),
    StackValidationPolicy(
        name="turn-relays-only-to-stream-pods",
        description="coturn's allowed peers stay inside the stream pod subnet, clear of every other subnet and "
        "the services CIDR, and its TCP relay is off.",
        validate=_turn_relays_only_to_stream_pods,
        config_schema=PolicyConfigSchema(
            {
                "streamPodCidrs": {"type": "array", "items": {"type": "string"}, "default": []},
                "forbiddenCidrs": {"type": "array", "items": {"type": "string"}, "default": []},
                "allowRelayToAllPods": {"type": "boolean", "default": False},
            }
        ),
    ),
    StackValidationPolicy(
        name="workload-namespaces-deny-by-default",
        description="Every namespace where the stack declares pods itself (not through a Helm chart) has a "
        "NetworkPolicy that denies what no other allows.",
        validate=_workload_namespaces_deny_by_default,
    ),
]
POLICIES = [*RESOURCE_POLICIES, *STACK_POLICIES]
ENFORCEMENT = EnforcementLevel.MANDATORY


def preserve_secret_markers() -> None:
    """Let validation policies see which values are secret: pulumi-policy otherwise unwraps them to plain
    values before a policy runs. Values marked secret then arrive as `pulumi_policy.Secret`."""
    from pulumi_policy import deserialize, policy

    def keep_markers(props: dict[str, Any], proxy_secrets: bool = False) -> Any:
        return deserialize.deserialize_properties(props, True)["__target"]

    policy.deserialize_properties = keep_markers


# -- the offline harness ------------------------------------------------------------------------------


@dataclass
class Violation:
    policy: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"[{self.policy}] {self.resource}: {self.message}"


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def run_policies(
    resources: Iterable[Mapping[str, Any]],
    outputs: Mapping[str, Any],
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Violation]:
    """Every policy over resources as the offline plan records them (type, name, inputs) and the stack's outputs."""
    config = config or {}
    violations: list[Violation] = []

    def reporter(policy: str, resource: str) -> Callable[[str, str | None], None]:
        return lambda message, urn=None: violations.append(Violation(policy, resource, message))

    stack = []
    for resource in resources:
        name = f"{resource['type']}::{resource['name']}"
        urn = f"urn:pulumi:offline::pixelstream::{name}"
        for policy in RESOURCE_POLICIES:
            args = ResourceValidationArgs(
                resource["type"],
                resource["inputs"],
                urn,
                resource["name"],
                _options(),
                None,
                dict(config.get(policy.name, {})),
            )
            policy.validate(args, reporter(policy.name, name))
        stack.append(
            PolicyResource(resource["type"], resource["inputs"], urn, resource["name"], _options(), None, None, [], {})
        )
    stack.append(
        PolicyResource(
            "pulumi:pulumi:Stack",
            dict(outputs),
            "urn:pulumi:offline::pixelstream::pulumi:pulumi:Stack::stack",
            "stack",
            _options(),
            None,
            None,
            [],
            {},
        )
    )
    for policy in STACK_POLICIES:
        args = StackValidationArgs(stack, dict(config.get(policy.name, {})))
        policy.validate(args, reporter(policy.name, "stack"))
    return violations


def run_policies_on_build(directory: Path, config: Mapping[str, Mapping[str, Any]] | None = None) -> list[Violation]:
    resources = json.loads((directory / "resources.json").read_text())["resources"]
    outputs = json.loads((directory / "outputs.json").read_text())
    return run_policies(resources, outputs, config)
