"""GpuDevicePlugin: the one component that advertises GPUs to Kubernetes, on GPU nodes only.

Exactly one owner: either NVIDIA's device-plugin chart (time-slicing available), with OKE's own
NvidiaGpuPlugin add-on parked on a node label no node has, or the OKE add-on itself. On a cluster that is not
OKE there is no add-on to park: the chart is the only owner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_oci as oci
import yaml

from ..constants import GPU_RESOURCE, SHARED_GPU_RESOURCE
from ..placement import GPU_NODES, NodePlacement
from .charts import CHARTS, Chart, ReleaseArgs, namespace, release

OKE_ADDON = "NvidiaGpuPlugin"
# No node carries this label, so an add-on selecting it runs nowhere.
PARKED_NODE_SELECTOR = {"app.pixel/oke-gpu-plugin": "disabled"}

Owner = Literal["chart", "okeAddon"]


def time_slicing_config(streams_per_gpu: int) -> str:
    """Device-plugin config that shares every GPU of a node between `streams_per_gpu` pods, advertised as
    `nvidia.com/gpu.shared` so that a pod asking for a whole GPU can never get a slice."""
    return yaml.safe_dump(
        {
            "version": "v1",
            "sharing": {
                "timeSlicing": {
                    "renameByDefault": True,
                    "failRequestsGreaterThanOne": True,
                    "resources": [{"name": GPU_RESOURCE, "replicas": streams_per_gpu}],
                }
            },
        },
        sort_keys=False,
    )


@dataclass(kw_only=True)
class GpuDevicePluginArgs(ReleaseArgs):
    cluster_id: pulumi.Input[str] | None
    """The OKE cluster, whose NvidiaGpuPlugin add-on this component owns or parks; None off OKE."""
    owner: Owner = "chart"
    streams_per_gpu: int = 1
    """Time-slicing replicas per GPU (chart only); 1 gives each pod a whole GPU."""
    addon_version: str | None = None
    """OKE add-on version when the add-on owns the plugin; None lets OKE choose."""
    chart: Chart = CHARTS["nvidia-device-plugin"]
    nodes: NodePlacement = GPU_NODES


class GpuDevicePlugin(pulumi.ComponentResource):
    """Outputs: `gpu_resource`, the extended resource a GPU pod requests (`nvidia.com/gpu` or, with
    time-slicing, `nvidia.com/gpu.shared`)."""

    gpu_resource: str

    def __init__(self, name: str, args: GpuDevicePluginArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.owner not in ("chart", "okeAddon"):
            raise ValueError(f"owner {args.owner!r} is not chart or okeAddon")
        if args.owner == "okeAddon" and args.cluster_id is None:
            raise ValueError("owner okeAddon needs an OKE cluster (cluster_id)")
        if args.streams_per_gpu < 1 or (args.owner == "okeAddon" and args.streams_per_gpu != 1):
            raise ValueError("time-slicing (streams_per_gpu > 1) needs owner='chart'; streams_per_gpu must be >= 1")
        super().__init__("pixelstream:index:GpuDevicePlugin", name, None, opts)
        gpu_nodes = args.nodes.node_selector()
        if args.owner == "chart":
            addon_nodes = PARKED_NODE_SELECTOR
            ns = namespace("nvidia-device-plugin", self)
            values = {
                "nodeSelector": gpu_nodes,
                # Replaces the chart's NFD-label affinity: our GPU nodes are known by their labels.
                "affinity": args.nodes.required_affinity(),
                "tolerations": args.nodes.tolerations(),
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            }
            if args.streams_per_gpu > 1:
                values["config"] = {"map": {"default": time_slicing_config(args.streams_per_gpu)}, "default": "default"}
            release(self, args, ns, values)
        else:
            addon_nodes = gpu_nodes
        if args.cluster_id is not None:
            self._oke_addon(name, args, addon_nodes)
        self.gpu_resource = SHARED_GPU_RESOURCE if args.streams_per_gpu > 1 else GPU_RESOURCE
        self.register_outputs({"gpu_resource": self.gpu_resource})

    def _oke_addon(self, name: str, args: GpuDevicePluginArgs, addon_nodes: dict[str, str]) -> None:
        """OKE's NvidiaGpuPlugin add-on: the owner, or parked where no node matches."""
        oci.containerengine.Addon(
            f"{name}-oke-addon",
            addon_name=OKE_ADDON,
            cluster_id=args.cluster_id,
            version=args.addon_version if args.owner == "okeAddon" else None,
            override_existing=True,
            remove_addon_resources_on_delete=True,
            configurations=[
                oci.containerengine.AddonConfigurationArgs(key="nodeSelectors", value=json.dumps(addon_nodes)),
                oci.containerengine.AddonConfigurationArgs(
                    key="tolerations", value=json.dumps(args.nodes.tolerations())
                ),
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
