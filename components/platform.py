"""Platform: everything a stack declares, from its validated config, in one component.

The OCI layer (network, cluster, node pools), the cluster platform (add-ons) and the workloads, each declared
by its own package from the same StackConfig. A workload is one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from .addons.layer import declare_addons
from .config import StackConfig
from .media_path import media_path_warnings
from .oci.layer import declare_oci, target_warnings
from .workloads.ai_workers.layer import declare_ai_workers
from .workloads.gpu_jobs.layer import declare_gpu_jobs
from .workloads.pixel_streaming.layer import declare_pixel_streaming
from .workloads.simulation.layer import declare_simulation


@dataclass
class PlatformArgs:
    config: StackConfig
    """The stack's validated configuration (load_stack_config, or StackConfig.parse)."""
    name: str
    """The cluster's name and the prefix of the network's resource names."""


class Platform(pulumi.ComponentResource):
    """Outputs: `outputs`, what a stack exports (the network and cluster IDs, the kubeconfig as a secret, the
    add-ons' endpoints, the workloads' URLs)."""

    outputs: dict[str, Any]

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:Platform", name, None, opts)
        config = args.config
        for warning in [*target_warnings(config), *media_path_warnings(config)]:
            pulumi.log.warn(warning, self)
        # Until this component existed, its children were the stack's own: the alias keeps their URNs, so
        # stacks deployed before move under it without replacing anything.
        children = pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
        streaming = config.streaming
        infra = declare_oci(config, args.name, children)
        addons = declare_addons(config, args.name, infra, children, streaming.namespace if streaming.enabled else None)
        self.outputs = {**addons.outputs}
        if streaming.enabled:
            self.outputs |= declare_pixel_streaming(config, infra, addons, children)
        if config.simulation.enabled:
            self.outputs |= declare_simulation(config, infra, addons, children)
        if config.ai_workers.enabled:
            self.outputs |= declare_ai_workers(config, infra, addons, children)
        if config.jobs.enabled:
            self.outputs |= declare_gpu_jobs(config, args.name, infra, addons, children)
        self.outputs |= infra.outputs(config)
        self.register_outputs(self.outputs)
