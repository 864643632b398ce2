"""Another team's stack: a GPU pool for pixel streams on a cluster it already runs, built from the
pixelstream components (node pool with labels, taint and GPU image; the GPU device plugin)."""

import pulumi
import pulumi_kubernetes as k8s
import pulumi_oci as oci

from pixelstream import (
    GPU_NODE_LABEL,
    GPU_TAINT,
    STREAMING_GPU_SHAPES,
    GpuDevicePlugin,
    GpuDevicePluginArgs,
    NodePool,
    NodePoolArgs,
)

config = pulumi.Config()
compartment_id = config.require("compartmentId")
cluster_id = config.require("clusterId")
shape = config.get("shape") or "VM.GPU.A10.1"
if shape not in STREAMING_GPU_SHAPES:
    raise pulumi.RunError(
        f"gpu-pool-example:shape: {shape} cannot encode video; use one of {', '.join(STREAMING_GPU_SHAPES)}"
    )

first_domain = oci.identity.get_availability_domains(compartment_id=compartment_id).availability_domains[0].name
pool = NodePool(
    "streamers",
    NodePoolArgs(
        cluster_id=cluster_id,
        compartment_id=compartment_id,
        kubernetes_version=config.require("kubernetesVersion"),
        subnet_id=config.require("subnetId"),
        nsg_ids=[config.require("nsgId")],
        availability_domains=[first_domain],
        shape=shape,
        size=1,
        min_size=1,
        max_size=config.get_int("maxNodes") or 4,
        labels=dict([GPU_NODE_LABEL]),
        taints=[GPU_TAINT],
    ),
)

kubeconfig = oci.containerengine.get_cluster_kube_config_output(cluster_id=cluster_id, token_version="2.0.0").content
provider = k8s.Provider("cluster", kubeconfig=pulumi.Output.secret(kubeconfig))
plugin = GpuDevicePlugin(
    "gpu-device-plugin",
    GpuDevicePluginArgs(cluster_id=cluster_id),
    opts=pulumi.ResourceOptions(providers=[provider]),
)

pulumi.export("nodePoolId", pool.node_pool_id)
pulumi.export("nodeImage", pool.image_name)
pulumi.export("autoscalerNodes", pool.autoscaler_nodes)
pulumi.export("gpuResource", plugin.gpu_resource)
