"""DcgmExporter: NVIDIA DCGM GPU metrics (utilisation, encoder, memory) from the GPU nodes, scraped through
a ServiceMonitor."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from ..constants import GPU_NODE_LABEL, GPU_TAINT
from .charts import CHARTS, Chart, ReleaseArgs, namespace, release


@dataclass(kw_only=True)
class DcgmExporterArgs(ReleaseArgs):
    """Its ServiceMonitor needs the Prometheus operator's CRDs: put the Monitoring release in depends_on."""

    chart: Chart = CHARTS["dcgm-exporter"]


class DcgmExporter(pulumi.ComponentResource):
    """A DaemonSet on GPU nodes only."""

    def __init__(self, name: str, args: DcgmExporterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:DcgmExporter", name, None, opts)
        ns = namespace("dcgm-exporter", self)
        values = {
            "nodeSelector": dict([GPU_NODE_LABEL]),
            "tolerations": [GPU_TAINT.toleration()],
            "serviceMonitor": {"enabled": True, "interval": "15s"},
        }
        release(self, args, ns, values)
        self.register_outputs({})
