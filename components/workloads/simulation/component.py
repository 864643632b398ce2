"""Simulation: the simulation fleet in its namespace: the Isaac Sim instances, their NGC pull Secret, the
orchestration service with its dashboard, and the Ingress that serves both behind generated basic auth (over HTTPS
with a host and an issuer; without, every plan warns)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from ...addons.charts import PART_OF, namespace
from ...placement import GPU_NODES, NodePlacement
from ..kubernetes import basic_auth, labels, regex_ingress
from ..network_policies import (
    ANY_UDP,
    INGRESS_CONTROLLER,
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
    docker_config,
    fleet_config,
    instance_name,
)
from .orchestrator import ORCHESTRATOR, REALM, FleetOrchestrator, FleetOrchestratorArgs

OPERATOR = "operator"
PULL_SECRET = "ngc-registry"
AUTH_SECRET = "sim-basic-auth"


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
    """The dashboard and API at <prefix>/, instance i's page at <prefix>/<i>/."""
    cluster_issuer: str | None = None
    system_nodes: Sequence[pulumi.Resource] = ()
    """What the namespace waits for: the pool that runs the orchestration service."""
    gpu_nodes: Sequence[pulumi.Resource] = ()
    """What the instances wait for: the GPU pool and the device plugin."""
    ingress_controller: Sequence[pulumi.Resource] = ()
    """What the Ingress waits for: the controller whose admission webhook validates it."""
    gpu_placement: NodePlacement = GPU_NODES
    """Where the instances run: the GPU nodes' labels and taints (OKE's pool unless given)."""


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
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        auth = basic_auth(f"{name}-operator", AUTH_SECRET, ns, OPERATOR, "auth", self)
        orchestrator = FleetOrchestrator(
            f"{name}-orchestrator",
            FleetOrchestratorArgs(
                namespace=ns,
                python_image=args.python_image,
                instances=args.instances,
                stream_url=f"{args.path_prefix}/{{index}}/",
                fleet_config=fleet_config(args.isaac_sim_image, args.instances, args.instances_per_gpu, args.settings),
                operator=OPERATOR,
                operator_password=auth.password,
                image_pull_secrets=args.image_pull_secrets,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = f"{self._ingress(args, ns, orchestrator, auth.secret_name)}{args.path_prefix}/"
        if not (args.host and args.cluster_issuer):
            # The stack's config allows this only with simulation.ingress.allowPlainHttp: every plan says so.
            pulumi.log.warn(
                "the simulation dashboard and instance pages take the basic-auth password over plain HTTP "
                "(simulation.ingress.allowPlainHttp): anyone on the path can read it and drive the fleet; set "
                "simulation.ingress.host with addons.certManager on",
                self,
            )
        self._network_policies(ns, args)
        self.namespace = args.namespace
        self.username, self.password = auth.username, auth.password
        self.register_outputs({"url": self.url, "namespace": self.namespace})

    def _network_policies(self, namespace: pulumi.Input[str], args: SimulationArgs) -> None:
        """Nothing in the namespace takes a connection but the orchestrator and the instances' pages and
        signalling, from the ingress controller, the instances' WebRTC media (UDP, from anywhere: its ports are
        WebRTC's) and cert-manager's challenges. The instances, which run whatever scene they load, reach DNS, the
        TURN relay and the internet (NGC, asset servers), never the cluster's own networks nor the node's
        metadata service."""
        deny_ingress(namespace, self)
        allow_certificate_challenges(namespace, self)
        instances = labels(FLEET)
        allow_ingress(
            "orchestrator-operators", namespace, labels(ORCHESTRATOR), tcp("http"), [INGRESS_CONTROLLER], self
        )
        allow_ingress("instance-operators", namespace, instances, tcp("http", "signal"), [INGRESS_CONTROLLER], self)
        allow_ingress("instance-media", namespace, instances, ANY_UDP, [], self)
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

    def _ingress(
        self,
        args: SimulationArgs,
        ns: pulumi.Input[str],
        orchestrator: FleetOrchestrator,
        auth_secret: pulumi.Input[str],
    ) -> str:
        """The dashboard and API at <prefix>/, which ask for the operator's credential themselves (ingress-nginx
        strips the Authorization header after its own basic auth, so the service could not check it behind one),
        and each instance's page at <prefix>/<i>/ behind the controller's basic auth with the same credential and
        realm, so the browser signs in once. ingress-nginx merges both Ingresses into one server and orders regex
        paths longest first, so <prefix>/<i>/ wins over <prefix>/."""
        # The instances' signalling is a websocket: keep it open as long as a session lasts.
        timeouts = {
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
            "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
        }
        instance_auth = {
            "nginx.ingress.kubernetes.io/auth-type": "basic",
            "nginx.ingress.kubernetes.io/auth-secret": auth_secret,
            "nginx.ingress.kubernetes.io/auth-realm": REALM,
        }
        after_controller = pulumi.ResourceOptions(parent=self, depends_on=list(args.ingress_controller))
        # The dashboard's route opens once the service that checks the credential runs: during an update from a
        # version whose route asked at the controller, no request reaches an old service that asks nothing.
        after_service = pulumi.ResourceOptions(
            parent=self, depends_on=[*args.ingress_controller, orchestrator.deployment]
        )
        dashboard = [(f"{args.path_prefix}/(.*)", orchestrator.service, 80)]
        url = regex_ingress("simulation", ns, dashboard, {}, args.host, args.cluster_issuer, after_service)
        instances = [(f"{args.path_prefix}/{i}/(.*)", instance_name(i), 80) for i in range(args.instances)]
        regex_ingress(
            "simulation-instances",
            ns,
            instances,
            {**instance_auth, **timeouts},
            args.host,
            args.cluster_issuer,
            after_controller,
            certificate_of="simulation",
        )
        return url
