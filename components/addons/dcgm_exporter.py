"""DcgmExporter: NVIDIA DCGM GPU metrics (utilisation, encoder, memory) from the GPU nodes, scraped through
a ServiceMonitor."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from ..placement import GPU_NODES, NodePlacement
from .charts import CHARTS, Chart, ReleaseArgs, namespace, release


@dataclass(kw_only=True)
class DcgmExporterArgs(ReleaseArgs):
    """Its ServiceMonitor needs the Prometheus operator's CRDs: put the Monitoring release in depends_on."""

    chart: Chart = CHARTS["dcgm-exporter"]
    nodes: NodePlacement = GPU_NODES


class DcgmExporter(pulumi.ComponentResource):
    """A DaemonSet on GPU nodes only."""

    def __init__(self, name: str, args: DcgmExporterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:DcgmExporter", name, None, opts)
        ns = namespace("dcgm-exporter", self)
        values = {
            "nodeSelector": args.nodes.node_selector(),
            "tolerations": args.nodes.tolerations(),
            "serviceMonitor": {"enabled": True, "interval": "15s"},
        }
        release(self, args, ns, values)
        self.register_outputs({})
