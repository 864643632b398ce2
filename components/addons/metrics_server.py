"""MetricsServer: the resource metrics API (kubectl top, CPU-based autoscaling)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from .charts import CHARTS, Chart, ReleaseArgs, namespace, release


@dataclass(kw_only=True)
class MetricsServerArgs(ReleaseArgs):
    chart: Chart = CHARTS["metrics-server"]


class MetricsServer(pulumi.ComponentResource):
    """metrics-server in its own namespace."""

    def __init__(self, name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:MetricsServer", name, None, opts)
        ns = namespace("metrics-server", self)
        values = {
            "nodeSelector": args.nodes.node_selector(),
            "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}, "limits": {"memory": "400Mi"}},
        }
        release(self, args, ns, values)
        self.register_outputs({})
