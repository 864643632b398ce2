"""Simulation: the simulation fleet in its namespace: the Isaac Sim instances (each stream published for the
viewers' networks by a load balancer of its own, when any are named), their NGC pull Secret, and the orchestration
service with its dashboard behind an Ingress, which asks for a generated operator's password itself (over HTTPS
with a host and an issuer; without, every plan warns)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ...addons.charts import PART_OF, namespace
from ...constants import ISAAC_MEDIA_PORT, ISAAC_SIGNAL_PORT
from ...placement import GPU_NODES, NodePlacement
from ..kubernetes import labels, regex_ingress
from ..network_policies import (
    ANY_UDP,
    INGRESS_CONTROLLER,
    addresses,
    allow_certificate_challenges,
    allow_ingress,
    deny_ingress,
    internet_egress,
    relay_egress,
    tcp,
)
from .fleet import (
    FLEET,
    InstanceSettings,
    SimulationFleet,
    SimulationFleetArgs,
    StreamPublishing,
    docker_config,
    fleet_config,
)
from .orchestrator import ORCHESTRATOR, FleetOrchestrator, FleetOrchestratorArgs

OPERATOR = "operator"
PULL_SECRET = "ngc-registry"


@dataclass(kw_only=True)
class SimulationArgs:
    isaac_sim_image: str
    python_image: str
    private_cidrs: Sequence[str]
    """The cluster's own networks (media_path): the instances reach none of them but the TURN nodes."""
    turn_node_cidrs: Sequence[str]
    """Where the TURN servers' relay addresses are: the instances' media goes there."""
    relay_ports: tuple[int, int]
    """The TURN relay's port range."""
    storage_class: str | None = None
    """The instances' cache volumes' storage class; None: the cluster's default."""
    namespace: str = "sim"
    instances: int = 2
    instances_per_gpu: int = 1
    settings: InstanceSettings = field(default_factory=InstanceSettings)
    ngc_api_key: pulumi.Input[str] | None = None
    """NGC API key: the instances pull their image with it (an image pull Secret, kept a Pulumi secret)."""
    image_pull_secrets: Sequence[str] = ()
    """Existing docker-registry Secrets in the namespace, used by every pod."""
    host: str | None = None
    """With `cluster_issuer`, HTTPS with a certificate for it; without both, basic auth over plain HTTP (a warning)."""
    path_prefix: str = "/sim"
    """The dashboard and API at <prefix>/."""
    cluster_issuer: str | None = None
    system_nodes: Sequence[pulumi.Resource] = ()
    """What the namespace waits for: the pool that runs the orchestration service."""
    gpu_nodes: Sequence[pulumi.Resource] = ()
    """What the instances wait for: the GPU pool and the device plugin."""
    ingress_controller: Sequence[pulumi.Resource] = ()
    """What the Ingress waits for: the controller whose admission webhook validates it."""
    gpu_placement: NodePlacement = GPU_NODES
    """Where the instances run: the GPU nodes' labels and taints (OKE's pool unless given)."""
    publishing: StreamPublishing | None = None
    """Each instance's stream for viewers outside the cluster; None: only inside it."""
    viewer_url: str | None = None
    """The viewer the dashboard opens for an instance: a URL template with {host}, {signalPort}, {mediaPort}."""
    load_balancer_cidrs: Sequence[str] = ()
    """Where the published streams' load balancers are (OKE's load-balancer subnet): the instances see their
    addresses, and take the stream from them alone (and media from the TURN nodes); empty: from anywhere."""


class Simulation(pulumi.ComponentResource):
    """Outputs: `url` (the dashboard), `namespace`, and `username`/`password` of its basic auth (secrets)."""

    url: str
    namespace: str
    username: pulumi.Output[str]
    password: pulumi.Output[str]

    def __init__(self, name: str, args: SimulationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:Simulation", name, None, opts)
        ns = namespace(args.namespace, self, depends_on=args.system_nodes).metadata["name"]
        pull_secrets: list[pulumi.Input[str]] = list(args.image_pull_secrets)
        if args.ngc_api_key is not None:
            pull_secrets.append(self._ngc_pull_secret(ns, args.ngc_api_key))
        SimulationFleet(
            f"{name}-fleet",
            SimulationFleetArgs(
                namespace=ns,
                image=args.isaac_sim_image,
                instances=args.instances,
                settings=args.settings,
                image_pull_secrets=pull_secrets,
                depends_on=args.gpu_nodes,
                nodes=args.gpu_placement,
                storage_class=args.storage_class,
                publishing=args.publishing,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        password = random.RandomPassword(
            f"{name}-operator", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        orchestrator = FleetOrchestrator(
            f"{name}-orchestrator",
            FleetOrchestratorArgs(
                namespace=ns,
                python_image=args.python_image,
                instances=args.instances,
                streams=_streams(args),
                fleet_config=fleet_config(args.isaac_sim_image, args.instances, args.instances_per_gpu, args.settings),
                operator=OPERATOR,
                operator_password=password.result,
                image_pull_secrets=args.image_pull_secrets,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = f"{self._ingress(args, ns, orchestrator)}{args.path_prefix}/"
        if not (args.host and args.cluster_issuer):
            # The stack's config allows this only with simulation.ingress.allowPlainHttp: every plan says so.
            pulumi.log.warn(
                "the simulation dashboard takes the basic-auth password over plain HTTP "
                "(simulation.ingress.allowPlainHttp): anyone on the path can read it and drive the fleet; set "
                "simulation.ingress.host with addons.certManager on",
                self,
            )
        self._network_policies(ns, args)
        self.namespace = args.namespace
        self.username, self.password = pulumi.Output.secret(OPERATOR), pulumi.Output.secret(password.result)
        self.register_outputs({"url": self.url, "namespace": self.namespace})

    def _network_policies(self, namespace: pulumi.Input[str], args: SimulationArgs) -> None:
        """Nothing in the namespace takes a connection but the orchestrator, from the ingress controller, the
        instances' streams (signalling over TCP and WebRTC media over UDP: from their load balancers, which show
        their own addresses, or the relay) and cert-manager's challenges. The instances, which run whatever scene
        they load, reach DNS, the TURN relay and the internet (NGC, asset servers), never the cluster's own
        networks nor the node's metadata service."""
        deny_ingress(namespace, self)
        allow_certificate_challenges(namespace, self)
        instances = labels(FLEET)
        allow_ingress(
            "orchestrator-operators", namespace, labels(ORCHESTRATOR), tcp("http"), [INGRESS_CONTROLLER], self
        )
        balancers = addresses(args.load_balancer_cidrs)
        allow_ingress("instance-streams", namespace, instances, [*tcp("signal"), *ANY_UDP], balancers, self)
        if balancers:
            relayed = addresses(args.turn_node_cidrs)
            allow_ingress("instance-relayed-media", namespace, instances, ANY_UDP, relayed, self)
        relay = [relay_egress(args.turn_node_cidrs, args.relay_ports)]
        internet_egress("instance-egress", namespace, instances, args.private_cidrs, relay, self)

    def _ngc_pull_secret(self, ns: pulumi.Input[str], api_key: pulumi.Input[str]) -> pulumi.Output[str]:
        secret = k8s.core.v1.Secret(
            PULL_SECRET,
            metadata={"name": PULL_SECRET, "namespace": ns, "labels": PART_OF},
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": pulumi.Output.secret(api_key).apply(docker_config)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        return secret.metadata["name"]

    def _ingress(self, args: SimulationArgs, ns: pulumi.Input[str], orchestrator: FleetOrchestrator) -> str:
        """The dashboard and API at <prefix>/, which ask for the operator's credential themselves. The route opens
        once the service that checks it runs: during an update from a version whose route asked at the controller,
        no request reaches an old service that asks nothing."""
        after_service = pulumi.ResourceOptions(
            parent=self, depends_on=[*args.ingress_controller, orchestrator.deployment]
        )
        dashboard = [(f"{args.path_prefix}/(.*)", orchestrator.service, 80)]
        return regex_ingress("simulation", ns, dashboard, {}, args.host, args.cluster_issuer, after_service)


def _streams(args: SimulationArgs) -> pulumi.Output[str]:
    """What the dashboard shows of each instance's stream (JSON, in order): where a viewer dials, and the viewer
    page to open; null for an instance whose stream is not published."""

    def describe(hosts: list[str]) -> str:
        streams = []
        for index in range(args.instances):
            if args.publishing is None:
                streams.append(None)
                continue
            fields = {"host": hosts[index], "signalPort": ISAAC_SIGNAL_PORT, "mediaPort": ISAAC_MEDIA_PORT}
            viewer = args.viewer_url.format(**fields) if args.viewer_url else None
            streams.append({**fields, "viewerUrl": viewer})
        return json.dumps(streams)

    return pulumi.Output.all(*(args.publishing.hosts if args.publishing else [])).apply(describe)
