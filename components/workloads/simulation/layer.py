"""The simulation fleet declared from the stack config, on the platform below it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi

from ...media_path import media_path
from .component import Simulation, SimulationArgs
from .config import simulation_warnings
from .publishing import stream_publishing

if TYPE_CHECKING:
    from ...addons.layer import AddonLayer
    from ...config import StackConfig
    from ...oci.layer import OciLayer


def declare_simulation(
    config: StackConfig, infra: OciLayer, addons: AddonLayer, opts: pulumi.ResourceOptions
) -> dict[str, Any]:
    """The fleet and the stack outputs it adds. Its pods run on the GPU pool, so their addresses are in the stream
    pod subnet, the one the TURN relay may reach (media_path)."""
    simulation, path = config.simulation, media_path(config)
    publishing = stream_publishing(config, infra, opts)
    workload = Simulation(
        "simulation",
        SimulationArgs(
            isaac_sim_image=simulation.image("isaacsim"),
            python_image=simulation.image("python"),
            namespace=simulation.namespace,
            instances=simulation.instances,
            instances_per_gpu=simulation.instances_per_gpu,
            settings=simulation.settings(),
            ngc_api_key=pulumi.Output.secret(simulation.ngc_api_key) if simulation.ngc_api_key else None,
            image_pull_secrets=simulation.image_pull_secrets,
            host=simulation.ingress.host,
            path_prefix=simulation.ingress.path_prefix,
            cluster_issuer=simulation.ingress.issuer if addons.cluster_issuers else None,
            system_nodes=infra.nodes("default"),
            gpu_nodes=[*infra.nodes("gpu"), *addons.gpu_plugin],
            ingress_controller=addons.ingress_controller,
            gpu_placement=config.cluster.placement().gpu,
            private_cidrs=path.private_cidrs,
            turn_node_cidrs=path.turn_nodes,
            relay_ports=config.network.relay_ports.bounds,
            storage_class=infra.storage_class,
            publishing=publishing,
            load_balancer_cidrs=[config.network.subnets.load_balancers] if publishing and infra.network else [],
            viewer_url=simulation.streams.viewer_url,
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[infra.provider])),
    )
    for warning in simulation_warnings(config):
        pulumi.log.warn(warning, workload)
    return {
        "simulationUrl": workload.url,
        "simulationNamespace": workload.namespace,
        "simulationUsername": workload.username,
        "simulationPassword": workload.password,
    }
