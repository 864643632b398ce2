"""ClusterAutoscaler: OKE's Cluster Autoscaler add-on for the autoscaled node pools, and the IAM policy that
lets it resize them.

Keys and defaults follow Oracle's "Cluster Add-on Configuration Arguments" (Cluster Autoscaler section) and
"Working with the Cluster Autoscaler as a Cluster Add-on": `nodes` takes `<min>:<max>:<node pool OCID>`
entries separated by commas, `authType` is `workload` (workload identity, ENHANCED clusters only) or
`instance` (instance principal through a dynamic group of the worker nodes). The add-on runs as service
account `cluster-autoscaler` in `kube-system`, which is what the workload-identity policy is scoped to,
together with this cluster's OCID.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_oci as oci

from ..constants import AUTOSCALER_EXPENDABLE_CUTOFF, DEFAULT_POOL, POOL_LABEL_KEY

ADDON_NAME = "ClusterAutoscaler"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"
# What Oracle's instructions grant the autoscaler, for either principal.
PERMISSIONS = (
    "manage cluster-node-pools",
    "manage instance-family",
    "use subnets",
    "read virtual-network-family",
    "use vnics",
    "inspect compartments",
)
AuthType = Literal["workload", "instance"]


def workload_statements(compartment_id: str, cluster_id: str) -> list[str]:
    """Policy statements for the add-on's own service account in this cluster only (workload identity)."""
    condition = (
        f"request.principal.type = 'workload', request.principal.namespace = '{NAMESPACE}', "
        f"request.principal.service_account = '{SERVICE_ACCOUNT}', request.principal.cluster_id = '{cluster_id}'"
    )
    return [f"Allow any-user to {p} in compartment id {compartment_id} where ALL {{{condition}}}" for p in PERMISSIONS]


def instance_statements(compartment_id: str, dynamic_group: str) -> list[str]:
    """Policy statements for a dynamic group of the worker nodes (instance principal): every pod on those
    nodes then holds these rights, which is why workload identity is the default."""
    return [f"Allow dynamic-group {dynamic_group} to {p} in compartment id {compartment_id}" for p in PERMISSIONS]


@dataclass(frozen=True)
class AutoscalerTimings:
    """How fast nodes come and go; the defaults are the add-on's own but for the provisioning time."""

    scan_interval_seconds: int = 10
    scale_down_delay_after_add_seconds: int = 600
    """No scale-down this long after a scale-up."""
    scale_down_unneeded_seconds: int = 600
    """How long a node must be unneeded before it is removed."""
    max_node_provision_seconds: int = 1500
    """Not the add-on's 15 minutes: Oracle recommends 25, since nodes added together can take longer to be Ready
    ("Using the Kubernetes Cluster Autoscaler", recommendations for production). A node not Ready by then is
    removed and the pool backed off."""


@dataclass(kw_only=True)
class ClusterAutoscalerArgs:
    cluster_id: pulumi.Input[str]
    compartment_id: pulumi.Input[str]
    node_groups: Sequence[pulumi.Input[str]]
    """`min:max:<node pool OCID>` of every pool to autoscale (NodePool.autoscaler_nodes)."""
    policy_name: str
    auth_type: AuthType = "workload"
    dynamic_group: str | None = None
    """Instance principal only: the dynamic group of the worker nodes (`name`, `'domain'/'name'` or `id <ocid>`)."""
    addon_version: str | None = None
    """Add-on version; None lets OKE choose."""
    timings: AutoscalerTimings = field(default_factory=AutoscalerTimings)
    node_selector: Mapping[str, str] = field(default_factory=lambda: {POOL_LABEL_KEY: DEFAULT_POOL})
    """Where the autoscaler runs: a pool it does not scale away under itself (Oracle's recommendation)."""
    depends_on: Sequence[pulumi.Resource] = ()

    def validate(self) -> None:
        if self.auth_type not in ("workload", "instance"):
            raise ValueError(f"auth_type {self.auth_type!r} is not workload or instance")
        if self.auth_type == "instance" and not self.dynamic_group:
            raise ValueError("auth_type instance needs the dynamic group of the worker nodes (dynamic_group)")
        if not self.node_groups:
            raise ValueError("node_groups is empty: no pool to autoscale")


def configurations(args: ClusterAutoscalerArgs, nodes: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The add-on's configuration arguments (durations as Go durations)."""
    timings = args.timings
    return {
        "nodes": nodes,
        "authType": args.auth_type,
        "numOfReplicas": "1",
        "nodeSelectors": json.dumps(dict(args.node_selector)),
        "scanInterval": f"{timings.scan_interval_seconds}s",
        "scaleDownDelayAfterAdd": f"{timings.scale_down_delay_after_add_seconds}s",
        "scaleDownUnneededTime": f"{timings.scale_down_unneeded_seconds}s",
        "maxNodeProvisionTime": f"{timings.max_node_provision_seconds}s",
        # Stream pods keep a small in-memory scratch volume. Left at its default (true), this flag would pin
        # every GPU node that runs an idle stream; busy streams are protected by safe-to-evict instead.
        "skipNodesWithLocalStorage": "false",
        # Stated rather than assumed: the warm-capacity placeholders sit just above it.
        "expendablePodsPriorityCutoff": str(AUTOSCALER_EXPENDABLE_CUTOFF),
        "cluster-autoscaler.ContainerResources": json.dumps(
            {"requests": {"cpu": "100m", "memory": "300Mi"}, "limits": {"cpu": "500m", "memory": "600Mi"}}
        ),
    }


class ClusterAutoscaler(pulumi.ComponentResource):
    """Outputs: `policy_statements` (what the IAM policy grants), `nodes` (the add-on's `nodes` value)."""

    policy_statements: pulumi.Output[list[str]]
    nodes: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args.validate()
        super().__init__("pixelstream:index:ClusterAutoscaler", name, None, opts)
        if args.auth_type == "workload":
            statements = pulumi.Output.all(args.compartment_id, args.cluster_id).apply(
                lambda ids: workload_statements(*ids)
            )
        else:
            group = args.dynamic_group or ""
            statements = pulumi.Output.from_input(args.compartment_id).apply(
                lambda compartment: instance_statements(compartment, group)
            )
        policy = oci.identity.Policy(
            f"{name}-policy",
            name=args.policy_name,
            compartment_id=args.compartment_id,
            description=f"OKE Cluster Autoscaler add-on ({args.auth_type} principal) resizes the autoscaled pools",
            statements=statements,
            opts=pulumi.ResourceOptions(parent=self),
        )
        nodes = pulumi.Output.all(*args.node_groups).apply(lambda groups: ", ".join(groups))
        oci.containerengine.Addon(
            f"{name}-addon",
            addon_name=ADDON_NAME,
            cluster_id=args.cluster_id,
            version=args.addon_version,
            remove_addon_resources_on_delete=True,
            configurations=[
                oci.containerengine.AddonConfigurationArgs(key=key, value=value)
                for key, value in configurations(args, nodes).items()
            ],
            # It can act only once it may, and it runs on the default pool.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, *args.depends_on]),
        )
        self.policy_statements = statements
        self.nodes = nodes
        self.register_outputs({"policy_statements": statements, "nodes": nodes})
